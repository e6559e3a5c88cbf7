//! Event access groups: nested groups of platform events.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::RawJson;
use super::mutation::{self, Target};
use super::params::{GroupEventPath, GroupPath, IdempotencyKey, IfMatch, Justification};
use super::problem::{ApiError, Problem};
use super::responses::{
    BodyMutation, Changed, Created, EventAccessManage, EventAccessRead, Guarded, HeaderMutation, Versioned,
};
use super::{Shared, paginate};
use crate::domain::{self, Command, EventId, FunctionId, Group, GroupId, Name, Resource};

/// An event access group.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "grp_1a2b3c4d5e6f7a8b",
    "name": "USA",
    "parent_id": "grp_8b7a6f5e4d3c2b1a",
    "children": [],
    "events": ["summit-2027-nyc"],
    "created_at": "2027-01-31T17:00:00.000Z",
    "version": 9
}))]
pub struct GroupView {
    /// The group's id.
    pub id: String,
    /// The name, unique among its siblings.
    pub name: String,
    /// The group it sits inside, if any.
    pub parent_id: Option<String>,
    /// The groups directly inside it.
    pub children: Vec<String>,
    /// The events directly in it (not counting nested groups).
    pub events: Vec<String>,
    /// When the group was created.
    pub created_at: String,
    /// The log position of the last change to the group; send it as `If-Match`.
    pub version: u64,
}

impl From<&Group> for GroupView {
    fn from(group: &Group) -> Self {
        GroupView {
            id: group.id().to_string(),
            name: group.name().to_owned(),
            parent_id: group.parent().map(ToString::to_string),
            children: group.children().iter().map(ToString::to_string).collect(),
            events: group.events().iter().map(ToString::to_string).collect(),
            created_at: group.created().at.to_string(),
            version: group.version(),
        }
    }
}

impl Versioned for GroupView {
    const NOUN: &'static str = "group";
    const IF_MATCH: &'static str = "The group's version (its ETag); refused with 412 if the group changed since";
}

list_page! {
    /// A page of groups.
    GroupList of GroupView, "The groups, oldest first."
}

/// A new group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "USA", "parent_id": "grp_8b7a6f5e4d3c2b1a"}))]
pub struct CreateEventGroupRequest {
    /// The name: 1 to 200 characters, not blank, normalised to NFC, with no control or
    /// format characters (such as bidi overrides and zero-width spaces), and unlike its
    /// siblings' names: not equal but for case, nor confusable with them (UTS #39).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// The group to nest it in; access to that group gives access to this one's events.
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// Parses a group id from a path or body; a malformed id names no group.
pub fn group_id(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(raw).map_err(|_| ApiError::NotFound { resource: Resource::Group, id: raw.to_owned() })
}

fn event_id(raw: &str) -> Result<EventId, ApiError> {
    EventId::parse(raw).map_err(|e| ApiError::InvalidValue { field: "event_id", reason: e.to_string() })
}

impl Target for GroupId {
    type View = GroupView;
    const RESOURCE: Resource = Resource::Group;

    fn show(&self, view: &domain::State) -> Option<(GroupView, u64)> {
        view.group(self).map(|group| (GroupView::from(group), group.version()))
    }
}

/// Creates an event access group, optionally inside another. Needs
/// `security.event_access.manage`.
///
/// A name that looks like a sibling's (equal but for case, or confusable with it) is
/// refused, naming that group.
#[utoipa::path(
    operation_id = "createEventGroup",
    tag = "event access",
    request_body = CreateEventGroupRequest,
    params(IdempotencyKey, Justification),
    responses(
        Created<GroupView, BodyMutation<EventAccessManage>>,
        (status = 404, description = "No such parent group", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A sibling has this name (`duplicate_group_name`) or one that looks like it (`lookalike_name`), the parent is already 32 levels deep (`group_too_deep`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name (such as one holding a control or format character, named by its code point), or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/event-groups")]
pub async fn create_event_group(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::EVENT_ACCESS_MANAGE)?;
    let input: CreateEventGroupRequest = body.parse()?;
    let name = Name::parse(&input.name).map_err(|e| ApiError::InvalidValue { field: "name", reason: e.to_string() })?;
    let parent_id = input.parent_id.as_deref().map(group_id).transpose()?;
    let generate = || GroupId::generate(&mut rand::rng());
    let command = |group_id| Command::CreateEventGroup { group_id, name, parent_id };
    mutation::create(&state, &request, &actor, body.bytes(), "/v1/event-groups", generate, command).await
}

list_operation! {
    /// Lists event access groups, oldest first. Needs `security.event_access.read`.
    fn list_event_groups, path = "/v1/event-groups", operation_id = "listEventGroups", tag = "event access",
    needs = EventAccessRead, page = GroupList, description = "A page of groups",
    paged = |view, after, limit| {
        paginate(view.groups_after(after), limit, |group| group.created().seq, GroupView::from)
    },
}

/// Reads an event access group. Needs `security.event_access.read`.
#[utoipa::path(
    operation_id = "getEventGroup",
    tag = "event access",
    params(GroupPath),
    responses(
        Guarded<EventAccessRead>,
        (status = 200, description = "The group", body = GroupView, headers(("ETag" = String, description = "The group's version"))),
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/event-groups/{group_id}")]
pub async fn get_event_group(
    state: Shared,
    request: HttpRequest,
    path: web::Path<GroupPath>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::EVENT_ACCESS_READ)?;
    super::get(&state, group_id(&path.group_id)?)
}

/// Adds a platform event to a group. Adding an event already there changes nothing.
/// Needs `security.event_access.manage`.
#[utoipa::path(
    operation_id = "addEventToGroup",
    tag = "event access",
    params(GroupEventPath, IfMatch<GroupView>, IdempotencyKey, Justification),
    responses(
        Changed<GroupView, HeaderMutation<EventAccessManage>>,
        (status = 404, description = "No such group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed event id, or the Idempotency-Key was used for a different request, or the server requires a Keyledger-Justification for a change that grants access (`justification_required`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[put("/v1/event-groups/{group_id}/events/{event_id}")]
pub async fn add_event_to_group(
    state: Shared,
    request: HttpRequest,
    path: web::Path<GroupEventPath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::EVENT_ACCESS_MANAGE)?;
    let (group_id, event_id) = (group_id(&path.group_id)?, event_id(&path.event_id)?);
    let command = Command::AddEventToGroup { group_id: group_id.clone(), event_id };
    mutation::change(&state, &request, &actor, b"", group_id, command).await
}

/// Removes a platform event from a group. Needs `security.event_access.manage`.
#[utoipa::path(
    operation_id = "removeEventFromGroup",
    tag = "event access",
    params(GroupEventPath, IfMatch<GroupView>, IdempotencyKey, Justification),
    responses(
        Changed<GroupView, HeaderMutation<EventAccessManage>>,
        (status = 404, description = "No such group, or the event is not in it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed event id, or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[delete("/v1/event-groups/{group_id}/events/{event_id}")]
pub async fn remove_event_from_group(
    state: Shared,
    request: HttpRequest,
    path: web::Path<GroupEventPath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::EVENT_ACCESS_MANAGE)?;
    let (group_id, event_id) = (group_id(&path.group_id)?, event_id(&path.event_id)?);
    let command = Command::RemoveEventFromGroup { group_id: group_id.clone(), event_id };
    mutation::change(&state, &request, &actor, b"", group_id, command).await
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(create_event_group)
        .service(list_event_groups)
        .service(get_event_group)
        .service(add_event_to_group)
        .service(remove_event_from_group);
}
