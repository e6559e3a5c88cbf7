//! The key policy (issue #14, point 2): `getKeyPolicy` and `setKeyPolicy`, and how the
//! policy applies to one key, which `whoAmI` and the access report show.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Shared;
use super::body::RawJson;
use super::mutation::{self, Reply};
use super::params::{IdempotencyKey, Justification};
use super::problem::{ApiError, Problem};
use super::responses::{BodyMutation, Guarded, KeysManage, UsersRead};
use crate::domain::{self, Command, FunctionId, KeyPolicy, Timestamp};

/// The key policy: limits every key is held to. A limit of `null` limits nothing.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"max_lifetime_days": 365, "require_expiry": true, "max_unused_days": 90, "position": 42}))]
pub struct KeyPolicyView {
    /// A key this many days after its creation is refused as `key_too_old` (blocked, not
    /// revoked: raising or clearing the limit lets it through again); null for no limit.
    #[schema(minimum = 1, maximum = 3650)]
    pub max_lifetime_days: Option<u32>,
    /// Whether generateKey and importKey need `expires_at` (422 `expiry_required` without
    /// it). A key for a user holding every admin function is exempt: the last
    /// administrator's key must not expire, or time alone would lock everyone out.
    pub require_expiry: bool,
    /// A key with no recorded use for this many days (from its creation if it was never
    /// used) is refused as `key_dormant` until it is rotated; null for no limit. Use is
    /// recorded every `--key-usage-interval-secs`.
    #[schema(minimum = 1, maximum = 3650)]
    pub max_unused_days: Option<u32>,
    /// The log position the answer reflects.
    pub position: u64,
}

impl KeyPolicyView {
    fn of(policy: &KeyPolicy, position: u64) -> Self {
        KeyPolicyView {
            max_lifetime_days: policy.max_lifetime_days(),
            require_expiry: policy.require_expiry(),
            max_unused_days: policy.max_unused_days(),
            position,
        }
    }
}

/// The new key policy, replacing the previous one whole: a member left out is no limit
/// (`null`, or `false` for `require_expiry`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_lifetime_days": 365, "require_expiry": true, "max_unused_days": 90}))]
pub struct SetKeyPolicyRequest {
    /// A key this many days after its creation is refused as `key_too_old`; null for no
    /// limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub max_lifetime_days: Option<u32>,
    /// Whether generateKey and importKey need `expires_at` (administrators' keys excepted).
    #[serde(default)]
    pub require_expiry: bool,
    /// A key with no recorded use for this many days is refused as `key_dormant` until
    /// rotated; null for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub max_unused_days: Option<u32>,
}

/// The key policy in force. Needs `security.users.read`, as reading users' keys does.
#[utoipa::path(
    operation_id = "getKeyPolicy",
    tag = "keys",
    responses(
        Guarded<UsersRead>,
        (status = 200, description = "The key policy", body = KeyPolicyView),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/policies/keys")]
pub async fn get_key_policy(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::USERS_READ)?;
    let view = state.ledger.view();
    Ok(HttpResponse::Ok().json(KeyPolicyView::of(view.key_policy(), view.head())))
}

/// Sets the key policy, replacing the previous one whole (a `KeyPolicySet` in the log).
/// It applies to every key at once, in every check: a key past `max_lifetime_days` is
/// refused as `key_too_old`, one unused for `max_unused_days` as `key_dormant`. The
/// current, non-expiring key of a user holding every admin function is exempt from both,
/// so that the policy can never lock every administrator out. Needs `security.keys.manage`.
#[utoipa::path(
    operation_id = "setKeyPolicy",
    tag = "keys",
    request_body = SetKeyPolicyRequest,
    params(IdempotencyKey, Justification),
    responses(
        BodyMutation<KeysManage>,
        (status = 200, description = "The key policy now in force", body = KeyPolicyView,
            headers(("Keyledger-Position" = u64, description = "Log position of the change"))),
        (status = 422, description = "A limit out of range (1 to 3650 days, or null), or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[put("/v1/policies/keys")]
pub async fn set_key_policy(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::KEYS_MANAGE)?;
    // The policy is replaced whole, so a missing body is refused rather than read as `{}`,
    // which would clear every limit.
    if body.bytes().trim_ascii().is_empty() {
        return Err(ApiError::InvalidBody("send the whole policy as a JSON object (`{}` sets no limit)".to_owned()));
    }
    let input: SetKeyPolicyRequest = body.parse()?;
    let policy = KeyPolicy::new(input.max_lifetime_days, input.require_expiry, input.max_unused_days)
        .map_err(|invalid| ApiError::InvalidValue { field: invalid.field, reason: invalid.to_string() })?;
    mutation::run(&state, &request, &actor, body.bytes(), move |m| async move {
        let applied = m.submit(Command::SetKeyPolicy { policy }).await?;
        let position = applied.position;
        Ok(Reply::json(StatusCode::OK, &KeyPolicyView::of(&policy, position), position))
    })
    .await
}

/// How the key policy applies to one key: which limits bind it and when they block it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"exempt": false, "max_lifetime_days": 365, "too_old_from": "2028-01-31T17:00:00.000Z", "max_unused_days": 90, "dormant_from": "2027-05-04T09:15:00.000Z", "blocked_from": "2027-05-04T09:15:00.000Z", "blocked_reason": "key_dormant"}))]
pub struct KeyPolicyLimits {
    /// Whether the key is exempt from the policy's limits: the current, non-expiring key of
    /// a user holding every admin function.
    pub exempt: bool,
    /// The lifetime limit in force, if any.
    pub max_lifetime_days: Option<u32>,
    /// When the key becomes too old (`key_too_old`), if a lifetime limit binds it.
    pub too_old_from: Option<String>,
    /// The idleness limit in force, if any.
    pub max_unused_days: Option<u32>,
    /// When the key becomes dormant (`key_dormant`) if it is not used before, if an
    /// idleness limit binds it.
    pub dormant_from: Option<String>,
    /// The first of `too_old_from` and `dormant_from`: when checks start refusing the key.
    pub blocked_from: Option<String>,
    /// The reason checks will give from `blocked_from`: `key_too_old` or `key_dormant`.
    pub blocked_reason: Option<String>,
}

impl KeyPolicyLimits {
    /// How the policy in `view` applies to `key`.
    pub fn of(view: &domain::State, key: &domain::Key) -> Self {
        let policy = view.key_policy();
        let exempt = view.is_policy_exempt(key);
        let binding = |at: Option<Timestamp>| at.filter(|_| !exempt).map(|at| at.to_string());
        let next = policy.next_block(key).filter(|_| !exempt);
        KeyPolicyLimits {
            exempt,
            max_lifetime_days: policy.max_lifetime_days(),
            too_old_from: binding(policy.too_old_from(key)),
            max_unused_days: policy.max_unused_days(),
            dormant_from: binding(policy.dormant_from(key)),
            blocked_from: next.map(|(_, at)| at.to_string()),
            blocked_reason: next.map(|(limit, _)| limit.reason().as_str().to_owned()),
        }
    }
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(get_key_policy).service(set_key_policy);
}
