//! `importKey`: bringing existing keys along (issue #14, point 8).
//!
//! The platform's keys today are 32 hexadecimal characters, which apps send as the HTTP
//! Basic password with an empty user name. An admin imports one for a user, or only its
//! SHA-256 (as the platform stores it), and from then on that key passes checks like a
//! generated one until it is rotated or revoked. keyledger keeps only
//! `KeyHash::of_legacy_sha256` of the key's SHA-256: the raw key is hashed as soon as the
//! body is parsed, the request type redacts it from `Debug`, and no answer or message
//! quotes it. The key is marked legacy in every view; rotating it (generateKey) issues a
//! `kl_` key, with a grace period for the imported one if asked.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::ToSchema;

use super::Shared;
use super::body::RawJson;
use super::mutation::{self, Reply};
use super::params::{IfMatch, Justification, UserPath};
use super::problem::{ApiError, Problem};
use super::responses::{BodyMutation, KeysManage};
use super::users::{UserView, user_id};
use crate::domain::{Command, Event, FunctionId, KeyHash, KeyId, Timestamp};

// Documentation only: one of two closed objects, so that a body with both members (or
// neither) is invalid by the schema too. The body is read as `ImportKeyFields`.
/// The key to import: the key itself (`key`) or its SHA-256 (`key_sha256`), not both.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"key": "9f86d081884c7d659a2feaa0c55ad015", "expires_at": "2028-01-31T00:00:00Z"}))]
#[allow(dead_code)]
pub enum ImportKeyRequest {
    /// The key as the platform issued it.
    Key(ImportByKey),
    /// Only the SHA-256 of the key.
    KeySha256(ImportBySha256),
}

/// An import of the key itself.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImportByKey {
    /// The key: 32 hexadecimal characters, exactly as apps send it (case is part of the
    /// key). Hashed at once; never stored, logged or echoed.
    #[schema(pattern = "^[0-9A-Fa-f]{32}$")]
    key: String,
    /// When the key stops working (RFC 3339, in the future); without it, never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// How long the user's previous key keeps working (0 to 2592000 seconds).
    #[schema(minimum = 0, maximum = 2592000)]
    grace_seconds: Option<u64>,
}

/// An import of the key's SHA-256 only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImportBySha256 {
    /// The hex of the SHA-256 of the key's 32 characters, as the platform stores it.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    key_sha256: String,
    /// When the key stops working (RFC 3339, in the future); without it, never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// How long the user's previous key keeps working (0 to 2592000 seconds).
    #[schema(minimum = 0, maximum = 2592000)]
    grace_seconds: Option<u64>,
}

/// The body of `importKey` as read: both forms' members optional, so that the refusal can
/// say which rule a body broke.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyFields {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_sha256: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default, deserialize_with = "super::keys::whole_seconds")]
    grace_seconds: Option<u64>,
}

impl fmt::Debug for ImportKeyFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportKeyFields")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_sha256", &self.key_sha256.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("grace_seconds", &self.grace_seconds)
            .finish()
    }
}

impl ImportKeyFields {
    /// The hash keyledger keeps for the key the body names. Messages never quote it.
    fn hash(&self) -> Result<KeyHash, ApiError> {
        match (&self.key, &self.key_sha256) {
            (Some(key), None) => {
                if key.len() != 32 || !key.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return Err(ApiError::InvalidValue {
                        field: "key",
                        reason: "a legacy key is 32 hexadecimal characters".to_owned(),
                    });
                }
                KeyHash::of_legacy_key(key).ok_or(ApiError::Internal)
            }
            (None, Some(hex)) => parse_sha256(hex).map(|sha256| KeyHash::of_legacy_sha256(&sha256)).ok_or_else(|| {
                ApiError::InvalidValue {
                    field: "key_sha256",
                    reason: "a SHA-256 is 64 hexadecimal characters".to_owned(),
                }
            }),
            _ => Err(ApiError::InvalidBody("send exactly one of `key` and `key_sha256`".to_owned())),
        }
    }
}

/// The 32 bytes of a SHA-256 written as 64 hexadecimal characters, either case.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut sha256 = [0u8; 32];
    for (byte, pair) in sha256.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(sha256)
}

/// An imported key. The key itself is never shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key_id": "key_0f1e2d3c4b5a6978",
    "user_id": "usr_5f0c2a9e1b7d4c3a",
    "legacy": true,
    "expires_at": "2028-01-31T00:00:00.000Z",
    "replaced_key_id": null,
    "replaced_key_valid_until": null
}))]
pub struct ImportedKey {
    /// The key's public id, minted by keyledger, shown in listings and the audit trail.
    pub key_id: String,
    /// The user the key authenticates.
    pub user_id: String,
    /// Always true: an imported key is a legacy key until rotated.
    pub legacy: bool,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// The key this one replaced, if any.
    pub replaced_key_id: Option<String>,
    /// Until when the replaced key keeps working; null means it stopped at once.
    pub replaced_key_valid_until: Option<String>,
}

/// Imports an existing key for a user, replacing their current key as generateKey does:
/// the platform's 32-hexadecimal-character key (`key`), or only its SHA-256
/// (`key_sha256`). keyledger keeps only a hash; from then on the key passes checks, sent
/// as Bearer or as the Basic password, like a generated one, until it is rotated or
/// revoked. It is marked legacy everywhere; rotate it with generateKey. The key policy's
/// `require_expiry` applies. Needs `security.keys.manage`.
#[utoipa::path(
    operation_id = "importKey",
    tag = "keys",
    request_body = ImportKeyRequest,
    params(
        UserPath,
        IfMatch<UserView>,
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key changes nothing and returns the first answer", min_length = 1, max_length = 255),
        Justification,
    ),
    responses(
        BodyMutation<KeysManage>,
        (status = 201, description = "Imported", body = ImportedKey,
            headers(("Keyledger-Position" = u64, description = "Log position of the change"))),
        (status = 400, description = "Malformed body, or neither or both of `key` and `key_sha256`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is already known (`key_already_known`), the change would leave no standing administrator (`last_administrator`), or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The user changed since the If-Match version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid key, key_sha256, grace_seconds or expires_at, an expiry the key policy requires (`expiry_required`), or the Idempotency-Key was used for a different request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/users/{user_id}/key/import")]
pub async fn import_key(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
    body: RawJson,
) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::KEYS_MANAGE)?;
    let user_id = user_id(&path.user_id)?;
    let input: ImportKeyFields = body.parse()?;
    let key_hash = input.hash()?;
    let expires_at = input
        .expires_at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidValue { field: "expires_at", reason: e.to_string() })?;
    let grace_seconds = input.grace_seconds;
    drop(input);
    // The Idempotency-Key fingerprint covers the body, which holds the key: fingerprint its
    // hash instead, so that not even the cache's digest is of the raw key.
    let fingerprinted = sha2::Sha256::digest(body.bytes());
    mutation::run(&state, &request, &actor, fingerprinted.as_slice(), move |m| async move {
        let key_id = KeyId::generate(&mut rand::rng());
        let command = Command::ImportKey {
            user_id: user_id.clone(),
            key_id: key_id.clone(),
            key_hash,
            expires_at,
            grace_seconds,
        };
        let applied = m.submit(command).await?;
        let (replaced_key_id, replaced_key_valid_until) = applied
            .events
            .iter()
            .find_map(|event| match event {
                Event::KeyImported { replaced_key_id, replaced_key_valid_until, .. } => Some((
                    replaced_key_id.as_ref().map(ToString::to_string),
                    replaced_key_valid_until.map(|t| t.to_string()),
                )),
                _ => None,
            })
            .unwrap_or_default();
        let imported = ImportedKey {
            key_id: key_id.to_string(),
            user_id: user_id.to_string(),
            legacy: true,
            expires_at: expires_at.map(|at| at.to_string()),
            replaced_key_id,
            replaced_key_valid_until,
        };
        Ok(Reply::json(StatusCode::CREATED, &imported, applied.position))
    })
    .await
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(import_key);
}
