//! The reviewer screens of the console: the audit trail, integrity, the permission view at
//! a point in time and its diff, and the access review with its charts.
//!
//! Every screen needs `security.audit.read`, as the API operations it mirrors do
//! (`listAuditEvents`, `verifyAuditLog`, `getCheckpoint`, `exportAuditBundle`,
//! `getPermissionsAt`, `diffPermissions`, `accessReport`), and only reads: no screen here
//! offers a change, and every form is a `GET`. The view models (`trail`, `access`,
//! `integrity`'s and `point_in_time`'s parsing) are pure and tested on their own; the
//! handlers read the same log, view and history the API reads, off the event loop.
//!
//! * `charts.rs` — bar charts as inline SVG (pure functions from numbers to markup).
//! * `trail.rs` — the audit trail newest first, its filters and its downloads.
//! * `access.rs` — the access review's findings by severity and the charts' counts.
//! * `audit.rs`, `integrity.rs`, `point_in_time.rs`, `access_review.rs` — the screens.
//! * `stream.rs` — a download written on a blocking thread and streamed to the browser.

pub mod access;
pub mod access_review;
pub mod audit;
pub mod charts;
pub mod integrity;
pub mod point_in_time;
mod stream;
pub mod trail;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::assets::{self, Asset};
use super::form::{Form, Refusal};
use super::layout;
use super::session::Admin;
use crate::domain::{GroupId, RoleId, State, UserId};

/// The reviewer screens' stylesheet, read after the console's: its rules only add to it.
pub const STYLESHEET: &Asset =
    &Asset { name: "review.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("review.css") };

/// `GET /console/review/review.css`: the stylesheet, cached for a year (its URL changes
/// with it, as the console's assets' do).
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(STYLESHEET.content_type)
        .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
        .body(STYLESHEET.bytes)
}

/// A reviewer page: the console's layout, with the reviewer stylesheet linked first in
/// the content (a `<link rel="stylesheet">` in the body is allowed and applies to the whole
/// page).
fn page(admin: &Admin, here: &str, title: &str, content: Markup) -> Markup {
    let url = assets::url(STYLESHEET).replace("/console/assets/", "/console/review/");
    layout::page(admin, here, title, html! { link rel="stylesheet" href=(url); (content) })
}

/// Registers the reviewer screens' routes inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/review/review.css", web::get().to(stylesheet));
    audit::configure(config);
    integrity::configure(config);
    point_in_time::configure(config);
    access_review::configure(config);
}

/// The query string read as a form.
fn query(request: &HttpRequest) -> Form {
    Form::parse(request.query_string().as_bytes())
}

/// The first value of `name` in `form`, as typed (empty when absent).
fn value(form: &Form, name: &str) -> String {
    form.get(name).unwrap_or_default().to_owned()
}

/// A page that could not be made (the log unreadable, the history out of reach): the
/// reason in words, with the status the API answers for the same error.
fn failed(admin: &Admin, here: &str, title: &str, status: StatusCode, reason: &str) -> HttpResponse {
    let content = html! {
        p.error role="alert" { (reason) }
        p { a href=(here) { "Try again" } }
    };
    layout::respond(status, page(admin, here, title, content))
}

/// A form field's refusal, as the layout shows it next to the field.
fn refusal_of(errors: &[trail::FieldError], field: &str) -> Option<Refusal> {
    errors.iter().find(|error| error.field == field).map(|error| Refusal::of_field(error.field, error.message.clone()))
}

/// A labelled input of `kind` (`text`, `number`, `datetime-local`) with its refusal.
fn input(label: &str, name: &str, kind: &str, value: &str, errors: &[trail::FieldError], hint: Option<&str>) -> Markup {
    let refusal = refusal_of(errors, name);
    let hint_id = format!("{name}-hint");
    let described: Vec<String> =
        hint.map(|_| hint_id.clone()).into_iter().chain(layout::described_by(refusal.as_ref(), name)).collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    html! {
        div.field {
            label for=(name) { (label) }
            @if kind == "number" {
                input id=(name) type="number" min="0" step="1" inputmode="numeric" name=(name) value=(value) aria-describedby=[described];
            } @else {
                input id=(name) type=(kind) name=(name) value=(value) aria-describedby=[described];
            }
            @if let Some(hint) = hint { span.hint.muted id=(hint_id) { (hint) } }
            (layout::error_for(refusal.as_ref(), name))
        }
    }
}

/// The name the view knows an id by (a user's or group's name, a role's description),
/// for the id as records write it; `None` for `system` and unknown ids.
fn name_of(view: &State, id: &str) -> Option<String> {
    if let Ok(user) = UserId::parse(id) {
        return view.user(&user).map(|user| user.name().to_owned());
    }
    if let Ok(role) = RoleId::parse(id) {
        return view.role(&role).map(|role| role.description().to_owned());
    }
    if let Ok(group) = GroupId::parse(id) {
        return view.group(&group).map(|group| group.name().to_owned());
    }
    None
}

/// An id with the name the view knows it by: "Attendance app (usr_…)".
fn named(view: &State, id: &str) -> Markup {
    html! {
        @match name_of(view, id) {
            Some(name) => { (name) " " span.muted { "(" code { (id) } ")" } }
            None => { code { (id) } }
        }
    }
}
