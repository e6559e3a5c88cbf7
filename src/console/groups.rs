//! Event access: the nested event groups as a tree, creating a group, adding and removing
//! events, and setting a user's access (here and on the user's page).

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};

use super::ConsoleError;
use super::form::{Form, Refusal};
use super::layout::{self, described_by, error_for};
use super::session::{Admin, Posted};
use super::users::parse_user;
use crate::domain::{self, Command, EventAccess, EventId, FunctionId, GroupId, Name};
use crate::http::Shared;
use crate::http::groups::GroupView;
use crate::http::problem::ApiError;
use crate::wire::EventAccessView;

const HERE: &str = "/console/event-access";

/// One group of the tree, with its subgroups.
#[derive(Debug)]
pub struct Node {
    /// The group.
    pub group: GroupView,
    /// Its subgroups, in creation order.
    pub children: Vec<Node>,
}

/// The groups as a forest: the top-level groups in creation order, each with its subgroups.
pub fn tree(view: &domain::State) -> Vec<Node> {
    fn node(view: &domain::State, group: &domain::Group) -> Node {
        let mut children: Vec<&domain::Group> = group.children().iter().filter_map(|id| view.group(id)).collect();
        children.sort_by_key(|child| child.created().seq);
        Node { group: GroupView::from(group), children: children.into_iter().map(|child| node(view, child)).collect() }
    }
    view.groups_after(0).filter(|group| group.parent().is_none()).map(|group| node(view, group)).collect()
}

/// Every group with its path of names from the top ("Europe / France"), in tree order.
pub fn paths(view: &domain::State) -> Vec<(String, String)> {
    fn walk(nodes: &[Node], prefix: &str, out: &mut Vec<(String, String)>) {
        for node in nodes {
            let path =
                if prefix.is_empty() { node.group.name.clone() } else { format!("{prefix} / {}", node.group.name) };
            out.push((node.group.id.clone(), path.clone()));
            walk(&node.children, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&tree(view), "", &mut out);
    out
}

fn render_tree(nodes: &[Node]) -> Markup {
    html! {
        ul {
            @for node in nodes {
                li {
                    a href=(format!("{HERE}/{}", node.group.id)) { (node.group.name) }
                    @if !node.group.events.is_empty() {
                        " — " span.muted { (node.group.events.len()) " event" @if node.group.events.len() != 1 { "s" } ": " }
                        (node.group.events.join(", "))
                    }
                    @if !node.children.is_empty() { (render_tree(&node.children)) }
                }
            }
        }
    }
}

/// A user's event access in words.
pub fn access_summary(state: &Shared, access: &EventAccessView) -> Markup {
    let names: Vec<(String, String)> = {
        let view = state.ledger.view();
        let paths = paths(&view);
        access
            .groups
            .iter()
            .map(|id| (id.clone(), paths.iter().find(|(group, _)| group == id).map_or(id.clone(), |(_, p)| p.clone())))
            .collect()
    };
    html! {
        @if access.all_events {
            p { "All events, now and later." }
        } @else if names.is_empty() {
            p { "No event." }
        } @else {
            p { "The events of these groups and their subgroups:" }
            ul { @for (id, path) in &names { li { a href=(format!("{HERE}/{id}")) { (path) } } } }
        }
    }
}

/// The form that sets a user's event access, posting to `action`. With `users`, it starts
/// with a choice of user; `current` is what the boxes show ticked.
pub fn access_form(
    state: &Shared,
    admin: &Admin,
    action: &str,
    users: Option<&[(String, String)]>,
    current: &EventAccessView,
    refusal: Option<&Refusal>,
) -> Markup {
    let groups = paths(&state.ledger.view());
    html! {
        form method="post" action=(action) {
            (admin.csrf_field())
            @if let Some(users) = users {
                div.field {
                    label for="access-user" { "User" }
                    select #access-user name="user" aria-describedby=[described_by(refusal, "user")] {
                        @for (id, name) in users { option value=(id) { (name) } }
                    }
                    (error_for(refusal, "user"))
                }
            }
            fieldset aria-describedby=[described_by(refusal, "access")] {
                legend { "Event access" }
                div.choices {
                    span {
                        input #access-all type="radio" name="access" value="all" checked[current.all_events];
                        " " label for="access-all" { "All events" }
                    }
                    span {
                        input #access-groups type="radio" name="access" value="groups" checked[!current.all_events];
                        " " label for="access-groups" { "Only the events of the groups ticked below" }
                    }
                }
                @if groups.is_empty() {
                    p.muted { "No group yet." }
                } @else {
                    div.choices {
                        @for (id, path) in &groups {
                            @let control = format!("access-group-{id}");
                            span {
                                input type="checkbox" id=(control) name="group" value=(id) checked[current.groups.contains(id)];
                                " " label for=(control) { (path) }
                            }
                        }
                    }
                }
            }
            (error_for(refusal, "access"))
            button type="submit" { "Set event access" }
        }
    }
}

/// Reads the access form: all events, or the groups ticked.
pub fn parse_access(form: &Form) -> Result<EventAccess, ApiError> {
    let groups = form
        .all("group")
        .map(|raw| {
            GroupId::parse(raw)
                .map_err(|_| ApiError::NotFound { resource: domain::Resource::Group, id: raw.to_owned() })
        })
        .collect::<Result<BTreeSet<GroupId>, _>>()?;
    match form.get("access") {
        Some("all") if groups.is_empty() => Ok(EventAccess::AllEvents),
        Some("all") => Err(ApiError::InvalidValue {
            field: "access",
            reason: "is all events, so untick the groups (or choose the groups)".to_owned(),
        }),
        Some("groups") => Ok(EventAccess::Groups(groups)),
        _ => Err(ApiError::InvalidValue { field: "access", reason: "must be all events or some groups".to_owned() }),
    }
}

fn parse_group(raw: &str) -> Result<GroupId, ConsoleError> {
    GroupId::parse(raw).map_err(|_| ConsoleError::NotFound(format!("no group with id {raw}")))
}

/// `GET /console/event-access`: the tree, a new group, a user's access.
async fn index(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::EVENT_ACCESS_READ)?;
    Ok(layout::respond(StatusCode::OK, render_index(&state, &admin, "", None)))
}

fn render_index(state: &Shared, admin: &Admin, name: &str, refusal: Option<&Refusal>) -> Markup {
    let (nodes, groups, users) = {
        let view = state.ledger.view();
        let users: Vec<(String, String)> =
            view.users_after(0).map(|user| (user.id().to_string(), user.name().to_owned())).collect();
        (tree(&view), paths(&view), users)
    };
    let manage = admin.may(FunctionId::EVENT_ACCESS_MANAGE);
    let content = html! {
        section.tree-section {
            h2 { "Groups" }
            @if nodes.is_empty() { p { "No group yet." } } @else { div.tree { (render_tree(&nodes)) } }
        }
        @if manage {
            section {
                h2 { "New group" }
                form method="post" action=(HERE) {
                    (admin.csrf_field())
                    (layout::text_field("Group name", "name", name, refusal))
                    div.field {
                        label for="parent" { "Inside group" }
                        select #parent name="parent" aria-describedby=[described_by(refusal, "parent")] {
                            option value="" { "(top level)" }
                            @for (id, path) in &groups { option value=(id) { (path) } }
                        }
                        (error_for(refusal, "parent"))
                    }
                    button type="submit" { "Create group" }
                }
            }
            @if admin.may(FunctionId::USERS_READ) && !users.is_empty() {
                section {
                    h2 { "Set a user's event access" }
                    (access_form(state, admin, &format!("{HERE}/users"), Some(&users), &EventAccessView { all_events: false, groups: vec![] }, refusal))
                }
            }
        }
    };
    layout::page(admin, HERE, "Event access", content)
}

/// `POST /console/event-access`: creates a group.
async fn create(state: Shared, posted: Posted) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::EVENT_ACCESS_MANAGE)?;
    let name = form.get("name").unwrap_or_default();
    let group_id = GroupId::generate(&mut rand::rng());
    let parent = form.text("parent").map(|raw| {
        GroupId::parse(raw).map_err(|_| ApiError::NotFound { resource: domain::Resource::Group, id: raw.to_owned() })
    });
    let outcome = match (Name::parse(name), parent.transpose()) {
        (Err(error), _) => Err(ApiError::InvalidValue { field: "name", reason: error.to_string() }),
        (_, Err(error)) => Err(error),
        (Ok(name), Ok(parent_id)) => {
            admin.submit(&state, Command::CreateEventGroup { group_id: group_id.clone(), name, parent_id }).await
        }
    };
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{group_id}"))),
        Err(error) => {
            let refusal = Refusal::of_error(&error, "name");
            Ok(layout::respond(refusal.status, render_index(&state, &admin, name, Some(&refusal))))
        }
    }
}

/// `POST /console/event-access/users`: sets the chosen user's access.
async fn set_user_access(state: Shared, posted: Posted) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::EVENT_ACCESS_MANAGE)?;
    let raw = form.get("user").unwrap_or_default();
    let outcome = match (parse_user(raw), parse_access(&form)) {
        (Err(_), _) => Err(ApiError::NotFound { resource: domain::Resource::User, id: raw.to_owned() }),
        (_, Err(error)) => Err(error),
        (Ok(user_id), Ok(access)) => admin
            .submit(&state, Command::SetUserEventAccess { user_id: user_id.clone(), access })
            .await
            .map(|_| user_id),
    };
    match outcome {
        Ok(user_id) => Ok(layout::see_other(&format!("/console/users/{user_id}"))),
        Err(error) => {
            let field = if matches!(error, ApiError::NotFound { resource: domain::Resource::User, .. }) {
                "user"
            } else {
                "access"
            };
            let refusal = Refusal { field: Some(field), ..Refusal::of_error(&error, field) };
            Ok(layout::respond(refusal.status, render_index(&state, &admin, "", Some(&refusal))))
        }
    }
}

/// `GET /console/event-access/{group_id}`: one group, its events and subgroups.
async fn show(state: Shared, admin: Admin, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::EVENT_ACCESS_READ)?;
    let group_id = parse_group(&path)?;
    Ok(layout::respond(StatusCode::OK, render_group(&state, &admin, &group_id, "", None)?))
}

fn render_group(
    state: &Shared,
    admin: &Admin,
    group_id: &GroupId,
    event: &str,
    refusal: Option<&Refusal>,
) -> Result<Markup, ConsoleError> {
    let (group, path, parent, children) = {
        let view = state.ledger.view();
        let group =
            view.group(group_id).ok_or_else(|| ConsoleError::NotFound(format!("no group with id {group_id}")))?;
        let paths = paths(&view);
        let path_of = |id: &str| paths.iter().find(|(group, _)| group == id).map_or(id.to_owned(), |(_, p)| p.clone());
        let children: Vec<(String, String)> =
            group.children().iter().map(|id| (id.to_string(), path_of(&id.to_string()))).collect();
        let parent = group.parent().map(|id| (id.to_string(), path_of(&id.to_string())));
        (GroupView::from(group), path_of(&group_id.to_string()), parent, children)
    };
    let manage = admin.may(FunctionId::EVENT_ACCESS_MANAGE);
    let base = format!("{HERE}/{group_id}");
    let content = html! {
        p.meta {
            "Id " code { (group.id) } " · created " (group.created_at) " · version " (group.version)
            @if let Some((id, path)) = &parent { " · inside " a href=(format!("{HERE}/{id}")) { (path) } }
        }
        section {
            h2 { "Events" }
            @if group.events.is_empty() { p { "No event in this group." } }
            ul {
                @for event in &group.events {
                    li {
                        code { (event) }
                        @if manage {
                            " "
                            form.inline method="post" action=(format!("{base}/events/remove")) {
                                (admin.csrf_field())
                                input type="hidden" name="event" value=(event);
                                button.secondary type="submit" aria-label=(format!("Remove {event}")) { "Remove" }
                            }
                        }
                    }
                }
            }
            (error_for(refusal, "remove"))
            @if manage {
                form method="post" action=(format!("{base}/events")) {
                    (admin.csrf_field())
                    (layout::text_field("Event id", "event", event, refusal))
                    button type="submit" { "Add event" }
                }
            }
        }
        section {
            h2 { "Subgroups" }
            @if children.is_empty() { p { "None." } }
            ul { @for (id, path) in &children { li { a href=(format!("{HERE}/{id}")) { (path) } } } }
        }
    };
    Ok(layout::page(admin, HERE, &format!("Group: {path}"), content))
}

async fn group_changed(
    state: &Shared,
    admin: &Admin,
    group_id: &GroupId,
    event: &str,
    outcome: Result<crate::ledger::Applied, ApiError>,
    field: &'static str,
) -> Result<HttpResponse, ConsoleError> {
    match outcome {
        Ok(_) => Ok(layout::see_other(&format!("{HERE}/{group_id}"))),
        Err(error) => {
            let refusal = Refusal { field: Some(field), ..Refusal::of_error(&error, field) };
            Ok(layout::respond(refusal.status, render_group(state, admin, group_id, event, Some(&refusal))?))
        }
    }
}

fn event_of(form: &Form) -> Result<EventId, ApiError> {
    let raw = form.get("event").unwrap_or_default().trim();
    EventId::parse(raw).map_err(|e| ApiError::InvalidValue { field: "event", reason: e.to_string() })
}

async fn add_event(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::EVENT_ACCESS_MANAGE)?;
    let group_id = parse_group(&path)?;
    let outcome = match event_of(&form) {
        Ok(event_id) => admin.submit(&state, Command::AddEventToGroup { group_id: group_id.clone(), event_id }).await,
        Err(error) => Err(error),
    };
    group_changed(&state, &admin, &group_id, form.get("event").unwrap_or_default(), outcome, "event").await
}

async fn remove_event(state: Shared, posted: Posted, path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let Posted { admin, form } = posted;
    admin.require(FunctionId::EVENT_ACCESS_MANAGE)?;
    let group_id = parse_group(&path)?;
    let outcome = match event_of(&form) {
        Ok(event_id) => {
            admin.submit(&state, Command::RemoveEventFromGroup { group_id: group_id.clone(), event_id }).await
        }
        Err(error) => Err(error),
    };
    group_changed(&state, &admin, &group_id, "", outcome, "remove").await
}

/// Registers the event access screens inside the `/console` scope.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/event-access", web::get().to(index))
        .route("/event-access", web::post().to(create))
        .route("/event-access/users", web::post().to(set_user_access))
        .route("/event-access/{group_id}", web::get().to(show))
        .route("/event-access/{group_id}/events", web::post().to(add_event))
        .route("/event-access/{group_id}/events/remove", web::post().to(remove_event));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes())
    }

    #[test]
    fn the_access_form_reads_all_events_or_the_groups_ticked() {
        assert_eq!(parse_access(&form("access=all")).unwrap(), EventAccess::AllEvents);
        let group = "grp_0123456789abcdef";
        let groups = parse_access(&form(&format!("access=groups&group={group}"))).unwrap();
        assert_eq!(groups, EventAccess::Groups(BTreeSet::from([GroupId::parse(group).unwrap()])));
        assert_eq!(parse_access(&form("access=groups")).unwrap(), EventAccess::Groups(BTreeSet::new()));
        assert!(matches!(
            parse_access(&form(&format!("access=all&group={group}"))),
            Err(ApiError::InvalidValue { field: "access", .. })
        ));
        assert!(matches!(parse_access(&form("")), Err(ApiError::InvalidValue { field: "access", .. })));
        assert!(matches!(parse_access(&form("access=groups&group=nope")), Err(ApiError::NotFound { .. })));
    }
}
