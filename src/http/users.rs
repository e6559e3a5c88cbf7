//! Users: creating, disabling and enabling them, their roles and their event access.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::RawJson;
use super::mutation::{self, Target};
use super::params::{IdempotencyKey, IfMatch, Justification, UserPath, UserRolePath};
use super::problem::{ApiError, Problem};
use super::responses::{
    BodyMutation, Changed, Created, EventAccessManage, Guarded, HeaderMutation, UsersManage, UsersRead, Versioned,
};
use super::roles::role_id;
use super::{Shared, paginate};
use crate::domain::{self, Command, Email, EventAccess, FunctionId, KeyHash, Name, Resource, Timestamp, User, UserId};
pub use crate::wire::{EventAccessView, KeyState};

/// A key, by its public id. Never the secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"key_id": "key_0f1e2d3c4b5a6978", "state": "active", "created_at": "2027-01-31T17:00:00.000Z", "expires_at": null, "valid_until": null, "last_used_at": "2027-02-03T09:15:00.000Z", "legacy": false}))]
pub struct KeyView {
    /// The key's public id.
    pub key_id: String,
    /// Where the key stands now.
    pub state: KeyState,
    /// When the key was generated.
    pub created_at: String,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// For a replaced key, when its grace period ends.
    pub valid_until: Option<String>,
    /// The key's last recorded use (a check, or an admin request it authenticated); null
    /// if none was recorded. Usage is recorded every `--key-usage-interval-secs` (15
    /// minutes by default), so this can be that much behind.
    pub last_used_at: Option<String>,
    /// Whether the key was imported (`importKey`: an existing platform key) rather than
    /// issued by keyledger. Rotate it with generateKey, which issues a `kl_` key.
    pub legacy: bool,
}

impl KeyView {
    fn of(view: &domain::State, hash: KeyHash, now: Timestamp) -> Option<KeyView> {
        let key = view.key(&hash)?;
        let state = view.key_state(key, now);
        Some(KeyView {
            key_id: key.id().to_string(),
            state: state.into(),
            created_at: key.created_at().to_string(),
            expires_at: key.expires_at().map(|at| at.to_string()),
            valid_until: state.valid_until().map(|at| at.to_string()),
            last_used_at: key.last_used_at().map(|at| at.to_string()),
            legacy: key.is_legacy(),
        })
    }
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "usr_5f0c2a9e1b7d4c3a",
    "name": "Attendance app",
    "email": "attendance@example.com",
    "enabled": true,
    "roles": ["role_9d8e7f6a5b4c3d2e"],
    "event_access": {"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]},
    "key": {"key_id": "key_0f1e2d3c4b5a6978", "state": "active", "created_at": "2027-01-31T17:00:00.000Z", "expires_at": null, "valid_until": null, "last_used_at": "2027-02-03T09:15:00.000Z", "legacy": false},
    "previous_key": null,
    "created_at": "2027-01-31T16:58:00.000Z",
    "version": 12
}))]
pub struct UserView {
    /// The user's id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// A contact address.
    pub email: Option<String>,
    /// Whether the user's keys may pass checks.
    pub enabled: bool,
    /// The roles the user holds.
    pub roles: Vec<String>,
    /// The events the user may access.
    pub event_access: EventAccessView,
    /// The user's current key, if any.
    pub key: Option<KeyView>,
    /// The key the current one replaced, while it is in its grace period.
    pub previous_key: Option<KeyView>,
    /// When the user was created.
    pub created_at: String,
    /// The log position of the last change to the user; send it as `If-Match`.
    pub version: u64,
}

impl UserView {
    /// Converts a user, looking their keys up in the view.
    pub fn of(view: &domain::State, user: &User) -> Self {
        let now = Timestamp::now();
        UserView {
            id: user.id().to_string(),
            name: user.name().to_owned(),
            email: user.email().map(str::to_owned),
            enabled: user.is_enabled(),
            roles: user.roles().iter().map(ToString::to_string).collect(),
            event_access: user.event_access().into(),
            key: user.current_key().and_then(|hash| KeyView::of(view, hash, now)),
            previous_key: user.grace_key().and_then(|hash| KeyView::of(view, hash, now)),
            created_at: user.created().at.to_string(),
            version: user.version(),
        }
    }
}

impl Versioned for UserView {
    const NOUN: &'static str = "user";
    const IF_MATCH: &'static str = "The user's version (its ETag); refused with 412 if the user changed since";
}

list_page! {
    /// A page of users.
    UserList of UserView, "The users, oldest first."
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Attendance app", "email": "attendance@example.com"}))]
pub struct CreateUserRequest {
    /// The display name: 1 to 200 characters, not blank, normalised to NFC, with no
    /// control or format characters (such as bidi overrides and zero-width spaces), and
    /// unlike every other user's: not equal, equal but for case, nor confusable with it
    /// (UTS #39).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// A contact address.
    #[serde(default)]
    pub email: Option<String>,
}

/// Parses a user id from a path; a malformed id names no user.
pub fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::NotFound { resource: Resource::User, id: raw.to_owned() })
}

impl Target for UserId {
    type View = UserView;
    const RESOURCE: Resource = Resource::User;

    fn show(&self, view: &domain::State) -> Option<(UserView, u64)> {
        view.user(self).map(|user| (UserView::of(view, user), user.version()))
    }
}

/// Creates a user: enabled, with no roles, no event access and no key.
/// Needs `security.users.manage`.
///
/// User names are unique by look: a name that equals another user's, or looks like it
/// (equal but for case, or confusable with it), is refused, naming that user.
#[utoipa::path(
    operation_id = "createUser",
    tag = "users",
    request_body = CreateUserRequest,
    params(IdempotencyKey, Justification),
    responses(
        Created<UserView, BodyMutation<UsersManage>>,
        (status = 409, description = "Another user has this name or one that looks like it (`lookalike_name`), or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name (such as one holding a control or format character, named by its code point) or email, or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/users")]
pub async fn create_user(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::USERS_MANAGE)?;
    let input: CreateUserRequest = body.parse()?;
    let name = Name::parse(&input.name).map_err(|e| ApiError::InvalidValue { field: "name", reason: e.to_string() })?;
    let email = input
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidValue { field: "email", reason: e.to_string() })?;
    let generate = || UserId::generate(&mut rand::rng());
    let command = |user_id| Command::CreateUser { user_id, name, email };
    mutation::create(&state, &request, &actor, body.bytes(), "/v1/users", generate, command).await
}

list_operation! {
    /// Lists users, oldest first. Needs `security.users.read`.
    fn list_users, path = "/v1/users", operation_id = "listUsers", tag = "users",
    needs = UsersRead, page = UserList, description = "A page of users",
    paged = |view, after, limit| {
        paginate(view.users_after(after), limit, |user| user.created().seq, |user| UserView::of(view, user))
    },
}

/// Reads a user, with their roles, event access and key ids. Needs `security.users.read`.
#[utoipa::path(
    operation_id = "getUser",
    tag = "users",
    params(UserPath),
    responses(
        Guarded<UsersRead>,
        (status = 200, description = "The user", body = UserView, headers(("ETag" = String, description = "The user's version"))),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/users/{user_id}")]
pub async fn get_user(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::USERS_READ)?;
    super::get(&state, user_id(&path.user_id)?)
}

/// Disables a user: none of their keys passes a check until they are enabled again.
/// You cannot disable yourself. Needs `security.users.manage`.
#[utoipa::path(
    operation_id = "disableUser",
    tag = "users",
    params(UserPath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, HeaderMutation<UsersManage>>,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You cannot disable yourself, the change would leave no standing administrator (`last_administrator`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/users/{user_id}/disable")]
pub async fn disable_user(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::USERS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    mutation::change(&state, &request, &actor, b"", user_id.clone(), Command::DisableUser { user_id }).await
}

/// Enables a disabled user. Needs `security.users.manage`.
#[utoipa::path(
    operation_id = "enableUser",
    tag = "users",
    params(UserPath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, HeaderMutation<UsersManage>>,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/users/{user_id}/enable")]
pub async fn enable_user(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::USERS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    mutation::change(&state, &request, &actor, b"", user_id.clone(), Command::EnableUser { user_id }).await
}

/// Assigns a role to a user. An API role is standalone: assigning it to a user who holds
/// another role, or any role to a user who holds an API role, is refused with 409.
/// Assigning a role the user already holds changes nothing. Needs `security.users.manage`.
#[utoipa::path(
    operation_id = "assignRole",
    tag = "users",
    params(UserRolePath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, HeaderMutation<UsersManage>>,
        (status = 404, description = "No such user or role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The API role would not be standalone, or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[put("/v1/users/{user_id}/roles/{role_id}")]
pub async fn assign_role(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserRolePath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::USERS_MANAGE)?;
    let (user_id, role_id) = (user_id(&path.user_id)?, role_id(&path.role_id)?);
    mutation::change(&state, &request, &actor, b"", user_id.clone(), Command::AssignRole { user_id, role_id }).await
}

/// Takes a role away from a user. You cannot unassign your own roles.
/// Needs `security.users.manage`.
#[utoipa::path(
    operation_id = "unassignRole",
    tag = "users",
    params(UserRolePath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, HeaderMutation<UsersManage>>,
        (status = 404, description = "No such user or role, or the user does not hold the role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You cannot unassign your own roles, the change would leave no standing administrator (`last_administrator`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[delete("/v1/users/{user_id}/roles/{role_id}")]
pub async fn unassign_role(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserRolePath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::USERS_MANAGE)?;
    let (user_id, role_id) = (user_id(&path.user_id)?, role_id(&path.role_id)?);
    mutation::change(&state, &request, &actor, b"", user_id.clone(), Command::UnassignRole { user_id, role_id }).await
}

/// Replaces a user's event access: all events, or the events of a list of groups (and of
/// the groups nested in them). Needs `security.event_access.manage`.
#[utoipa::path(
    operation_id = "setUserEventAccess",
    tag = "event access",
    request_body = EventAccessView,
    params(UserPath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, BodyMutation<EventAccessManage>>,
        (status = 404, description = "No such user or group", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "all_events together with groups, or the Idempotency-Key was used for a different request, or the server requires a Keyledger-Justification for a change that grants access (`justification_required`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[put("/v1/users/{user_id}/event-access")]
pub async fn set_user_event_access(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::EVENT_ACCESS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    let input: EventAccessView = body.parse()?;
    let access = if input.all_events {
        if !input.groups.is_empty() {
            return Err(ApiError::InvalidValue {
                field: "groups",
                reason: "must be empty when all_events is true".to_owned(),
            });
        }
        EventAccess::AllEvents
    } else {
        let groups = input.groups.iter().map(|raw| super::groups::group_id(raw)).collect::<Result<BTreeSet<_>, _>>()?;
        EventAccess::Groups(groups)
    };
    let command = Command::SetUserEventAccess { user_id: user_id.clone(), access };
    mutation::change(&state, &request, &actor, body.bytes(), user_id, command).await
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(create_user)
        .service(list_users)
        .service(get_user)
        .service(disable_user)
        .service(enable_user)
        .service(assign_role)
        .service(unassign_role)
        .service(set_user_event_access);
}
