//! The audit trail screen: newest first, filtered by type, actor, subject and time, paged;
//! each record expands (`<details>`) to its stored JSON; the filtered set downloads as CSV
//! or JSON. Mirrors `listAuditEvents` (`security.audit.read`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::trail::{self, DownloadFormat, FieldError, TrailFilter, TrailForm, TrailPage};
use super::{failed, input, named, query, refusal_of, value};
use crate::console::ConsoleError;
use crate::console::layout;
use crate::console::session::Admin;
use crate::domain::{Event, FunctionId, State};
use crate::http::Shared;

const HERE: &str = "/console/audit";
const TITLE: &str = "Audit trail";

fn form_of(request: &HttpRequest) -> TrailForm {
    let form = query(request);
    TrailForm {
        kind: value(&form, "type"),
        actor: value(&form, "actor"),
        subject: value(&form, "subject"),
        from: value(&form, "from"),
        to: value(&form, "to"),
        before: value(&form, "before"),
    }
}

/// The query string of `form`'s filters (not its cursor), with `extra` pairs after them.
fn link(path: &str, form: &TrailForm, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("type", &form.kind),
        ("actor", &form.actor),
        ("subject", &form.subject),
        ("from", &form.from),
        ("to", &form.to),
    ] {
        if !value.trim().is_empty() {
            query.append_pair(name, value.trim());
        }
    }
    query.extend_pairs(extra);
    let query = query.finish();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

/// `GET /console/audit`: a page of the trail.
async fn show(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let form = form_of(&request);
    let filter = match TrailFilter::parse(&form) {
        Ok(filter) => filter,
        Err(errors) => {
            let view = state.ledger.view();
            let content = render(&view, &form, &errors, None);
            return Ok(layout::respond(StatusCode::BAD_REQUEST, super::page(&admin, HERE, TITLE, content)));
        }
    };
    let reader = state.clone();
    let page = web::block(move || trail::newest_first(reader.ledger.log(), &filter, trail::PAGE_SIZE))
        .await
        .map_err(|_| ConsoleError::Unavailable)?;
    let page = match page {
        Ok(page) => page,
        Err(error) => {
            return Ok(failed(&admin, HERE, TITLE, StatusCode::SERVICE_UNAVAILABLE, &sentence(&error.to_string())));
        }
    };
    let content = {
        let view = state.ledger.view();
        render(&view, &form, &[], Some(&page))
    };
    Ok(layout::respond(StatusCode::OK, super::page(&admin, HERE, TITLE, content)))
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect::<String>() + ".").unwrap_or_default()
}

fn filters(form: &TrailForm, errors: &[FieldError]) -> Markup {
    let type_refusal = refusal_of(errors, "type");
    let chosen: Vec<&str> = form.kind.split(',').map(str::trim).collect();
    html! {
        form.filters.top method="get" action=(HERE) role="search" aria-label="Filter the audit trail" {
            div.field {
                label for="type" { "Event type" }
                select id="type" name="type" aria-describedby=[layout::described_by(type_refusal.as_ref(), "type")] {
                    option value="" selected[form.kind.trim().is_empty()] { "Any type" }
                    @for name in Event::TYPE_NAMES {
                        option value=(name) selected[chosen.contains(&name)] { (name) }
                    }
                }
                (layout::error_for(type_refusal.as_ref(), "type"))
            }
            (input("Actor", "actor", "text", &form.actor, errors, Some("A user id, or system")))
            (input("Subject", "subject", "text", &form.subject, errors, Some("A user, role or group id")))
            (input("From (UTC)", "from", "datetime-local", &form.from, errors, Some("Records at or after this time")))
            (input("To (UTC)", "to", "datetime-local", &form.to, errors, Some("Records before this time")))
            @if let Some(refusal) = refusal_of(errors, "before") { p.error role="alert" { (refusal.message) } }
            div.tools {
                button type="submit" { "Filter" }
                a href=(HERE) { "Clear filters" }
            }
        }
    }
}

fn render(view: &State, form: &TrailForm, errors: &[FieldError], page: Option<&TrailPage>) -> Markup {
    html! {
        p.hint { "Every change ever made, newest first, exactly as the log stores it. Open a record to see its stored JSON." }
        (filters(form, errors))
        @if let Some(page) = page {
            div.tools aria-label="Downloads" {
                a download href=(link(&format!("{HERE}/download"), form, &[("format", "csv")])) { "Download CSV" }
                a download href=(link(&format!("{HERE}/download"), form, &[("format", "json")])) { "Download JSON" }
                span.muted { "(every record that passes the filters, oldest first)" }
            }
            @if page.entries.is_empty() {
                p { "No record passes these filters" @if page.older.is_some() { " among the " (page.scanned) " examined; look further back below" } "." }
            } @else {
                ol.trail reversed aria-label="Records, newest first" {
                    @for entry in &page.entries {
                        li value=(entry.seq) id=(format!("record-{}", entry.seq)) {
                            details {
                                summary {
                                    span.seq { "#" (entry.seq) } " "
                                    strong { (entry.kind) } " · "
                                    time datetime=(entry.at.to_string()) { (entry.at.to_string()) } " · by "
                                    (named(view, &entry.actor)) " · about "
                                    (named(view, &entry.subject))
                                }
                                pre.record { code { (entry.json) } }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if !form.before.trim().is_empty() { a href=(link(HERE, form, &[])) { "Newest" } " " }
                @if let Some(older) = page.older { a rel="next" href=(link(HERE, form, &[("before", &older.to_string())])) { "Older records" } }
            }
        }
    }
}

/// `GET /console/audit/download?format=csv|json`: the filtered set, streamed.
async fn download(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let form = form_of(&request);
    let format = match query(&request).get("format") {
        Some("csv") => DownloadFormat::Csv,
        Some("json") | None => DownloadFormat::Json,
        Some(other) => {
            let reason = format!("“{other}” is not a download format: ask for csv or json");
            return Ok(failed(&admin, HERE, TITLE, StatusCode::BAD_REQUEST, &reason));
        }
    };
    let filter = match TrailFilter::parse(&form) {
        Ok(filter) => filter,
        Err(errors) => {
            let view = state.ledger.view();
            let content = render(&view, &form, &errors, None);
            return Ok(layout::respond(StatusCode::BAD_REQUEST, super::page(&admin, HERE, TITLE, content)));
        }
    };
    let reader = state.clone();
    Ok(super::stream::download(format.content_type(), format.file_name(), move |sink| {
        trail::download(reader.ledger.log(), &filter, format, &mut { sink })
            .map(|_| ())
            .map_err(|error| error.to_string())
    }))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/audit", web::get().to(show)).route("/audit/download", web::get().to(download));
}
