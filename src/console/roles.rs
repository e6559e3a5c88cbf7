//! Roles: the list with search, creating a role, a role's functions as checkboxes grouped
//! by kind with bulk activate and deactivate (the seed's "Tools > Activate"), its holders.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::ConsoleError;
use super::form::{Form, Refusal};
use super::layout::{self, described_by, error_for};
use super::session::{Admin, Posted};
use crate::domain::{CATALOGUE, Command, FunctionId, FunctionKind, Name, RoleId};
use crate::http::Shared;
use crate::http::problem::ApiError;
use crate::http::roles::RoleView;

const HERE: &str = "/console/roles";

/// The groups the functions are shown in, as the seed groups them.
const KINDS: [(FunctionKind, &str); 3] =
    [(FunctionKind::Read, "API read"), (FunctionKind::Write, "API write"), (FunctionKind::Admin, "Admin")];

/// Whether `text` matches the search `query` (case-insensitive substring).
pub fn matches(text: &str, query: &str) -> bool {
    query.is_empty() || text.to_lowercase().contains(&query.to_lowercase())
}

fn query_of(request: &HttpRequest, name: &str) -> String {
    form_of_query(request).get(name).unwrap_or_default().trim().to_owned()
}

/// The query string read as a form.
pub fn form_of_query(request: &HttpRequest) -> Form {
    Form::parse(request.query_string().as_bytes())
}

fn parse_role(raw: &str) -> Result<RoleId, ConsoleError> {
    RoleId::parse(raw).map_err(|_| ConsoleError::NotFound(format!("no role with id {raw}")))
}

/// `GET /console/roles`: the roles, searched by description (`q`).
async fn list(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::ROLES_READ)?;
    let query = query_of(&request, "q");
    Ok(layout::respond(StatusCode::OK, render_list(&state, &admin, &query, "", None)))
}

fn render_list(state: &Shared, admin: &Admin, query: &str, description: &str, refusal: Option<&Refusal>) -> Markup {
    let roles: Vec<RoleView> = {
        let view = state.ledger.view();
        view.roles_after(0).filter(|role| matches(role.description(), query)).map(RoleView::from).collect()
    };
    let content = html! {
        form.search method="get" action=(HERE) role="search" {
            label for="q" { "Search roles" }
            input #q type="search" name="q" value=(query);
            button type="submit" { "Search" }
        }
        @if roles.is_empty() {
            p { "No role matches." }
        } @else {
            table {
                thead { tr { th scope="col" { "Role" } th scope="col" { "Kind" } th scope="col" { "Functions" } th scope="col" { "Holders" } } }
                tbody {
                    @for role in &roles {
                        tr {
                            td { a href=(format!("{HERE}/{}", role.id)) { (role.description) } }
                            td { @if role.api_role { "API" } @else if role.functions.is_empty() { "—" } @else { "Admin" } }
                            td { (role.functions.len()) }
                            td { (role.users.len()) }
                        }
                    }
                }
            }
        }
        @if admin.may(FunctionId::ROLES_MANAGE) {
            section {
                h2 { "New role" }
                form method="post" action=(HERE) {
                    (admin.csrf_field())
                    (layout::text_field("Description", "description", description, refusal))
                    button type="submit" { "Create role" }
                }
            }
        }
    };
    layout::page(admin, HERE, "Roles", content)
}

/// `POST /console/roles`: creates a role.
async fn create(state: Shared, posted: Posted) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::ROLES_MANAGE)?;
    let description = form.get("description").unwrap_or_default();
    let role_id = RoleId::generate(&mut rand::rng());
    let outcome = match Name::parse(description) {
        Err(error) => Err(ApiError::InvalidValue { field: "description", reason: error.to_string() }),
        Ok(name) => admin.submit(&state, Command::CreateRole { role_id: role_id.clone(), description: name }).await,
    };
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{role_id}"))),
        Err(error) => {
            let refusal = Refusal::of_error(&error, "description");
            Ok(layout::respond(refusal.status, render_list(&state, &admin, "", description, Some(&refusal))))
        }
    }
}

/// `GET /console/roles/{role_id}`: one role.
async fn show(state: Shared, admin: Admin, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::ROLES_READ)?;
    let role_id = parse_role(&path)?;
    Ok(layout::respond(StatusCode::OK, render_role(&state, &admin, &role_id, &BTreeSet::new(), None)?))
}

fn render_role(
    state: &Shared,
    admin: &Admin,
    role_id: &RoleId,
    selected: &BTreeSet<String>,
    refusal: Option<&Refusal>,
) -> Result<Markup, ConsoleError> {
    let (role, holders) = {
        let view = state.ledger.view();
        let role = view.role(role_id).ok_or_else(|| ConsoleError::NotFound(format!("no role with id {role_id}")))?;
        let holders: Vec<(String, String)> = role
            .holders()
            .iter()
            .map(|id| (id.to_string(), view.user(id).map(|user| user.name().to_owned()).unwrap_or_default()))
            .collect();
        (RoleView::from(role), holders)
    };
    let manage = admin.may(FunctionId::ROLES_MANAGE);
    let action = format!("{HERE}/{role_id}/functions");
    let content = html! {
        p.meta { "Id " code { (role.id) } " · created " (role.created_at) " · version " (role.version)
            @if role.api_role { " · API role (held alone by its users)" } }
        section {
            h2 { "Functions" }
            form method="post" action=(action) {
                @if manage { (admin.csrf_field()) }
                @for (kind, heading) in KINDS {
                    fieldset {
                        legend { (heading) }
                        table.functions {
                            thead { tr {
                                @if manage { th scope="col" { span.visually-hidden { "Select" } } }
                                th scope="col" { "Function" } th.wide-only scope="col" { "Id" } th scope="col" { "Status" }
                            } }
                            tbody {
                                @for info in CATALOGUE.iter().filter(|info| info.kind == kind) {
                                    @let active = role.functions.contains(&info.id);
                                    @let id = format!("function-{}", info.id.replace('.', "-"));
                                    tr {
                                        @if manage {
                                            td { input type="checkbox" id=(id) name="function" value=(info.id) checked[selected.contains(info.id)]; }
                                            td { label for=(id) { (info.name) } }
                                        } @else {
                                            td { (info.name) }
                                        }
                                        td.wide-only { code { (info.id) } }
                                        td { @if active { strong.active { "Active" } } @else { span.inactive { "Inactive" } } }
                                    }
                                }
                            }
                        }
                    }
                }
                @if manage {
                    div.tools id="functions" aria-describedby=[described_by(refusal, "functions")] {
                        button type="submit" name="action" value="activate" { "Activate" }
                        button type="submit" name="action" value="deactivate" { "Deactivate" }
                    }
                    (error_for(refusal, "functions"))
                }
            }
        }
        section {
            h2 { "Holders" }
            @if holders.is_empty() {
                p { "Nobody holds this role." }
            } @else {
                ul { @for (id, name) in &holders { li { a href=(format!("/console/users/{id}")) { (name) } " " code { (id) } } } }
            }
        }
    };
    Ok(layout::page(admin, HERE, &format!("Role: {}", role.description), content))
}

/// `POST /console/roles/{role_id}/functions`: activates or deactivates the selected
/// functions (`action` = `activate` or `deactivate`).
async fn functions(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::ROLES_MANAGE)?;
    let role_id = parse_role(&path)?;
    let selected: BTreeSet<String> = form.all("function").map(str::to_owned).collect();
    let parsed: Result<BTreeSet<FunctionId>, ApiError> = selected
        .iter()
        .map(|id| FunctionId::parse(id).map_err(|unknown| ApiError::UnknownFunction(unknown.to_string())))
        .collect();
    let outcome = match (parsed, form.get("action")) {
        (Err(error), _) => Err(error),
        (Ok(functions), _) if functions.is_empty() => Err(ApiError::InvalidValue {
            field: "functions",
            reason: "must name at least one function: select some first".to_owned(),
        }),
        (Ok(functions), Some("activate")) => {
            admin.submit(&state, Command::ActivateFunctions { role_id: role_id.clone(), functions }).await
        }
        (Ok(functions), Some("deactivate")) => {
            admin.submit(&state, Command::DeactivateFunctions { role_id: role_id.clone(), functions }).await
        }
        (Ok(_), _) => {
            Err(ApiError::InvalidValue { field: "functions", reason: "choose Activate or Deactivate".to_owned() })
        }
    };
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{role_id}"))),
        Err(error) => {
            let refusal = Refusal::of_error(&error, "functions");
            let refusal = Refusal { field: Some("functions"), ..refusal };
            Ok(layout::respond(refusal.status, render_role(&state, &admin, &role_id, &selected, Some(&refusal))?))
        }
    }
}

/// Registers the roles screens inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/roles", web::get().to(list))
        .route("/roles", web::post().to(create))
        .route("/roles/{role_id}", web::get().to(show))
        .route("/roles/{role_id}/functions", web::post().to(functions));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_a_case_insensitive_substring_and_empty_matches_all() {
        assert!(matches("API Access", "api"));
        assert!(matches("API Access", "ACCESS"));
        assert!(matches("API Access", ""));
        assert!(!matches("API Access", "admin"));
    }
}
