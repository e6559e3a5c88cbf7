//! Roles and the functions active on them.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::RawJson;
use super::mutation::{self, Target};
use super::params::{IdempotencyKey, IfMatch, Justification, RolePath};
use super::problem::{ApiError, Problem};
use super::responses::{BodyMutation, Changed, Created, Guarded, RolesManage, RolesRead, Versioned};
use super::{Shared, paginate};
use crate::domain::{self, Command, FunctionId, Name, Resource, Role, RoleId};

/// A role.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "role_9d8e7f6a5b4c3d2e",
    "description": "API Access",
    "functions": ["api.attendees.read", "api.events.read"],
    "api_role": true,
    "users": ["usr_5f0c2a9e1b7d4c3a"],
    "created_at": "2027-01-31T17:00:00.000Z",
    "version": 7
}))]
pub struct RoleView {
    /// The role's id.
    pub id: String,
    /// The description, unique case-insensitively among roles.
    pub description: String,
    /// The active functions, in catalogue order.
    pub functions: Vec<&'static str>,
    /// Whether the role holds API functions, which makes it a standalone role.
    pub api_role: bool,
    /// The users who hold the role.
    pub users: Vec<String>,
    /// When the role was created.
    pub created_at: String,
    /// The log position of the last change to the role; send it as `If-Match`.
    pub version: u64,
}

impl From<&Role> for RoleView {
    fn from(role: &Role) -> Self {
        RoleView {
            id: role.id().to_string(),
            description: role.description().to_owned(),
            functions: role.functions().iter().map(FunctionId::as_str).collect(),
            api_role: role.is_api_role(),
            users: role.holders().iter().map(ToString::to_string).collect(),
            created_at: role.created().at.to_string(),
            version: role.version(),
        }
    }
}

impl Versioned for RoleView {
    const NOUN: &'static str = "role";
    const IF_MATCH: &'static str =
        "The role's version (its ETag); the change is refused with 412 if the role changed since";
}

list_page! {
    /// A page of roles.
    RoleList of RoleView, "The roles, oldest first."
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "API Access"}))]
pub struct CreateRoleRequest {
    /// The description: 1 to 200 characters, not blank, normalised to NFC, with no control
    /// or format characters (such as bidi overrides and zero-width spaces), and unlike
    /// every other role's: not equal but for case, nor confusable with it (UTS #39).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub description: String,
}

/// Functions to activate or deactivate on a role, all in one change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"functions": ["api.attendees.read", "api.events.read", "api.invoices.read", "api.people.read", "api.sessions.read"]}))]
pub struct FunctionsRequest {
    /// Function ids from the catalogue; at least one.
    #[schema(min_items = 1)]
    pub functions: Vec<String>,
}

impl FunctionsRequest {
    fn parse(&self) -> Result<BTreeSet<FunctionId>, ApiError> {
        if self.functions.is_empty() {
            return Err(ApiError::InvalidValue {
                field: "functions",
                reason: "must name at least one function".to_owned(),
            });
        }
        self.functions
            .iter()
            .map(|id| FunctionId::parse(id).map_err(|unknown| ApiError::UnknownFunction(unknown.to_string())))
            .collect()
    }
}

/// Parses a role id from a path; a malformed id names no role.
pub fn role_id(raw: &str) -> Result<RoleId, ApiError> {
    RoleId::parse(raw).map_err(|_| ApiError::NotFound { resource: Resource::Role, id: raw.to_owned() })
}

impl Target for RoleId {
    type View = RoleView;
    const RESOURCE: Resource = Resource::Role;

    fn show(&self, view: &domain::State) -> Option<(RoleView, u64)> {
        view.role(self).map(|role| (RoleView::from(role), role.version()))
    }
}

/// Creates a role with no functions. Needs `security.roles.manage`.
///
/// A description that looks like another role's (equal but for case, or confusable
/// with it, such as "Аdministrator" with a Cyrillic А) is refused, naming that role.
#[utoipa::path(
    operation_id = "createRole",
    tag = "roles",
    request_body = CreateRoleRequest,
    params(IdempotencyKey, Justification),
    responses(
        Created<RoleView, BodyMutation<RolesManage>>,
        (status = 409, description = "Another role has this description (`duplicate_description`) or one that looks like it (`lookalike_name`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid description (such as one holding a control or format character, named by its code point), or Idempotency-Key reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/roles")]
pub async fn create_role(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::ROLES_MANAGE)?;
    let input: CreateRoleRequest = body.parse()?;
    let description = Name::parse(&input.description)
        .map_err(|e| ApiError::InvalidValue { field: "description", reason: e.to_string() })?;
    let generate = || RoleId::generate(&mut rand::rng());
    let command = |role_id| Command::CreateRole { role_id, description };
    mutation::create(&state, &request, &actor, body.bytes(), "/v1/roles", generate, command).await
}

list_operation! {
    /// Lists roles, oldest first. Needs `security.roles.read`.
    fn list_roles, path = "/v1/roles", operation_id = "listRoles", tag = "roles",
    needs = RolesRead, page = RoleList, description = "A page of roles",
    paged = |view, after, limit| paginate(view.roles_after(after), limit, |role| role.created().seq, RoleView::from),
}

/// Reads a role. Needs `security.roles.read`.
#[utoipa::path(
    operation_id = "getRole",
    tag = "roles",
    params(RolePath),
    responses(
        Guarded<RolesRead>,
        (status = 200, description = "The role", body = RoleView, headers(("ETag" = String, description = "The role's version"))),
        (status = 404, description = "No such role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/roles/{role_id}")]
pub async fn get_role(
    state: Shared,
    request: HttpRequest,
    path: web::Path<RolePath>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::ROLES_READ)?;
    super::get(&state, role_id(&path.role_id)?)
}

/// Activates several functions on a role in one change. Functions already active are
/// left as they are. A role holding API functions may hold no admin function, and is
/// standalone: activating an API function on a role held by a user who holds other roles
/// is refused. Needs `security.roles.manage`.
#[utoipa::path(
    operation_id = "activateFunctions",
    tag = "roles",
    request_body = FunctionsRequest,
    params(RolePath, IfMatch<RoleView>, IdempotencyKey, Justification),
    responses(
        Changed<RoleView, BodyMutation<RolesManage>>,
        (status = 404, description = "No such role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "API and admin functions mixed, or a holder is not standalone, or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown function id or empty list, or the Idempotency-Key was used for a different request, or the server requires a Keyledger-Justification for a change that grants access (`justification_required`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/roles/{role_id}/functions/activate")]
pub async fn activate_functions(
    state: Shared,
    request: HttpRequest,
    path: web::Path<RolePath>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::ROLES_MANAGE)?;
    let role_id = role_id(&path.role_id)?;
    let functions = body.parse::<FunctionsRequest>()?.parse()?;
    let command = Command::ActivateFunctions { role_id: role_id.clone(), functions };
    mutation::change(&state, &request, &actor, body.bytes(), role_id, command).await
}

/// Deactivates several functions on a role in one change. Functions not active are left
/// as they are. Needs `security.roles.manage`.
#[utoipa::path(
    operation_id = "deactivateFunctions",
    tag = "roles",
    request_body = FunctionsRequest,
    params(RolePath, IfMatch<RoleView>, IdempotencyKey, Justification),
    responses(
        Changed<RoleView, BodyMutation<RolesManage>>,
        (status = 409, description = "You cannot deactivate admin functions on a role you hold, the change would leave no standing administrator (`last_administrator`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown function id or empty list, or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/roles/{role_id}/functions/deactivate")]
pub async fn deactivate_functions(
    state: Shared,
    request: HttpRequest,
    path: web::Path<RolePath>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::ROLES_MANAGE)?;
    let role_id = role_id(&path.role_id)?;
    let functions = body.parse::<FunctionsRequest>()?.parse()?;
    let command = Command::DeactivateFunctions { role_id: role_id.clone(), functions };
    mutation::change(&state, &request, &actor, body.bytes(), role_id, command).await
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(create_role)
        .service(list_roles)
        .service(get_role)
        .service(activate_functions)
        .service(deactivate_functions);
}
