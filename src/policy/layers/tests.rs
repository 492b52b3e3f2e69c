use super::super::builtin::{DEVELOPER_POLICY_ID, OWNER_POLICY_ID};
use super::super::fixtures::{allow, builtin, deny};
use super::*;

fn member(statements: Vec<Statement>) -> Layers {
    Layers::member(Arc::new(statements))
}

fn scoped(live: Vec<Statement>, scope: Vec<Statement>) -> Layers {
    Layers {
        live: Some(Arc::new(live)),
        frozen: Vec::new(),
        scope: Some(Arc::new(scope)),
    }
}

fn pair(action: &str, resource: &str) -> Result<(), Exceeds> {
    Err(exceeds(action, resource))
}

#[test]
fn every_layer_must_allow_and_no_layer_allows_nothing() {
    let layers = scoped(
        builtin(OWNER_POLICY_ID),
        vec![allow(
            "flag",
            &["ManageFeatureFlag"],
            &["project/web:env/*:flag/*"],
        )],
    );
    assert!(layers.allows("ManageFeatureFlag", "project/web:env/prod:flag/x"));
    assert!(!layers.allows("ManageFeatureFlag", "project/api:env/prod:flag/x"));
    assert!(!layers.allows("CanManageIAM", "iam/*"));
    assert!(!Layers::default().allows("CanManageIAM", "iam/*"));
    assert!(!member(vec![]).allows("CanManageIAM", "iam/*"));
}

#[test]
fn a_deny_in_any_layer_denies() {
    let layers = scoped(
        vec![allow("*", &["*"], &["*"])],
        vec![
            allow("flag", &["*"], &["*"]),
            deny("flag", &["DeleteFlag"], &["*"]),
        ],
    );
    assert!(layers.allows("UpdateFlagName", "project/web:env/prod:flag/x"));
    assert!(!layers.allows("DeleteFlag", "project/web:env/prod:flag/x"));
}

#[test]
fn creator_star_covers_requested_star() {
    let owner = member(builtin(OWNER_POLICY_ID));
    let requested = [allow("*", &["*"], &["*"]), allow("flag", &["*"], &["*"])];
    assert_eq!(owner.covers(&requested), Ok(()));
}

#[test]
fn requested_resource_type_star_needs_everything() {
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let requested = [allow("*", &["CanAccessProject"], &["project/*"])];
    assert_eq!(developer.covers(&requested), pair("*", "*"));
}

#[test]
fn developer_cannot_grant_iam() {
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let requested = [
        allow("project", &["CanAccessProject"], &["project/*"]),
        allow("iam", &["CanManageIAM"], &["iam/*"]),
    ];
    assert_eq!(developer.covers(&requested), pair("CanManageIAM", "iam/*"));
}

#[test]
fn developer_cannot_grant_flag_actions_on_a_shorter_resource() {
    // The Developer's `project/*:env/*:flag/*` has more segments than `project/*`.
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let requested = [allow("flag", &["UpdateFlagName"], &["project/*"])];
    assert_eq!(
        developer.covers(&requested),
        pair("UpdateFlagName", "project/*")
    );
}

#[test]
fn developer_can_grant_what_they_hold() {
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let requested = [
        allow("flag", &["*"], &["project/*:env/*:flag/*"]),
        allow(
            "flag",
            &["ManageFeatureFlag"],
            &["project/web:env/prod:flag/*;beta"],
        ),
        allow("access-token", &["ListAccessTokens"], &["access-token/*"]),
    ];
    assert_eq!(developer.covers(&requested), Ok(()));
}

#[test]
fn requested_star_action_needs_creator_star_action() {
    let creator = member(vec![allow(
        "flag",
        &["UpdateFlagName"],
        &["project/*:env/*:flag/*"],
    )]);
    let requested = [allow("flag", &["*"], &["project/*:env/*:flag/*"])];
    assert_eq!(
        creator.covers(&requested),
        pair("*", "project/*:env/*:flag/*")
    );
}

#[test]
fn requested_deny_statements_are_not_checked() {
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let requested = [
        allow("flag", &["*"], &["project/web:env/*:flag/*"]),
        deny("iam", &["CanManageIAM"], &["iam/*"]),
    ];
    assert_eq!(developer.covers(&requested), Ok(()));
}

#[test]
fn the_first_offending_pair_is_reported() {
    let creator = member(vec![allow(
        "project",
        &["CanAccessProject"],
        &["project/web"],
    )]);
    let requested = [allow(
        "project",
        &["CanAccessProject", "DeleteProject"],
        &["project/web", "project/api"],
    )];
    assert_eq!(
        creator.covers(&requested),
        pair("CanAccessProject", "project/api")
    );
}

#[test]
fn every_holder_layer_must_cover_the_grant() {
    let layers = scoped(
        builtin(OWNER_POLICY_ID),
        vec![allow("flag", &["*"], &["project/web:env/*:flag/*"])],
    );
    let inside = [allow(
        "flag",
        &["ToggleFlag"],
        &["project/web:env/prod:flag/*"],
    )];
    let outside = [allow(
        "flag",
        &["ToggleFlag"],
        &["project/*:env/prod:flag/*"],
    )];
    assert_eq!(layers.covers(&inside), Ok(()));
    assert_eq!(
        layers.covers(&outside),
        pair("ToggleFlag", "project/*:env/prod:flag/*")
    );
    assert_eq!(
        Layers::default().covers(&inside),
        pair("ToggleFlag", "project/web:env/prod:flag/*")
    );
}

#[test]
fn a_deny_blocks_every_grant_it_could_touch() {
    let creator = member(vec![
        allow("*", &["*"], &["*"]),
        deny("iam", &["*"], &["iam/secret"]),
    ]);
    // The name `iam/*` does not match the deny, but a grant of it reaches `iam/secret`.
    assert_eq!(
        creator.covers(&[allow("iam", &["CanManageIAM"], &["iam/*"])]),
        pair("CanManageIAM", "iam/*")
    );
    assert_eq!(
        creator.covers(&[allow("iam", &["CanManageIAM"], &["iam/public"])]),
        Ok(())
    );
    let no_delete = member(vec![
        allow("*", &["*"], &["*"]),
        deny("project", &["DeleteProject"], &["project/*"]),
    ]);
    assert_eq!(
        no_delete.covers(&[allow("project", &["*"], &["project/web"])]),
        pair("*", "project/web")
    );
    assert_eq!(
        no_delete.covers(&[allow("project", &["CreateEnv"], &["project/web"])]),
        Ok(())
    );
}

#[test]
fn a_scoped_token_does_not_cover_its_unscoped_sibling() {
    let live = Arc::new(builtin(DEVELOPER_POLICY_ID));
    let scope = Arc::new(vec![allow(
        "access-token",
        &["ManagePersonalAccessTokens"],
        &["access-token/*"],
    )]);
    let scoped_token = Layers {
        live: Some(live.clone()),
        frozen: Vec::new(),
        scope: Some(scope.clone()),
    };
    let unscoped_token = Layers::member(live.clone());
    let session = Layers::member(live.clone());
    assert!(scoped_token.covers_layers(&unscoped_token).is_err());
    assert_eq!(session.covers_layers(&scoped_token), Ok(()));
    assert_eq!(session.covers_layers(&unscoped_token), Ok(()));
    assert_eq!(scoped_token.covers_layers(&scoped_token), Ok(()));
}

#[test]
fn a_member_covers_a_token_frozen_from_more_power_when_its_scope_fits() {
    let developer = member(builtin(DEVELOPER_POLICY_ID));
    let owner_made = Layers {
        live: None,
        frozen: vec![Arc::new(builtin(OWNER_POLICY_ID))],
        scope: Some(Arc::new(vec![allow(
            "flag",
            &["ToggleFlag"],
            &["project/*:env/*:flag/*"],
        )])),
    };
    assert_eq!(developer.covers_layers(&owner_made), Ok(()));
    let iam_token = Layers {
        scope: Some(Arc::new(vec![allow("iam", &["CanManageIAM"], &["iam/*"])])),
        ..owner_made
    };
    assert_eq!(
        developer.covers_layers(&iam_token),
        pair("CanManageIAM", "iam/*")
    );
    assert_eq!(
        member(builtin(OWNER_POLICY_ID)).covers_layers(&iam_token),
        Ok(())
    );
}

#[test]
fn nothing_covers_something_and_anything_covers_nothing() {
    let something = member(vec![allow("iam", &["CanManageIAM"], &["iam/*"])]);
    assert_eq!(
        Layers::default().covers_layers(&something),
        pair("CanManageIAM", "iam/*")
    );
    assert_eq!(something.covers_layers(&Layers::default()), Ok(()));
    assert_eq!(Layers::default().covers_layers(&Layers::default()), Ok(()));
}
