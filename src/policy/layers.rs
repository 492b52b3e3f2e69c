//! A principal's permission as named layers (SPEC §2.3), and the one rule that decides whether
//! a holder covers a grant. Token creation, token rotation and IAM grants all ask it: nobody may
//! hand out, or obtain, a power they do not hold.

use std::fmt;
use std::sync::Arc;

use super::eval::statements_allow;
use super::rn::{pattern_covers, patterns_may_overlap};
use super::statement::{Effect, Statement};

/// One statement list. Shared: the caches hand the same list to many requests.
pub type Layer = Arc<Vec<Statement>>;

/// What a principal may do: an action is allowed only when every layer present allows it, and
/// with no layer at all nothing is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    /// The member's live permissions, read at request time: sessions and personal tokens.
    pub live: Option<Layer>,
    /// Frozen when the token was created: whatever bounded the principal that created it.
    pub frozen: Vec<Layer>,
    /// The token's own scope, when it was given one.
    pub scope: Option<Layer>,
}

/// The first (action, resource) pair of a grant that the holder does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeds {
    pub action: String,
    pub resource: String,
}

impl fmt::Display for Exceeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)
    }
}

impl Layers {
    /// A member acting in person: their live permissions only.
    pub fn member(live: Layer) -> Self {
        Layers {
            live: Some(live),
            ..Layers::default()
        }
    }

    /// Live first, then the frozen layers, then the scope.
    pub fn iter(&self) -> impl Iterator<Item = &Layer> {
        self.live
            .iter()
            .chain(self.frozen.iter())
            .chain(self.scope.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_none() && self.frozen.is_empty() && self.scope.is_none()
    }

    /// May this principal do `action` on `rn`? (SPEC §2.2 within each layer, §2.3 across them.)
    pub fn allows(&self, action: &str, rn: &str) -> bool {
        let mut any = false;
        for layer in self.iter() {
            if !statements_allow(layer, action, rn) {
                return false;
            }
            any = true;
        }
        any
    }

    /// What a personal token created by this principal carries frozen. It gets its owner's live
    /// layer at every use, so it keeps everything else that bounds its creator.
    pub fn frozen_for_personal_token(&self) -> Vec<Layer> {
        self.frozen
            .iter()
            .chain(self.scope.iter())
            .cloned()
            .collect()
    }

    /// What a service token created by this principal carries frozen: every layer, as it is now.
    pub fn frozen_for_service_token(&self) -> Vec<Layer> {
        self.iter().cloned().collect()
    }

    /// Does this holder hold every power that `granted` (one statement list) gives? Every
    /// `allow` pair of `granted` must be within every layer of the holder; `deny` statements
    /// of `granted` only take power away and are not checked.
    pub fn covers(&self, granted: &[Statement]) -> Result<(), Exceeds> {
        for (action, resource) in allowed_pairs(granted) {
            let mut any = false;
            for layer in self.iter() {
                if !pair_within(layer, action, resource) {
                    return Err(exceeds(action, resource));
                }
                any = true;
            }
            if !any {
                return Err(exceeds(action, resource));
            }
        }
        Ok(())
    }

    /// Does this holder hold every power of a principal made of `other`'s layers? (Rotation:
    /// whoever receives a token's secret must already be able to do what the token can.)
    ///
    /// `other` allows only what all its layers allow, so it is enough that each of the holder's
    /// layers contains one of `other`'s: the same list (a member's own live layer), or one
    /// whose every grant it covers. The offending pair is named from `other`'s narrowest layer:
    /// its scope, else its last frozen layer, else its live one.
    pub fn covers_layers(&self, other: &Layers) -> Result<(), Exceeds> {
        let Some(narrowest) = other
            .scope
            .as_ref()
            .or(other.frozen.last())
            .or(other.live.as_ref())
        else {
            // No layer: `other` allows nothing.
            return Ok(());
        };
        if self.is_empty() {
            return match allowed_pairs(narrowest).next() {
                Some((action, resource)) => Err(exceeds(action, resource)),
                None => Ok(()),
            };
        }
        for layer in self.iter() {
            let contains_one = other
                .iter()
                .any(|theirs| theirs == layer || layer_within(layer, theirs).is_ok());
            if !contains_one {
                return layer_within(layer, narrowest);
            }
        }
        Ok(())
    }
}

fn exceeds(action: &str, resource: &str) -> Exceeds {
    Exceeds {
        action: action.to_owned(),
        resource: resource.to_owned(),
    }
}

/// Every `allow` (action, resource pattern) pair of a list. A statement with resourceType `*`
/// matches everything, so it counts as `*` on `*`.
fn allowed_pairs(statements: &[Statement]) -> impl Iterator<Item = (&str, &str)> {
    statements
        .iter()
        .filter(|s| s.effect == Effect::Allow)
        .flat_map(|s| -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
            if s.resource_type == "*" {
                Box::new(std::iter::once(("*", "*")))
            } else {
                Box::new(s.actions.iter().flat_map(move |action| {
                    s.resources
                        .iter()
                        .map(move |resource| (action.as_str(), resource.as_str()))
                }))
            }
        })
}

/// Is every `allow` pair of `inner` within `outer`?
fn layer_within(outer: &[Statement], inner: &[Statement]) -> Result<(), Exceeds> {
    match allowed_pairs(inner).find(|(action, resource)| !pair_within(outer, action, resource)) {
        Some((action, resource)) => Err(exceeds(action, resource)),
        None => Ok(()),
    }
}

/// Does `outer` allow `action` on every resource `pattern` names? An allow statement must
/// cover the pair, and no deny statement may touch any part of it. `*` as the action stands for
/// every action, so only a `*` covers it and every deny touches it.
///
/// SPEC §2.3 checks a requested pattern as if it were a resource name. That is enough at
/// creation, where the new token also carries its creator's layers, but not for rotation or
/// IAM grants, where nothing else bounds the result: a deny on `iam/secret` does not match the
/// name `iam/*`, yet a grant of `iam/*` reaches `iam/secret`. So denies are matched by overlap.
fn pair_within(outer: &[Statement], action: &str, pattern: &str) -> bool {
    let mut granted = false;
    for statement in outer {
        match statement.effect {
            Effect::Allow if !granted => {
                granted = statement.resource_type == "*"
                    || (statement
                        .actions
                        .iter()
                        .any(|a| a == "*" || (a == action && action != "*"))
                        && statement
                            .resources
                            .iter()
                            .any(|p| pattern_covers(p, pattern)));
            }
            Effect::Allow => {}
            Effect::Deny => {
                let touches = statement.resource_type == "*"
                    || (statement
                        .actions
                        .iter()
                        .any(|a| a == "*" || a == action || action == "*")
                        && statement
                            .resources
                            .iter()
                            .any(|p| patterns_may_overlap(p, pattern)));
                if touches {
                    return false;
                }
            }
        }
    }
    granted
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
