//! What every admin mutation shares: its reply (with the log position and the new
//! version), `If-Match` preconditions, and `Idempotency-Key` replays.
//!
//! Idempotency is kept in memory, per admin user, for 24 hours: a retried request with
//! the same key and the same method, path and body gets the first answer again and
//! appends nothing. A reply that showed a key's secret is replayed without the secret,
//! which is shown once only. The cache does not survive a restart.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use super::problem::ApiError;
use crate::domain::UserId;

/// The response header carrying the log position of a mutation's last event.
pub const POSITION_HEADER: &str = "Keyledger-Position";
/// The response header set on a replayed idempotent response.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// A mutation's answer, kept so that it can be replayed.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    replay_body: Option<Vec<u8>>,
    position: Option<u64>,
    etag: Option<u64>,
    location: Option<String>,
}

impl Reply {
    /// A JSON reply for a mutation that left the log at `position`.
    pub fn json<T: Serialize>(status: StatusCode, body: &T, position: u64) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(body).unwrap_or_default(),
            replay_body: None,
            position: Some(position),
            etag: None,
            location: None,
        }
    }

    /// Sets the `ETag` to the resource's new version.
    pub fn with_etag(mut self, version: u64) -> Self {
        self.etag = Some(version);
        self
    }

    /// Sets `Location`, for a created resource.
    pub fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    /// The body a replay shows instead of the first one (used to hide a secret).
    pub fn with_replay_body<T: Serialize>(mut self, body: &T) -> Self {
        self.replay_body = Some(serde_json::to_vec(body).unwrap_or_default());
        self
    }

    fn from_error(error: &ApiError) -> Self {
        Self {
            status: error.status_code(),
            content_type: "application/problem+json",
            body: serde_json::to_vec(&error.problem()).unwrap_or_default(),
            replay_body: None,
            position: None,
            etag: None,
            location: None,
        }
    }

    fn for_replay(&self) -> Reply {
        let mut replay = self.clone();
        if let Some(body) = replay.replay_body.take() {
            replay.body = body;
        }
        replay
    }

    fn into_response(self, replayed: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(self.content_type)));
        if let Some(position) = self.position {
            response.insert_header((POSITION_HEADER, position.to_string()));
        }
        if let Some(version) = self.etag {
            response.insert_header((header::ETAG, format!("\"{version}\"")));
        }
        if let Some(location) = self.location {
            response.insert_header((header::LOCATION, location));
        }
        if replayed {
            response.insert_header((REPLAYED_HEADER, "true"));
        }
        response.body(self.body)
    }
}

/// Reads `If-Match`: the version the client last read, as `"12"`, `W/"12"` or `12`.
/// `*` (any version) is the same as no header.
pub fn expected_version(request: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidHeader("If-Match must be a version from an ETag, such as \"12\"".to_owned());
    let value = value.to_str().map_err(|_| invalid())?.trim();
    if value == "*" {
        return Ok(None);
    }
    let value = value.strip_prefix("W/").unwrap_or(value);
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    value.parse().map(Some).map_err(|_| invalid())
}

const TTL: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_ENTRIES: usize = 100_000;
const MAX_KEY_LEN: usize = 255;

#[derive(Debug)]
enum Entry {
    InFlight { fingerprint: blake3::Hash },
    Done { fingerprint: blake3::Hash, reply: Arc<Reply>, at: Instant },
}

type CacheKey = (UserId, String);

/// Idempotency keys seen in the last 24 hours, per admin user.
#[derive(Debug, Default)]
pub struct IdempotencyCache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

enum Begin {
    Run,
    Replay(Arc<Reply>),
}

struct InFlight<'a> {
    cache: &'a IdempotencyCache,
    key: Option<CacheKey>,
    fingerprint: blake3::Hash,
}

impl InFlight<'_> {
    fn finish(mut self, reply: Option<&Reply>) {
        let Some(key) = self.key.take() else { return };
        let mut entries = self.cache.lock();
        match reply {
            Some(reply) => {
                let done =
                    Entry::Done { fingerprint: self.fingerprint, reply: Arc::new(reply.clone()), at: Instant::now() };
                entries.insert(key, done);
            }
            None => {
                entries.remove(&key);
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // The mutation's task ended without an answer (it panicked): let a retry run again.
        if let Some(key) = self.key.take() {
            self.cache.lock().remove(&key);
        }
    }
}

impl IdempotencyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self, key: &CacheKey, fingerprint: blake3::Hash) -> Result<Begin, ApiError> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(Entry::Done { fingerprint: seen, reply, at }) if at.elapsed() < TTL => {
                return if *seen == fingerprint {
                    Ok(Begin::Replay(Arc::clone(reply)))
                } else {
                    Err(ApiError::IdempotencyKeyReused)
                };
            }
            Some(Entry::InFlight { fingerprint: seen }) => {
                return if *seen == fingerprint {
                    Err(ApiError::IdempotencyKeyInUse)
                } else {
                    Err(ApiError::IdempotencyKeyReused)
                };
            }
            _ => {}
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| !is_expired(entry));
            if entries.len() >= MAX_ENTRIES {
                // Full of live entries: forget the oldest finished ones.
                let mut done: Vec<(CacheKey, Instant)> = entries
                    .iter()
                    .filter_map(|(k, e)| match e {
                        Entry::Done { at, .. } => Some((k.clone(), *at)),
                        Entry::InFlight { .. } => None,
                    })
                    .collect();
                done.sort_by_key(|(_, at)| *at);
                for (k, _) in done.into_iter().take(MAX_ENTRIES / 10) {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key.clone(), Entry::InFlight { fingerprint });
        Ok(Begin::Run)
    }
}

fn is_expired(entry: &Entry) -> bool {
    matches!(entry, Entry::Done { at, .. } if at.elapsed() >= TTL)
}

/// What a mutation runs with: owned, because it runs on its own task.
pub struct Mutation {
    /// The shared state.
    pub state: super::State,
    /// The request, for its `If-Match`.
    pub request: HttpRequest,
    /// The admin user making the change.
    pub actor: UserId,
}

impl Mutation {
    /// Submits a command on behalf of the actor, honouring `If-Match`.
    pub async fn submit(&self, command: crate::domain::Command) -> Result<crate::ledger::Applied, ApiError> {
        self.state.submit(command, &self.request, &self.actor).await
    }
}

/// Runs a mutation, honouring `Idempotency-Key` if the request has one.
///
/// The mutation runs on a task of its own that outlives the request: a client that goes
/// away after sending does not stop a change that is already queued, and the answer is
/// still recorded for the retry that `Idempotency-Key` exists for.
pub async fn run<F, Fut>(
    state: &super::State,
    request: &HttpRequest,
    actor: &UserId,
    body: &[u8],
    mutation: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Mutation) -> Fut + 'static,
    Fut: Future<Output = Result<Reply, ApiError>> + 'static,
{
    let context = Mutation { state: state.clone(), request: request.clone(), actor: actor.clone() };
    let Some(value) = request.headers().get("Idempotency-Key") else {
        let outcome = actix_web::rt::spawn(mutation(context)).await.map_err(|_| ApiError::Internal)?;
        return outcome.map(|reply| reply.into_response(false));
    };
    let key = value.to_str().ok().filter(|key| !key.is_empty() && key.len() <= MAX_KEY_LEN).ok_or_else(|| {
        ApiError::InvalidHeader(format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"))
    })?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(request.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(request.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let fingerprint = hasher.finalize();
    let cache_key = (actor.clone(), key.to_owned());
    match state.idempotency.begin(&cache_key, fingerprint)? {
        Begin::Replay(reply) => return Ok(reply.for_replay().into_response(true)),
        Begin::Run => {}
    }
    let shared = state.clone();
    let task = actix_web::rt::spawn(async move {
        // If this task dies before finishing, the guard forgets the key so a retry can run.
        let in_flight = InFlight { cache: &shared.idempotency, key: Some(cache_key), fingerprint };
        let outcome = mutation(context).await;
        match &outcome {
            Ok(reply) => in_flight.finish(Some(reply)),
            // A failed precondition or a server-side failure appended nothing and depends on
            // the moment: a retry (with a fresh If-Match) may succeed.
            Err(error) if error.status_code() == StatusCode::PRECONDITION_FAILED => in_flight.finish(None),
            Err(error) if error.status_code().is_client_error() => in_flight.finish(Some(&Reply::from_error(error))),
            Err(_) => in_flight.finish(None),
        }
        outcome
    });
    let outcome = task.await.map_err(|_| ApiError::Internal)?;
    outcome.map(|reply| reply.into_response(false))
}
