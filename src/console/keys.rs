//! Keys: every user's key state; generating a key (the secret shown once, with copy and
//! download buttons), rotating with a grace period, revoking with confirmation.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::ConsoleError;
use super::form::Refusal;
use super::layout::{self, described_by, error_for};
use super::roles::form_of_query;
use super::session::{Admin, Posted};
use super::users::parse_user;
use crate::domain::{Command, Event, FunctionId, KeyId, KeySecret, Timestamp, UserId};
use crate::http::Shared;
use crate::http::problem::ApiError;
use crate::http::users::{KeyView, UserView};

const HERE: &str = "/console/keys";

/// The grace periods offered when rotating: how long the old key keeps working.
pub const GRACE_CHOICES: [(u64, &str); 5] =
    [(0, "Now (no grace)"), (300, "5 minutes"), (3600, "1 hour"), (86_400, "24 hours"), (604_800, "7 days")];

fn key_rows(key: &KeyView) -> Markup {
    html! {
        tr { th scope="row" { "Key id" } td { code { (key.key_id) } } }
        tr { th scope="row" { "State" } td { span class=(format!("state-{}", key.state.as_str())) { (key.state.as_str()) } } }
        tr { th scope="row" { "Created" } td { (key.created_at) } }
        tr { th scope="row" { "Expires" } td { (layout::or_never(key.expires_at.as_deref())) } }
        tr { th scope="row" { "Last used" } td { (layout::or_never(key.last_used_at.as_deref())) } }
        @if let Some(until) = &key.valid_until { tr { th scope="row" { "Works until" } td { (until) } } }
    }
}

/// A user's key state: its current key, and the previous one while it is in grace.
pub fn key_summary(user: &UserView) -> Markup {
    html! {
        @match &user.key {
            None => p { "No working key." },
            Some(key) => {
                table.key { caption { "Current key" } tbody { (key_rows(key)) } }
            }
        }
        @if let Some(previous) = &user.previous_key {
            table.key { caption { "Previous key (grace period)" } tbody { (key_rows(previous)) } }
        }
    }
}

/// `GET /console/keys`: every user's key state.
async fn list(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::USERS_READ)?;
    let users: Vec<UserView> = {
        let view = state.ledger.view();
        view.users_after(0).map(|user| UserView::of(&view, user)).collect()
    };
    let content = html! {
        p.hint { "Each user has at most one current key, and the key it replaced while that is in its grace period." }
        table.stack {
            thead { tr {
                th scope="col" { "User" } th scope="col" { "Key id" } th scope="col" { "State" } th scope="col" { "Created" }
                th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "Grace" }
            } }
            tbody {
                @for user in &users {
                    tr {
                        td data-label="User" { a href=(format!("/console/users/{}/key", user.id)) { (user.name) } }
                        @match &user.key {
                            None => { td data-label="Key" colspan="6" { "No key" } }
                            Some(key) => {
                                td data-label="Key id" { code { (key.key_id) } }
                                td data-label="State" { span class=(format!("state-{}", key.state.as_str())) { (key.state.as_str()) } }
                                td data-label="Created" { (key.created_at) }
                                td data-label="Expires" { (layout::or_never(key.expires_at.as_deref())) }
                                td data-label="Last used" { (layout::or_never(key.last_used_at.as_deref())) }
                                td data-label="Grace" {
                                    @match &user.previous_key {
                                        Some(previous) => { "old key " code { (previous.key_id) } " until " (previous.valid_until.as_deref().unwrap_or("—")) }
                                        None => { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::respond(StatusCode::OK, layout::page(&admin, HERE, "Keys", content)))
}

/// `GET /console/users/{user_id}/key`: the user's key and what may be done with it.
async fn show(
    state: Shared,
    admin: Admin,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    if !admin.may(FunctionId::KEYS_MANAGE) {
        admin.require(FunctionId::USERS_READ)?;
    }
    let user_id = parse_user(&path)?;
    // A fixed sentence per outcome: nothing from the query string is shown.
    let notice = match form_of_query(&request).get("done") {
        Some("revoked") => {
            Some("Key revoked: it passes no check from now on, and the view no longer lists it (the audit trail does).")
        }
        _ => None,
    };
    Ok(layout::respond(StatusCode::OK, render_key(&state, &admin, &user_id, notice, None)?))
}

fn user_view(state: &Shared, user_id: &UserId) -> Result<UserView, ConsoleError> {
    let view = state.ledger.view();
    let user = view.user(user_id).ok_or_else(|| ConsoleError::NotFound(format!("no user with id {user_id}")))?;
    Ok(UserView::of(&view, user))
}

fn render_key(
    state: &Shared,
    admin: &Admin,
    user_id: &UserId,
    notice: Option<&str>,
    refusal: Option<&Refusal>,
) -> Result<Markup, ConsoleError> {
    let user = user_view(state, user_id)?;
    let base = format!("/console/users/{user_id}/key");
    let working = user.key.as_ref().filter(|key| matches!(key.state.as_str(), "active" | "grace"));
    let content = html! {
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        p { "User: " a href=(format!("/console/users/{user_id}")) { (user.name) } }
        (key_summary(&user))
        @if admin.may(FunctionId::KEYS_MANAGE) {
            section {
                @if let Some(key) = working {
                    h2 { "Rotate key" }
                    p { "A new key replaces " code { (key.key_id) } ", which was last used: " strong { (layout::or_never(key.last_used_at.as_deref())) } "." }
                    form method="post" action=(base) {
                        (admin.csrf_field())
                        fieldset aria-describedby=[described_by(refusal, "grace")] {
                            legend { "Keep the old key working for" }
                            div.choices {
                                @for (seconds, label) in GRACE_CHOICES {
                                    @let id = format!("grace-{seconds}");
                                    span {
                                        input type="radio" id=(id) name="grace" value=(seconds) checked[seconds == 3600];
                                        " " label for=(id) { (label) }
                                    }
                                }
                            }
                        }
                        (error_for(refusal, "grace"))
                        (layout::text_field("New key expires at (optional, such as 2028-01-31T00:00:00Z)", "expires_at", "", refusal))
                        button type="submit" { "Rotate key" }
                    }
                } @else {
                    h2 { "Generate key" }
                    form method="post" action=(base) {
                        (admin.csrf_field())
                        input type="hidden" name="grace" value="0";
                        (layout::text_field("Expires at (optional, such as 2028-01-31T00:00:00Z)", "expires_at", "", refusal))
                        button type="submit" { "Generate key" }
                    }
                }
            }
            @if let Some(key) = working {
                section {
                    h2 { "Revoke key" }
                    p { "Revoking stops " code { (key.key_id) } " at once: every app using it is refused from now on. This cannot be undone." }
                    form method="post" action=(format!("{base}/revoke")) {
                        (admin.csrf_field())
                        div.field {
                            span {
                                input #confirm type="checkbox" name="confirm" value="yes" required aria-describedby=[described_by(refusal, "confirm")];
                                " " label for="confirm" { "Yes, revoke " (key.key_id) }
                            }
                            (error_for(refusal, "confirm"))
                        }
                        button.danger type="submit" { "Revoke key" }
                    }
                }
            }
        }
    };
    Ok(layout::page(admin, HERE, &format!("Key of {}", user.name), content))
}

/// `POST /console/users/{user_id}/key`: generates a key (rotating the current one with
/// the grace period chosen) and shows its secret once. The secret is in this answer only
/// (`Cache-Control: no-store`), never in a URL, a cookie or a log.
async fn generate(
    state: Shared,
    posted: Posted,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::KEYS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let grace = form.get("grace").unwrap_or("0");
    let parsed = grace
        .parse::<u64>()
        .map_err(|_| ApiError::InvalidValue {
            field: "grace",
            reason: format!("must be a number of seconds, not {grace}"),
        })
        .and_then(|grace| {
            let expires_at = form
                .text("expires_at")
                .map(Timestamp::parse)
                .transpose()
                .map_err(|e| ApiError::InvalidValue { field: "expires_at", reason: e.to_string() })?;
            Ok((grace, expires_at))
        });
    let (secret, key_id) = {
        let mut rng = rand::rng();
        (KeySecret::generate(&mut rng), KeyId::generate(&mut rng))
    };
    let outcome = match parsed {
        Ok((grace_seconds, expires_at)) => {
            let command = Command::GenerateKey {
                user_id: user_id.clone(),
                key_id: key_id.clone(),
                key_hash: secret.hash(),
                expires_at,
                grace_seconds: Some(grace_seconds),
            };
            admin.submit(&state, command).await
        }
        Err(error) => Err(error),
    };
    let applied = match outcome {
        Ok(applied) => applied,
        Err(error) => {
            let field = if matches!(error, ApiError::InvalidValue { field: "expires_at", .. }) {
                "expires_at"
            } else {
                "grace"
            };
            let refusal = Refusal { field: Some(field), ..Refusal::of_error(&error, field) };
            return Ok(layout::respond(refusal.status, render_key(&state, &admin, &user_id, None, Some(&refusal))?));
        }
    };
    if &user_id == admin.user_id() {
        super::session::follow_own_new_key(&request, &admin, secret.hash());
    }
    let replaced = applied.events.iter().find_map(|event| match event {
        Event::KeyGenerated { replaced_key_id: Some(old), replaced_key_valid_until, .. } => {
            Some((old.to_string(), replaced_key_valid_until.map(|at| at.to_string())))
        }
        _ => None,
    });
    let user = user_view(&state, &user_id)?;
    let content = html! {
        div.secret-box {
            p { strong { "Copy this key now: you will not see this again." } " keyledger keeps only its hash." }
            label for="secret" { "New key " code { (key_id) } " of " (user.name) }
            textarea.secret #secret readonly rows="2" spellcheck="false" autocomplete="off" { (secret.expose()) }
            div.tools {
                button type="button" data-copy="secret" hidden { "Copy key" }
                button.secondary type="button" data-download="secret" data-filename=(format!("{key_id}.txt")) hidden { "Download key" }
            }
        }
        @if let Some((old, until)) = &replaced {
            p { "The old key " code { (old) } " "
                @match until { Some(until) => { "keeps working until " (until) "." } None => { "stopped working now." } } }
        }
        p { a href=(format!("/console/users/{user_id}")) { "Done: back to " (user.name) } }
    };
    Ok(layout::respond(StatusCode::CREATED, layout::page(&admin, HERE, "Key generated", content)))
}

/// `POST /console/users/{user_id}/key/revoke`: revokes the user's key, once confirmed.
async fn revoke(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::KEYS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let outcome = if form.get("confirm") == Some("yes") {
        admin.submit(&state, Command::RevokeKey { user_id: user_id.clone() }).await
    } else {
        Err(ApiError::InvalidValue { field: "confirm", reason: "must be ticked to revoke the key".to_owned() })
    };
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("/console/users/{user_id}/key?done=revoked"))),
        Err(error) => {
            let refusal = Refusal { field: Some("confirm"), ..Refusal::of_error(&error, "confirm") };
            Ok(layout::respond(refusal.status, render_key(&state, &admin, &user_id, None, Some(&refusal))?))
        }
    }
}

/// Registers the keys screens inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/keys", web::get().to(list))
        .route("/users/{user_id}/key", web::get().to(show))
        .route("/users/{user_id}/key", web::post().to(generate))
        .route("/users/{user_id}/key/revoke", web::post().to(revoke));
}
