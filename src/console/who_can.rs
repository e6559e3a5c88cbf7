//! Who can: pick a function and an event; the users and keys whose checks would pass now,
//! and why (the roles carrying the function, the chain of groups reaching the event).
//! The answer is `domain::who_can` over the live view, shown through `whoCan`'s own view
//! types, so it lists a key exactly when `checkKey` would allow it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::ConsoleError;
use super::form::Refusal;
use super::groups::paths;
use super::layout::{self, described_by, error_for};
use super::roles::form_of_query;
use super::session::Admin;
use crate::domain::{self, CATALOGUE, EventId, FunctionId, Timestamp};
use crate::http::Shared;
use crate::http::review::WhoCanUser;

const HERE: &str = "/console/who-can";

/// `GET /console/who-can?function=…&event=…`.
async fn who_can(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let query = form_of_query(&request);
    let function_text = query.text("function").unwrap_or_default().to_owned();
    let event_text = query.text("event").unwrap_or_default().to_owned();
    if function_text.is_empty() {
        return Ok(layout::respond(StatusCode::OK, render(&state, &admin, &function_text, &event_text, None, None)));
    }
    let function = match FunctionId::parse(&function_text) {
        Ok(function) => function,
        Err(error) => {
            let refusal = Refusal::of_field("function", error.to_string());
            return Ok(layout::respond(
                refusal.status,
                render(&state, &admin, &function_text, &event_text, None, Some(&refusal)),
            ));
        }
    };
    let event = match (!event_text.is_empty()).then(|| EventId::parse(&event_text)).transpose() {
        Ok(event) => event,
        Err(error) => {
            let refusal = Refusal::of_field("event", format!("This is not an event id: {error}"));
            return Ok(layout::respond(
                refusal.status,
                render(&state, &admin, &function_text, &event_text, None, Some(&refusal)),
            ));
        }
    };
    let (users, names): (Vec<WhoCanUser>, Vec<(String, String)>) = {
        let view = state.ledger.view();
        let answers = domain::who_can(&view, function, event.as_ref().map(EventId::as_str), Timestamp::now());
        (answers.iter().map(WhoCanUser::from).collect(), paths(&view))
    };
    let answer = Answer { function, event: event.map(|event| event.to_string()), users, group_names: names };
    Ok(layout::respond(StatusCode::OK, render(&state, &admin, &function_text, &event_text, Some(&answer), None)))
}

struct Answer {
    function: FunctionId,
    event: Option<String>,
    users: Vec<WhoCanUser>,
    group_names: Vec<(String, String)>,
}

impl Answer {
    fn group_name(&self, id: &str) -> String {
        self.group_names.iter().find(|(group, _)| group == id).map_or(id.to_owned(), |(_, path)| path.clone())
    }
}

fn render(
    _state: &Shared,
    admin: &Admin,
    function: &str,
    event: &str,
    answer: Option<&Answer>,
    refusal: Option<&Refusal>,
) -> Markup {
    let content = html! {
        form method="get" action=(HERE) {
            div.field {
                label for="function" { "Function" }
                select #function name="function" aria-describedby=[described_by(refusal, "function")] {
                    @for info in CATALOGUE.iter() {
                        option value=(info.id) selected[info.id == function] { (info.name) " (" (info.id) ")" }
                    }
                }
                (error_for(refusal, "function"))
            }
            (layout::text_field("Event (optional)", "event", event, refusal))
            button type="submit" { "Who can?" }
        }
        @if let Some(answer) = answer {
            section {
                h2 {
                    (answer.users.len()) " user" @if answer.users.len() != 1 { "s" } " can "
                    (answer.function.info().name)
                    @if let Some(event) = &answer.event { " on " code { (event) } }
                }
                @if answer.function.is_event_scoped() && answer.event.is_none() {
                    p.hint { "This function acts on one event's data: without an event, only users with access to every event are listed." }
                }
                @if !answer.users.is_empty() {
                    table.stack {
                        thead { tr { th scope="col" { "User" } th scope="col" { "Keys" } th scope="col" { "Through roles" } th scope="col" { "Event access" } } }
                        tbody {
                            @for user in &answer.users {
                                tr {
                                    td data-label="User" { a href=(format!("/console/users/{}", user.user_id)) { (user.name) } }
                                    td data-label="Keys" { @for key in &user.key_ids { code { (key) } " " } }
                                    td data-label="Through roles" {
                                        @for (index, role) in user.via_roles.iter().enumerate() {
                                            @if index > 0 { ", " }
                                            a href=(format!("/console/roles/{}", role.id)) { (role.description) }
                                        }
                                    }
                                    td data-label="Event access" {
                                        @match &user.event_access {
                                            None => { "not asked (no event)" }
                                            Some(access) if access.all_events => { "all events" }
                                            Some(access) => {
                                                ul {
                                                    @for chain in &access.group_chains {
                                                        li { (chain.iter().map(|id| answer.group_name(id)).collect::<Vec<_>>().join(" → ")) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(admin, HERE, "Who can", content)
}

/// Registers the who-can screen inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/who-can", web::get().to(who_can));
}
