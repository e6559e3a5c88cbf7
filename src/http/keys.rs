//! API keys: generating (and so rotating) and revoking a user's key.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Shared;
use super::body::RawJson;
use super::mutation::{self, Reply};
use super::params::{IdempotencyKey, IfMatch, Justification, UserPath};
use super::problem::{ApiError, Problem};
use super::responses::{BodyMutation, Changed, HeaderMutation, KeysManage};
use super::users::{UserView, user_id};
use crate::domain::{Command, Event, FunctionId, KeyId, KeySecret, Timestamp};

/// Options for a new key.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grace_seconds": 3600, "expires_at": "2028-01-31T00:00:00Z"}))]
pub struct GenerateKeyRequest {
    /// How long the user's previous key keeps working, for rotation without downtime
    /// (0 to 2592000 seconds). Without it the previous key stops working at once.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub grace_seconds: Option<u64>,
    /// When the new key stops working (RFC 3339, in the future). Without it the key does
    /// not expire.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A whole number of seconds as JSON Schema's `integer` admits it: `3600`, or `3600.0`
/// as some clients write a whole float (Python's `json.dumps(3600.0)`).
pub(super) fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    // Every whole float up to 2^53 is exact; the domain refuses more than 30 days anyway.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let whole = number.as_u64().or_else(|| {
        number.as_f64().filter(|value| value.fract() == 0.0 && (0.0..=EXACT).contains(value)).map(|value| value as u64)
    });
    whole.map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("grace_seconds must be a whole number of seconds from 0, not {number}"))
    })
}

/// A generated key. The secret `key` is shown in this response only: keyledger keeps
/// only its hash and cannot show it again.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "kl_4sQm0bV7xZk2Lr9TtY1cWn8Pd3Hf6Ja5Gu0Me2",
    "key_id": "key_0f1e2d3c4b5a6978",
    "user_id": "usr_5f0c2a9e1b7d4c3a",
    "expires_at": null,
    "replaced_key_id": "key_7a6b5c4d3e2f1a0b",
    "replaced_key_valid_until": "2027-01-31T18:00:00.000Z"
}))]
pub struct GeneratedKey {
    /// The secret, once. Store it like a password. Absent when an `Idempotency-Key`
    /// retry replays this response: the secret is never shown twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's public id, shown in listings and the audit trail.
    pub key_id: String,
    /// The user the key authenticates.
    pub user_id: String,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// The key this one replaced, if any.
    pub replaced_key_id: Option<String>,
    /// Until when the replaced key keeps working; null means it stopped at once.
    pub replaced_key_valid_until: Option<String>,
}

/// Generates a key for a user, replacing their current key. The response shows the
/// secret once. With `grace_seconds` the previous key keeps working for that long. Only
/// the most recently replaced key has a grace period: generating again ends any earlier
/// one at once.
/// Needs `security.keys.manage`.
#[utoipa::path(
    operation_id = "generateKey",
    tag = "keys",
    request_body(content = Option<GenerateKeyRequest>, description = "Optional; an empty body means no expiry and no grace period"),
    params(
        UserPath,
        IfMatch<UserView>,
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key changes nothing and returns the first answer without the secret", min_length = 1, max_length = 255),
        Justification,
    ),
    responses(
        BodyMutation<KeysManage>,
        (status = 201, description = "Generated; the secret is in `key`", body = GeneratedKey,
            headers(("Keyledger-Position" = u64, description = "Log position of the change"))),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The change would leave no standing administrator (`last_administrator`), or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The user changed since the If-Match version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid grace_seconds or expires_at, or the Idempotency-Key was used for a different request, or the server requires a Keyledger-Justification for a change that grants access (`justification_required`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/users/{user_id}/key")]
pub async fn generate_key(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::KEYS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    let input: GenerateKeyRequest = body.parse_optional()?;
    let expires_at = input
        .expires_at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidValue { field: "expires_at", reason: e.to_string() })?;
    mutation::run(&state, &request, &actor, body.bytes(), move |m| async move {
        let (secret, key_id) = {
            let mut rng = rand::rng();
            (KeySecret::generate(&mut rng), KeyId::generate(&mut rng))
        };
        let command = Command::GenerateKey {
            user_id: user_id.clone(),
            key_id: key_id.clone(),
            key_hash: secret.hash(),
            expires_at,
            grace_seconds: input.grace_seconds,
        };
        let applied = m.submit(command).await?;
        let (replaced_key_id, replaced_key_valid_until) = applied
            .events
            .iter()
            .find_map(|event| match event {
                Event::KeyGenerated { replaced_key_id, replaced_key_valid_until, .. } => Some((
                    replaced_key_id.as_ref().map(ToString::to_string),
                    replaced_key_valid_until.map(|t| t.to_string()),
                )),
                _ => None,
            })
            .unwrap_or_default();
        let mut generated = GeneratedKey {
            key: Some(secret.expose().to_owned()),
            key_id: key_id.to_string(),
            user_id: user_id.to_string(),
            expires_at: expires_at.map(|at| at.to_string()),
            replaced_key_id,
            replaced_key_valid_until,
        };
        let reply = Reply::json(StatusCode::CREATED, &generated, applied.position);
        generated.key = None;
        Ok(reply.with_replay_body(&generated))
    })
    .await
}

/// Revokes a user's key, and the key it replaced if that one is still in its grace
/// period: from now on they pass no check (`revoked_key`). You cannot revoke your own
/// key; generate a new one instead. Needs `security.keys.manage`.
#[utoipa::path(
    operation_id = "revokeKey",
    tag = "keys",
    params(UserPath, IfMatch<UserView>, IdempotencyKey, Justification),
    responses(
        Changed<UserView, HeaderMutation<KeysManage>>,
        (status = 404, description = "No such user, or the user has no working key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You cannot revoke your own key, the change would leave no standing administrator (`last_administrator`), or a request with the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[delete("/v1/users/{user_id}/key")]
pub async fn revoke_key(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::KEYS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    mutation::change(&state, &request, &actor, b"", user_id.clone(), Command::RevokeKey { user_id }).await
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(generate_key).service(revoke_key);
}
