//! `lookupKey`: whose key is this? (issue #14, point 5). An auditor who finds a key where
//! it should not be (a repository, a log, a ticket) sends it, or the hex of its hash, and
//! learns its id, owner, state, every record about it and its use, read from the whole log.
//!
//! The secret is hashed as soon as the body is parsed and never kept, logged or echoed:
//! the request type redacts it from `Debug`, no error message quotes it, and the lookup is
//! recorded as a `KeyLookedUp` naming only the auditor and the key id found.

use std::fmt;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Shared;
use super::body::RawJson;
use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded};
use crate::domain::{Command, FunctionId, KeyHash, Timestamp};
use crate::key_history::{self, Lookup, UsageEntry};
use crate::wire::credentials::CredentialReportRow;

// Documentation only: one of two closed objects, so that a body with both members (or
// neither) is invalid by the schema too. The body is read as `KeyLookupFields`, whose
// refusal says which rule was broken.
/// The key to look up: its secret (`key`) or the hex of its hash (`key_hash`), not both.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"key_hash": "0c7e5b1a9d2f4e6c8b0a1d3f5e7c9b2a4d6f8e0c1b3a5d7f9e2c4b6a8d0f1e3c"}))]
#[allow(dead_code)]
pub enum KeyLookupRequest {
    /// The key as found.
    Key(KeyLookupByKey),
    /// The hex of the key's hash.
    KeyHash(KeyLookupByHash),
}

/// A lookup by the key as found.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct KeyLookupByKey {
    /// The key as found (`kl_` and 36 letters and digits, the last 6 a checksum; or an
    /// imported legacy key, 32 hexadecimal characters; whitespace around it is ignored).
    /// Hashed at once; never stored, logged or echoed.
    #[schema(pattern = "^\\s*(kl_[0-9A-Za-z]{36}|[0-9A-Fa-f]{32})\\s*$")]
    key: String,
}

/// A lookup by the hex of the key's hash.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct KeyLookupByHash {
    /// The hex of the key's blake3 hash, as `KeyGenerated` records it.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    key_hash: String,
}

/// The body of `lookupKey` as read: both members optional, so that the refusal can say
/// which rule a body broke.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLookupFields {
    /// The key as found (`kl_…`). Hashed at once; never stored, logged or echoed.
    #[serde(default)]
    pub key: Option<String>,
    /// Instead of the key: the hex of its blake3 hash, as `KeyGenerated` records it.
    #[serde(default)]
    pub key_hash: Option<String>,
}

impl fmt::Debug for KeyLookupFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLookupFields")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_hash", &self.key_hash)
            .finish()
    }
}

impl KeyLookupFields {
    /// The hash the request names.
    fn hash(&self) -> Result<KeyHash, ApiError> {
        match (&self.key, &self.key_hash) {
            (Some(key), None) => KeyHash::of_presented(key).map_err(|_| {
                ApiError::InvalidBody(
                    "`key` is not a keyledger key (prefix, length, characters or checksum)".to_owned(),
                )
            }),
            (None, Some(hex)) => KeyHash::try_from(hex.clone())
                .map_err(|_| ApiError::InvalidBody("`key_hash` must be 64 hexadecimal characters".to_owned())),
            _ => Err(ApiError::InvalidBody("send exactly one of `key` and `key_hash`".to_owned())),
        }
    }
}

/// A key's entry in one usage record.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageEntry {
    /// The usage record's position in the log.
    pub seq: u64,
    /// Checks the key passed in that interval.
    pub allowed: u64,
    /// Checks the key failed while it was known.
    pub refused: u64,
    /// The first of those checks.
    pub first_used_at: String,
    /// The last of those checks.
    pub last_used_at: String,
}

impl From<&UsageEntry> for KeyUsageEntry {
    fn from(entry: &UsageEntry) -> Self {
        KeyUsageEntry {
            seq: entry.seq,
            allowed: entry.allowed,
            refused: entry.refused,
            first_used_at: entry.first_used_at.to_string(),
            last_used_at: entry.last_used_at.to_string(),
        }
    }
}

/// What the log says about the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyLookup {
    /// The key: owner, state, life, recorded use and what it can do now, as its row of
    /// `getCredentialReport`.
    pub key: CredentialReportRow,
    /// Every record about the key, exactly as stored (as `listAuditEvents` lists them):
    /// the one that issued it, the one that replaced it, its revocation, admin requests it
    /// was refused and earlier lookups of it. Usage records are in `usage`.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Box<serde_json::value::RawValue>>,
    /// Its entry in every usage record that counts it, in log order.
    pub usage: Vec<KeyUsageEntry>,
    /// The position of the `KeyLookedUp` record of this lookup (absent from the offline
    /// `keyledger lookup-key`, which records nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_position: Option<u64>,
}

impl KeyLookup {
    /// The answer for the key `hash` found by `lookup`, judged against the view at `now`;
    /// `None` if `lookup` does not hold that key.
    pub fn of(
        lookup: &Lookup,
        hash: &KeyHash,
        view: &crate::domain::State,
        now: Timestamp,
        lookup_position: Option<u64>,
    ) -> Option<KeyLookup> {
        let found = lookup.key(hash)?;
        let records = lookup
            .records
            .iter()
            .map(|stored| {
                let text = String::from_utf8(stored.bytes.clone()).ok()?;
                serde_json::value::RawValue::from_string(text).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(KeyLookup {
            key: CredentialReportRow::of(found, view, now),
            records,
            usage: lookup.usage.iter().map(KeyUsageEntry::from).collect(),
            lookup_position,
        })
    }
}

/// Reads what the key may be: a keyledger key, or the 64 hexadecimal characters of a key's
/// hash. The text is never quoted back.
pub fn hash_of_key_or_hash(text: &str) -> Option<KeyHash> {
    let text = text.trim();
    KeyHash::of_presented(text).ok().or_else(|| KeyHash::try_from(text.to_owned()).ok())
}

/// Looks a key up by its secret or its hash: its id, owner and state, every record about
/// it and its recorded use. The secret is never stored, logged or echoed; the lookup is
/// recorded as a `KeyLookedUp` naming the caller and the key id found (nothing is
/// recorded when no key matches). Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "lookupKey",
    tag = "audit",
    request_body = KeyLookupRequest,
    params(super::params::Justification),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The key and what the log says about it", body = KeyLookup),
        (status = 400, description = "Malformed body, neither or both of `key` and `key_hash`, or a value that is no key or hash", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No key with that secret or hash was ever issued", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read, or the lookup could not be recorded", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/v1/audit/key-lookup")]
pub async fn lookup_key(state: Shared, request: HttpRequest, body: RawJson) -> Result<HttpResponse, ApiError> {
    let actor = state.authorize(&request, FunctionId::AUDIT_READ)?;
    let hash = body.parse::<KeyLookupFields>()?.hash()?;
    drop(body);
    let reader = state.clone();
    let lookup = web::block(move || key_history::look_up(reader.ledger.log(), &hash))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|error| ApiError::StorageUnavailable(error.to_string()))?
        .ok_or(ApiError::KeyNotIssued)?;
    let found = lookup.key(&hash).ok_or(ApiError::Internal)?;
    let command = Command::RecordKeyLookup { user_id: found.user_id.clone(), key_id: found.key_id.clone() };
    let applied = state.submit(command, &request, &actor).await?;
    let answer = {
        let view = state.ledger.view();
        KeyLookup::of(&lookup, &hash, &view, Timestamp::now(), Some(applied.position))
    };
    Ok(HttpResponse::Ok().json(answer.ok_or(ApiError::Internal)?))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(lookup_key);
}
