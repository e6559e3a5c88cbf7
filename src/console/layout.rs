//! The console's page layout: the document shell, the navigation (only what the
//! signed-in admin may see), and the pieces every form uses (labelled fields, the error
//! next to a field, buttons that post with the CSRF token).
//!
//! maud escapes every interpolated value; nothing here writes raw HTML from data.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::form::Refusal;
use super::session::Admin;
use crate::domain::FunctionId;

/// A screen in the navigation: its path, its label and the admin function it needs.
#[derive(Debug, Clone, Copy)]
pub struct NavEntry {
    /// Where it is served.
    pub path: &'static str,
    /// What the link says.
    pub label: &'static str,
    /// The function an admin needs to see it.
    pub needs: FunctionId,
}

/// Every screen, in the order the navigation lists them: the admin screens, then the
/// reviewer screens (`src/console/review/`).
pub const NAV: &[NavEntry] = &[
    NavEntry { path: "/console/roles", label: "Roles", needs: FunctionId::ROLES_READ },
    NavEntry { path: "/console/users", label: "Users", needs: FunctionId::USERS_READ },
    NavEntry { path: "/console/keys", label: "Keys", needs: FunctionId::USERS_READ },
    NavEntry { path: "/console/event-access", label: "Event access", needs: FunctionId::EVENT_ACCESS_READ },
    NavEntry { path: "/console/who-can", label: "Who can", needs: FunctionId::AUDIT_READ },
    NavEntry { path: "/console/audit", label: "Audit trail", needs: FunctionId::AUDIT_READ },
    NavEntry { path: "/console/integrity", label: "Integrity", needs: FunctionId::AUDIT_READ },
    NavEntry { path: "/console/point-in-time", label: "Point in time", needs: FunctionId::AUDIT_READ },
    NavEntry { path: "/console/access-review", label: "Access review", needs: FunctionId::AUDIT_READ },
];

/// The first screen `admin` may see, where `/console/` sends it; `None` when its
/// functions show no screen (such as `security.keys.manage` alone).
pub fn home(admin: &Admin) -> Option<&'static str> {
    NAV.iter().find(|entry| admin.may(entry.needs)).map(|entry| entry.path)
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · keyledger console" }
            link rel="stylesheet" href=(assets::url(assets::STYLESHEET));
            script src=(assets::url(assets::SCRIPT)) defer {}
        }
    }
}

/// A page of the signed-in console: the header (who is signed in, sign-out), the
/// navigation (`here` is the path of the current entry), the title and `content`.
pub fn page(admin: &Admin, here: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "keyledger" }
                    nav aria-label="Screens" {
                        ul {
                            @for entry in NAV.iter().filter(|entry| admin.may(entry.needs)) {
                                li {
                                    a href=(entry.path) aria-current=[(entry.path == here).then_some("page")] { (entry.label) }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/console/sign-out" {
                        (admin.csrf_field())
                        span.who { "Signed in as " a href=(format!("/console/users/{}", admin.user_id())) { (admin.name()) } }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page outside a session (sign-in, errors without a session).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { (content) }
        }
    }
}

/// An HTML answer with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

/// A 303 to `location`: where a form that succeeded sends the browser (post, redirect,
/// get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// The refusal of `field`, if `refusal` is about it: a paragraph the field names with
/// `aria-describedby` (`{field}-error`).
pub fn error_for(refusal: Option<&Refusal>, field: &str) -> Markup {
    html! {
        @if let Some(refusal) = refusal.filter(|refusal| refusal.is_about(field)) {
            p.error id=(format!("{field}-error")) role="alert" { (refusal.message) }
        }
    }
}

/// The `aria-describedby` of a field `refusal` may be about.
pub fn described_by(refusal: Option<&Refusal>, field: &str) -> Option<String> {
    refusal.filter(|refusal| refusal.is_about(field)).map(|_| format!("{field}-error"))
}

/// A labelled text input `name`, with its refusal under it.
pub fn text_field(label: &str, name: &str, value: &str, refusal: Option<&Refusal>) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) type="text" name=(name) value=(value) aria-describedby=[described_by(refusal, name)];
            (error_for(refusal, name))
        }
    }
}

/// A form of one button that posts to `action` with the CSRF token, such as "Disable".
/// `field` names the button so that a refusal of what it did is shown next to it.
pub fn action_button(admin: &Admin, action: &str, label: &str, field: &str, refusal: Option<&Refusal>) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (admin.csrf_field())
            button id=(field) type="submit" name="action" value=(field) aria-describedby=[described_by(refusal, field)] { (label) }
            (error_for(refusal, field))
        }
    }
}

/// A table cell's text for an optional time.
pub fn or_never(value: Option<&str>) -> &str {
    value.unwrap_or("never")
}
