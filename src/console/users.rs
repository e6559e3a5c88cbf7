//! Users: the list with search and filters (API users, admins, disabled), creating a
//! standalone API user, a user's roles (assign, unassign), event access, key state, and
//! disabling or enabling it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::ConsoleError;
use super::form::Refusal;
use super::groups;
use super::keys::key_summary;
use super::layout::{self, described_by, error_for};
use super::roles::{form_of_query, matches};
use super::session::{Admin, Posted};
use crate::domain::{self, Command, Email, FunctionId, Name, RoleId, UserId};
use crate::http::Shared;
use crate::http::problem::ApiError;
use crate::http::users::UserView;

const HERE: &str = "/console/users";

/// The list's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every user.
    All,
    /// Users holding an API function.
    Api,
    /// Users holding an admin function.
    Admins,
    /// Disabled users.
    Disabled,
}

impl Filter {
    const ALL: [(Filter, &'static str, &'static str); 4] = [
        (Filter::All, "all", "All users"),
        (Filter::Api, "api", "API users"),
        (Filter::Admins, "admins", "Admins"),
        (Filter::Disabled, "disabled", "Disabled"),
    ];

    fn parse(text: &str) -> Filter {
        Filter::ALL.iter().find(|(_, name, _)| *name == text).map_or(Filter::All, |(filter, _, _)| *filter)
    }

    /// Whether a user with these functions and this state passes the filter.
    pub fn keeps(self, functions: domain::FunctionSet, enabled: bool) -> bool {
        match self {
            Filter::All => true,
            Filter::Api => functions.has_api(),
            Filter::Admins => functions.has_admin(),
            Filter::Disabled => !enabled,
        }
    }
}

/// What a user is, in a word.
pub fn kind_of(functions: domain::FunctionSet) -> &'static str {
    match (functions.has_api(), functions.has_admin()) {
        (true, _) => "API user",
        (false, true) => "Admin",
        (false, false) => "No functions",
    }
}

pub(super) fn parse_user(raw: &str) -> Result<UserId, ConsoleError> {
    UserId::parse(raw).map_err(|_| ConsoleError::NotFound(format!("no user with id {raw}")))
}

/// `GET /console/users`: the users, searched by name or email (`q`) and filtered (`kind`).
async fn list(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::USERS_READ)?;
    let query = form_of_query(&request);
    let search = query.get("q").unwrap_or_default().trim().to_owned();
    let filter = Filter::parse(query.get("kind").unwrap_or_default());
    Ok(layout::respond(StatusCode::OK, render_list(&state, &admin, &search, filter, ("", ""), None)))
}

fn render_list(
    state: &Shared,
    admin: &Admin,
    search: &str,
    filter: Filter,
    (name, email): (&str, &str),
    refusal: Option<&Refusal>,
) -> Markup {
    let rows: Vec<(UserView, &'static str)> = {
        let view = state.ledger.view();
        view.users_after(0)
            .filter(|user| matches(user.name(), search) || user.email().is_some_and(|email| matches(email, search)))
            .filter(|user| filter.keeps(view.functions_of(user), user.is_enabled()))
            .map(|user| (UserView::of(&view, user), kind_of(view.functions_of(user))))
            .collect()
    };
    let content = html! {
        form.search method="get" action=(HERE) role="search" {
            label for="q" { "Search users" }
            input #q type="search" name="q" value=(search);
            label for="kind" { "Show" }
            select #kind name="kind" {
                @for (option, value, label) in Filter::ALL {
                    option value=(value) selected[option == filter] { (label) }
                }
            }
            button type="submit" { "Apply" }
        }
        @if rows.is_empty() {
            p { "No user matches." }
        } @else {
            table.stack {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Key" } th scope="col" { "Last used" } } }
                tbody {
                    @for (user, kind) in &rows {
                        tr {
                            td data-label="Name" { a href=(format!("{HERE}/{}", user.id)) { (user.name) } }
                            td data-label="Kind" { (kind) }
                            td data-label="Status" { @if user.enabled { "Enabled" } @else { span.disabled { "Disabled" } } }
                            td data-label="Key" { @match &user.key { Some(key) => { span class=(format!("state-{}", key.state.as_str())) { (key.state.as_str()) } } None => { "none" } } }
                            td data-label="Last used" { (layout::or_never(user.key.as_ref().and_then(|key| key.last_used_at.as_deref()))) }
                        }
                    }
                }
            }
        }
        @if admin.may(FunctionId::USERS_MANAGE) {
            section {
                h2 { "New standalone API user" }
                p.hint { "A user for one app: give it an API role, event access and a key. An API role is held alone." }
                form method="post" action=(HERE) {
                    (admin.csrf_field())
                    (layout::text_field("Name", "name", name, refusal))
                    (layout::text_field("Email (optional)", "email", email, refusal))
                    button type="submit" { "Create user" }
                }
            }
        }
    };
    layout::page(admin, HERE, "Users", content)
}

/// `POST /console/users`: creates a user.
async fn create(state: Shared, posted: Posted) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::USERS_MANAGE)?;
    let (name, email) = (form.get("name").unwrap_or_default(), form.text("email"));
    let user_id = UserId::generate(&mut rand::rng());
    let parsed = Name::parse(name)
        .map_err(|e| ApiError::InvalidValue { field: "name", reason: e.to_string() })
        .and_then(|name| {
            let email = email
                .map(Email::parse)
                .transpose()
                .map_err(|e| ApiError::InvalidValue { field: "email", reason: e.to_string() })?;
            Ok((name, email))
        });
    let outcome = match parsed {
        Ok((name, email)) => admin.submit(&state, Command::CreateUser { user_id: user_id.clone(), name, email }).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{user_id}"))),
        Err(error) => {
            let refusal = Refusal::of_error(&error, "name");
            let page = render_list(&state, &admin, "", Filter::All, (name, email.unwrap_or_default()), Some(&refusal));
            Ok(layout::respond(refusal.status, page))
        }
    }
}

/// `GET /console/users/{user_id}`: one user.
async fn show(state: Shared, admin: Admin, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::USERS_READ)?;
    let user_id = parse_user(&path)?;
    Ok(layout::respond(StatusCode::OK, render_user(&state, &admin, &user_id, None)?))
}

/// The user page, with `refusal` shown next to the control it is about.
pub(super) fn render_user(
    state: &Shared,
    admin: &Admin,
    user_id: &UserId,
    refusal: Option<&Refusal>,
) -> Result<Markup, ConsoleError> {
    let (user, held, assignable, functions) = {
        let view = state.ledger.view();
        let user = view.user(user_id).ok_or_else(|| ConsoleError::NotFound(format!("no user with id {user_id}")))?;
        let held: Vec<(String, String)> = user
            .roles()
            .iter()
            .filter_map(|id| view.role(id))
            .map(|role| (role.id().to_string(), role.description().to_owned()))
            .collect();
        let assignable: Vec<(String, String)> = view
            .roles_after(0)
            .filter(|role| !user.roles().contains(role.id()))
            .map(|role| (role.id().to_string(), role.description().to_owned()))
            .collect();
        let functions: Vec<&'static str> = view.functions_of(user).iter().map(|f| f.info().name).collect();
        (UserView::of(&view, user), held, assignable, functions)
    };
    let manage = admin.may(FunctionId::USERS_MANAGE);
    let base = format!("{HERE}/{user_id}");
    let content = html! {
        p.meta {
            "Id " code { (user.id) }
            @if let Some(email) = &user.email { " · " (email) }
            " · created " (user.created_at) " · version " (user.version)
        }
        p {
            "Status: " @if user.enabled { strong.active { "Enabled" } } @else { strong.disabled { "Disabled" } }
        }
        @if manage {
            @if user.enabled {
                (layout::action_button(admin, &format!("{base}/disable"), "Disable user", "status", refusal))
            } @else {
                (layout::action_button(admin, &format!("{base}/enable"), "Enable user", "status", refusal))
            }
        }
        section {
            h2 { "Roles" }
            @if held.is_empty() { p { "No role." } }
            ul {
                @for (id, description) in &held {
                    li {
                        a href=(format!("/console/roles/{id}")) { (description) }
                        @if manage {
                            " "
                            form.inline method="post" action=(format!("{base}/roles/{id}/unassign")) {
                                (admin.csrf_field())
                                button.secondary type="submit" aria-label=(format!("Unassign {description}")) { "Unassign" }
                            }
                        }
                    }
                }
            }
            (error_for(refusal, "unassign"))
            @if !functions.is_empty() {
                details { summary { "Functions from these roles (" (functions.len()) ")" } ul { @for name in &functions { li { (name) } } } }
            }
            @if manage && !assignable.is_empty() {
                form method="post" action=(format!("{base}/roles")) {
                    (admin.csrf_field())
                    div.field {
                        label for="role" { "Role to assign" }
                        select #role name="role" aria-describedby=[described_by(refusal, "role")] {
                            @for (id, description) in &assignable { option value=(id) { (description) } }
                        }
                        (error_for(refusal, "role"))
                    }
                    button type="submit" { "Assign role" }
                }
            }
        }
        section {
            h2 { "Event access" }
            (groups::access_summary(state, &user.event_access))
            @if admin.may(FunctionId::EVENT_ACCESS_MANAGE) {
                (groups::access_form(state, admin, &format!("{base}/event-access"), None, &user.event_access, refusal))
            }
        }
        section {
            h2 { "Key" }
            (key_summary(&user))
            @if admin.may(FunctionId::KEYS_MANAGE) {
                p { a href=(format!("{base}/key")) { "Generate, rotate or revoke this user's key" } }
            }
        }
    };
    Ok(layout::page(admin, HERE, &format!("User: {}", user.name), content))
}

/// Answers a change to the user `user_id`: back to its page, or its page with the
/// refusal next to `field`.
async fn changed(
    state: &Shared,
    admin: &Admin,
    user_id: &UserId,
    outcome: Result<crate::ledger::Applied, ApiError>,
    field: &'static str,
) -> Result<HttpResponse, ConsoleError> {
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{user_id}"))),
        Err(error) => {
            let refusal = Refusal { field: Some(field), ..Refusal::of_error(&error, field) };
            Ok(layout::respond(refusal.status, render_user(state, admin, user_id, Some(&refusal))?))
        }
    }
}

async fn disable(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    posted.admin.require(FunctionId::USERS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let outcome = posted.admin.submit(&state, Command::DisableUser { user_id: user_id.clone() }).await;
    changed(&state, &posted.admin, &user_id, outcome, "status").await
}

async fn enable(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    posted.admin.require(FunctionId::USERS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let outcome = posted.admin.submit(&state, Command::EnableUser { user_id: user_id.clone() }).await;
    changed(&state, &posted.admin, &user_id, outcome, "status").await
}

async fn assign(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    posted.admin.require(FunctionId::USERS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let raw = posted.form.get("role").unwrap_or_default();
    let outcome = match RoleId::parse(raw) {
        Ok(role_id) => posted.admin.submit(&state, Command::AssignRole { user_id: user_id.clone(), role_id }).await,
        Err(_) => Err(ApiError::NotFound { resource: domain::Resource::Role, id: raw.to_owned() }),
    };
    changed(&state, &posted.admin, &user_id, outcome, "role").await
}

async fn unassign(
    state: Shared,
    posted: Posted,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    posted.admin.require(FunctionId::USERS_MANAGE)?;
    let user_id = parse_user(&path.0)?;
    let outcome = match RoleId::parse(&path.1) {
        Ok(role_id) => posted.admin.submit(&state, Command::UnassignRole { user_id: user_id.clone(), role_id }).await,
        Err(_) => Err(ApiError::NotFound { resource: domain::Resource::Role, id: path.1.clone() }),
    };
    changed(&state, &posted.admin, &user_id, outcome, "unassign").await
}

async fn event_access(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    posted.admin.require(FunctionId::EVENT_ACCESS_MANAGE)?;
    let user_id = parse_user(&path)?;
    let outcome = match groups::parse_access(&posted.form) {
        Ok(access) => {
            posted.admin.submit(&state, Command::SetUserEventAccess { user_id: user_id.clone(), access }).await
        }
        Err(error) => Err(error),
    };
    changed(&state, &posted.admin, &user_id, outcome, "access").await
}

/// Registers the users screens inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route("/users/{user_id}", web::get().to(show))
        .route("/users/{user_id}/disable", web::post().to(disable))
        .route("/users/{user_id}/enable", web::post().to(enable))
        .route("/users/{user_id}/roles", web::post().to(assign))
        .route("/users/{user_id}/roles/{role_id}/unassign", web::post().to(unassign))
        .route("/users/{user_id}/event-access", web::post().to(event_access));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FunctionSet;

    #[test]
    fn filters_keep_api_users_admins_or_disabled_users() {
        let mut api = FunctionSet::EMPTY;
        api.insert(FunctionId::parse("api.events.read").unwrap());
        let admin = FunctionSet::all_admin();
        assert!(Filter::Api.keeps(api, true) && !Filter::Api.keeps(admin, true));
        assert!(Filter::Admins.keeps(admin, true) && !Filter::Admins.keeps(api, true));
        assert!(Filter::Disabled.keeps(api, false) && !Filter::Disabled.keeps(api, true));
        assert!(Filter::All.keeps(FunctionSet::EMPTY, false));
        assert_eq!(Filter::parse("admins"), Filter::Admins);
        assert_eq!(Filter::parse("<script>"), Filter::All);
        assert_eq!(kind_of(api), "API user");
        assert_eq!(kind_of(admin), "Admin");
        assert_eq!(kind_of(FunctionSet::EMPTY), "No functions");
    }
}
