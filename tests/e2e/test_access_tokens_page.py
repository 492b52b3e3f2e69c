"""The Access tokens page, clicked through as the seed document describes it (SPEC §10)."""

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import ADMINISTRATOR, DEVELOPER, PASSWORD, ROOT, Org

FLAG = [{"resourceType": "flag", "effect": "allow", "actions": ["ManageFeatureFlag"],
         "resources": ["project/*:env/*:flag/*"]}]


def test_seed_workflow_personal_token_is_shown_once_and_works(org, ui, api, page):
    dana = org.member("Dana", [DEVELOPER])
    ui.login(dana["email"])

    # Found the way anyone would look for them: by the seed's words, on the whole page.
    page.get_by_role("button", name="Add").click()
    drawer = page.get_by_role("dialog", name="Add access token")
    page.get_by_label("Name").fill("dana-laptop")
    expect(page.get_by_label("Type")).to_have_value("Personal")
    page.get_by_label("Expiry").select_option(label="30 days")
    page.get_by_role("button", name="Save").click()
    expect(drawer).to_be_hidden()

    panel = page.locator(".secret-panel")
    expect(panel).to_contain_text("you will not see it again")
    secret = ui.secret()
    assert secret.startswith("tgp_")
    # The copied secret is what an integration sends: a gateway lets it through.
    assert api.forward(secret) == 200
    expect(ui.row("dana-laptop")).to_contain_text(secret[:8])
    expect(ui.row("dana-laptop")).to_contain_text("Personal")

    # Never in a URL, web storage or a cookie.
    assert secret not in page.url
    storage = page.evaluate("JSON.stringify(Object.entries(sessionStorage)) + JSON.stringify(Object.entries(localStorage))")
    assert secret not in storage
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    # Reloading masks it for good; the session (not the secret) survives the reload.
    page.reload()
    ui.wait_for_list()
    expect(ui.row("dana-laptop")).to_have_count(1)
    expect(page.locator(".secret-panel")).to_have_count(0)
    assert secret not in page.content()

    # The name is taken now: the drawer says so while typing (case does not matter).
    drawer = ui.open_add()
    drawer.get_by_label("Name", exact=True).fill("Dana-Laptop")
    expect(drawer.get_by_text("name is used")).to_be_visible()
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()


def test_developer_adds_a_service_token_with_iam_actions_disabled(org, ui, api, page):
    devon = org.member("Devon", [DEVELOPER])
    ui.login(devon["email"])

    drawer = ui.open_add()
    drawer.get_by_label("Name", exact=True).fill("ci-deploy")
    drawer.get_by_label("Type", exact=True).select_option("Service")
    # What a Developer does not hold cannot be given to a token.
    for action in ["CanManageIAM", "UpdateOrgName", "CreateProject", "DeleteEnv"]:
        expect(drawer.get_by_role("checkbox", name=action, exact=True)).to_be_disabled()
    flag = drawer.get_by_role("checkbox", name="ManageFeatureFlag", exact=True)
    expect(flag).to_be_enabled()
    expect(drawer.get_by_text("Manage feature flags (any change)")).to_be_visible()

    # A service token needs a permission.
    drawer.get_by_role("button", name="Save", exact=True).click()
    expect(drawer.get_by_role("alert")).to_contain_text("at least one permission")

    flag.check()
    drawer.get_by_role("button", name="Save", exact=True).click()
    expect(drawer).to_be_hidden()
    secret = ui.secret()
    assert secret.startswith("tgs_")
    assert api.forward(secret) == 200
    assert api.forward(secret, "CanManageIAM", "iam/*") == 403
    row = ui.row("ci-deploy")
    expect(row).to_contain_text("Service")
    expect(row).to_contain_text("ManageFeatureFlag")


def test_deactivate_refuses_the_token_and_activate_restores_it(org, ui, api, page):
    dev = org.member("Drew", [DEVELOPER])
    secret = org.token_for(dev, "nightly-sync")["token"]
    assert api.forward(secret) == 200
    ui.login(dev["email"])

    menu = ui.menu("nightly-sync")
    expect(menu).to_contain_text("Forbidden")  # the seed's explanation, beside the action
    menu.get_by_role("button", name="Deactivate", exact=True).click()
    expect(ui.row("nightly-sync").get_by_text("Inactive", exact=True)).to_be_visible()
    assert api.forward(secret) == 403

    ui.menu("nightly-sync").get_by_role("button", name="Activate", exact=True).click()
    expect(ui.row("nightly-sync").get_by_text("Active", exact=True)).to_be_visible()
    assert api.forward(secret) == 200


def test_rotate_shows_the_new_secret_once_and_retires_the_old_one(org, ui, api, page):
    dev = org.member("Robin", [DEVELOPER])
    old = org.token_for(dev, "deploy-bot")["token"]
    ui.login(dev["email"])

    ui.menu("deploy-bot").get_by_role("button", name="Rotate", exact=True).click()
    dialog = page.get_by_role("dialog", name="Rotate “deploy-bot”")
    expect(dialog.get_by_role("combobox")).to_have_value("0")
    dialog.get_by_role("button", name="Rotate", exact=True).click()
    expect(dialog).to_be_hidden()

    new = ui.secret()
    assert new != old and new.startswith("tgp_")
    assert api.forward(old) == 401
    assert api.forward(new) == 200
    page.reload()
    ui.wait_for_list()
    expect(page.locator(".secret-panel")).to_have_count(0)


def test_remove_asks_first_and_the_token_is_gone(org, ui, api, page):
    dev = org.member("Remy", [DEVELOPER])
    secret = org.token_for(dev, "temp-token")["token"]
    ui.login(dev["email"])

    ui.menu("temp-token").get_by_role("button", name="Remove", exact=True).click()
    dialog = page.get_by_role("dialog", name="Remove “temp-token”?")
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    expect(ui.row("temp-token")).to_have_count(1)
    assert api.forward(secret) == 200

    ui.menu("temp-token").get_by_role("button", name="Remove", exact=True).click()
    page.get_by_role("dialog", name="Remove “temp-token”?").get_by_role("button", name="Remove", exact=True).click()
    expect(ui.row("temp-token")).to_have_count(0)
    assert api.forward(secret) == 401


def test_edit_renames_the_token(org, ui, api, page):
    dev = org.member("Eden", [DEVELOPER])
    secret = org.token_for(dev, "old-name")["token"]
    ui.login(dev["email"])

    ui.menu("old-name").get_by_role("button", name="Edit", exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit access token")
    dialog.get_by_label("Name", exact=True).fill("new-name")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(ui.row("new-name")).to_have_count(1)
    expect(ui.row("old-name")).to_have_count(0)
    assert api.forward(secret) == 200  # renaming changes nothing else


def test_administrator_sees_another_members_token_but_cannot_rotate_it(org, ui, api, page):
    dana = org.member("Dana", [DEVELOPER])
    ada = org.member("Ada", [ADMINISTRATOR])
    org.token_for(dana, "dana-cli")
    org.token_for(ada, "ada-cli")
    ui.login(ada["email"])

    expect(ui.row("dana-cli")).to_contain_text("Dana")
    menu = ui.menu("dana-cli")
    for action in ["Edit", "Deactivate", "Remove"]:
        expect(menu.get_by_role("button", name=action, exact=True)).to_be_visible()
    # Administrators can delete your tokens, but cannot view their values.
    expect(menu.get_by_role("button", name="Rotate", exact=True)).to_have_count(0)
    page.keyboard.press("Escape")
    expect(menu).to_have_count(0)

    expect(ui.menu("ada-cli").get_by_role("button", name="Rotate", exact=True)).to_be_visible()


def test_rows_the_member_may_not_manage_are_read_only(org, ui, api, page):
    dana = org.member("Dana", [DEVELOPER])
    org.token_for(dana, "ci-flags", "Service", FLAG)
    readers = org.policy("Token readers", [{"resourceType": "access-token", "effect": "allow",
                                            "actions": ["ListAccessTokens"], "resources": ["access-token/*"]}])
    rita = org.member("Rita", [readers])
    ui.login(rita["email"])

    # May list tokens and read their history, not change them or add one.
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_hidden()
    menu = ui.menu("ci-flags")
    expect(menu.get_by_role("button")).to_have_count(1)
    expect(menu.get_by_role("button", name="History", exact=True)).to_be_visible()
    page.keyboard.press("Escape")

    # Dana loses every permission: her own token is still listed, but read-only.
    org.as_owner("DELETE", f"/members/{dana['id']}/policies/{DEVELOPER}")
    ui.logout()
    ui.login(dana["email"])
    expect(ui.row("ci-flags")).to_contain_text("Read-only")
    expect(ui.row("ci-flags").get_by_role("button")).to_have_count(0)
    expect(page.get_by_role("button", name="Add", exact=True)).to_be_hidden()
    expect(page.get_by_text("You see the tokens you created.")).to_be_visible()


def test_refused_creation_is_shown_in_words(org, ui, api, page):
    tokens = org.policy("Token makers", [{"resourceType": "access-token", "effect": "allow",
                                          "actions": ["ManageServiceAccessTokens", "ManagePersonalAccessTokens", "ListAccessTokens"],
                                          "resources": ["access-token/*"]}])
    renamers = org.policy("Flag renamers", [{"resourceType": "flag", "effect": "allow",
                                             "actions": ["UpdateFlagName"], "resources": ["project/*:env/*:flag/*"]}])
    pat = org.member("Pat", [tokens, renamers])
    ui.login(pat["email"])

    drawer = ui.open_add()
    drawer.get_by_label("Name", exact=True).fill("flag-bot")
    drawer.get_by_label("Type", exact=True).select_option("Service")
    drawer.get_by_role("checkbox", name="UpdateFlagName", exact=True).check()
    # While the drawer is open, the owner takes the permission away.
    org.as_owner("DELETE", f"/members/{pat['id']}/policies/{renamers}")
    drawer.get_by_role("button", name="Save", exact=True).click()

    expect(drawer.get_by_role("alert")).to_have_text(
        "The token would have a permission you do not have: UpdateFlagName on project/*:env/*:flag/*")
    expect(drawer).to_be_visible()
    session = api.login(pat["email"])
    assert api.ok("GET", "/access-tokens", session, org=org.id)["totalCount"] == 0


def test_an_ended_session_sends_the_page_back_to_login(org, ui, api, page):
    dev = org.member("Sasha", [DEVELOPER])
    ui.login(dev["email"])

    # The member changes their password elsewhere: every other session ends.
    elsewhere = api.login(dev["email"])
    api.ok("PUT", "/user/password", elsewhere, {"currentPassword": PASSWORD, "newPassword": "e2e-password-2"})

    page.get_by_role("searchbox", name="Search tokens").fill("anything")
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    expect(page.get_by_text("Your session has ended. Log in again.")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    ui.login(dev["email"], "e2e-password-2")


def test_keyboard_drawer_and_menu(org, ui, api, page):
    dev = org.member("Kim", [DEVELOPER])
    org.token_for(dev, "kb-token")
    ui.login(dev["email"])

    add = page.get_by_role("button", name="Add", exact=True)
    add.focus()
    page.keyboard.press("Enter")
    drawer = page.get_by_role("dialog", name="Add access token")
    expect(drawer.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(add).to_be_focused()

    trigger = ui.row("kb-token").get_by_role("button", name="Actions for kb-token")
    trigger.focus()
    page.keyboard.press("Enter")
    menu = page.get_by_role("group", name="Actions for kb-token")
    expect(menu.get_by_role("button", name="Edit", exact=True)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.get_by_role("button", name="Deactivate", exact=True)).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Escape")
    expect(menu).to_have_count(0)
    expect(trigger).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # Edit
    dialog = page.get_by_role("dialog", name="Edit access token")
    name = dialog.get_by_label("Name", exact=True)
    expect(name).to_be_focused()
    name.fill("kb-renamed")
    page.keyboard.press("Enter")
    expect(ui.row("kb-renamed")).to_have_count(1)
    expect(page.get_by_role("button", name="Actions for kb-renamed")).to_be_focused()


def test_search_filters_paging_and_history(org, ui, api, page):
    dana = org.member("Dana", [DEVELOPER])
    ada = org.member("Ada", [ADMINISTRATOR])
    for i in range(11):
        org.token_for(dana, f"batch-{i:02d}")
    org.token_for(dana, "svc-flags", "Service", FLAG)
    org.token_for(ada, "ada-own")
    ui.login(ada["email"])

    expect(page.get_by_text("1–10 of 13")).to_be_visible()
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("11–13 of 13")).to_be_visible()

    page.get_by_role("combobox", name="Token kind").select_option("Service")
    expect(page.get_by_text("1 token", exact=True)).to_be_visible()
    expect(ui.row("svc-flags")).to_have_count(1)
    page.get_by_role("combobox", name="Token kind").select_option("")

    page.get_by_role("combobox", name="Created by").select_option(label="Me")
    expect(page.get_by_text("1 token", exact=True)).to_be_visible()
    expect(ui.row("ada-own")).to_have_count(1)
    page.get_by_role("combobox", name="Created by").select_option(label="Anyone")

    page.get_by_role("searchbox", name="Search tokens").fill("batch-0")
    expect(page.get_by_text("10 tokens", exact=True)).to_be_visible()

    ui.menu("batch-03").get_by_role("button", name="Deactivate", exact=True).click()
    expect(ui.row("batch-03").get_by_text("Inactive", exact=True)).to_be_visible()
    page.get_by_role("combobox", name="Token status").select_option("Inactive")
    expect(page.get_by_text("1 token", exact=True)).to_be_visible()

    ui.menu("batch-03").get_by_role("button", name="History", exact=True).click()
    history = page.get_by_role("dialog", name="History of “batch-03”")
    expect(history.get_by_role("row")).to_have_count(3)  # header, created, deactivated
    expect(history).to_contain_text("Created as a personal token")
    expect(history).to_contain_text("Deactivated")
    expect(history).to_contain_text("Ada (you)")


def test_switch_organization_and_log_out(org, ui, api, page, owner_token):
    org.as_owner("POST", "/access-tokens", {"name": "alpha-token", "type": "Personal"})
    other = api.ok("POST", "/organizations", owner_token, {"name": f"{org.tag}-b"})
    api.ok("POST", "/access-tokens", owner_token, {"name": "beta-token", "type": "Personal"}, org=other["id"])
    ui.login("owner@e2e.test")

    switch = page.get_by_label("Organization", exact=True)
    switch.select_option(label=f"{org.tag}")
    expect(ui.row("alpha-token")).to_have_count(1)
    expect(ui.row("beta-token")).to_have_count(0)
    switch.select_option(label=f"{org.tag}-b")
    expect(ui.row("beta-token")).to_have_count(1)
    expect(ui.row("alpha-token")).to_have_count(0)

    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


@pytest.mark.skipif(not os.environ.get("TOKENGATE_E2E_SCREENSHOTS"),
                    reason="set TOKENGATE_E2E_SCREENSHOTS=1 to refresh the README's screenshots in docs/")
def test_docs_screenshots(api, owner_token, ui, page):
    """The README's pictures, from a realistic organization (slow: waits for lastUsedAt)."""
    org = Org(api, owner_token, "Acme")
    dana = org.member("Dana Whitfield", [DEVELOPER])
    sam = org.member("Sam Ortega", [ADMINISTRATOR])
    org.token_for(dana, "terraform-staging", "Service", FLAG)
    old = org.token_for(sam, "legacy-webhook")
    used = [
        org.token_for(dana, "ci-deploy", "Service", FLAG + [{
            "resourceType": "segment", "effect": "allow", "actions": ["UpdateSegmentRules", "UpdateSegmentTargetingUsers"],
            "resources": ["project/*:env/*:segment/*"]}])["token"],
        org.token_for(sam, "grafana-readonly", "Personal", [{
            "resourceType": "project", "effect": "allow", "actions": ["CanAccessProject"], "resources": ["project/*"]}])["token"],
        org.token_for(dana, "dana-laptop")["token"],
    ]
    session = api.login(sam["email"])
    api.ok("POST", f"/access-tokens/{old['id']}/deactivate", session, org=org.id)
    time.sleep(1.1)  # a token's use is noted at most once a second
    for secret in used:
        api.forward(secret)  # allowed or not, the token was used
    time.sleep(16)  # lastUsedAt is written in batches

    docs = Path(ROOT) / "docs"
    page.set_viewport_size({"width": 1360, "height": 860})
    ui.login(sam["email"])
    drawer = ui.open_add()
    drawer.get_by_label("Name", exact=True).fill("release-bot")
    drawer.get_by_label("Type", exact=True).select_option("Service")
    drawer.get_by_role("checkbox", name="ToggleFlag", exact=True).check()
    drawer.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".secret-panel")).to_be_visible()
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)
    page.screenshot(path=str(docs / "ui-access-tokens.png"))

    # The drawer as a Developer sees it: what they do not hold is greyed out.
    ui.logout()
    ui.login(dana["email"])
    drawer = ui.open_add()
    drawer.get_by_label("Name", exact=True).fill("flag-sync")
    drawer.get_by_label("Type", exact=True).select_option("Service")
    drawer.get_by_role("checkbox", name="ManageFeatureFlag", exact=True).check()
    drawer.get_by_label("Name", exact=True).focus()
    page.wait_for_timeout(300)
    page.screenshot(path=str(docs / "ui-add-access-token.png"))
