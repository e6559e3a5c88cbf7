//! What every admin mutation shares: its reply (with the log position and the new
//! version), `If-Match` preconditions, and `Idempotency-Key` replays.
//!
//! Idempotency is kept in memory, per admin user, for 24 hours: a retried request with
//! the same key and the same method, path, `If-Match` and body gets the first answer again
//! and appends nothing. A reply that showed a key's secret is replayed without the secret,
//! which is shown once only. The cache is bounded in entries and in bytes (16 MiB by
//! default, `--idempotency-cache-bytes`), forgetting the oldest answers first, and does
//! not survive a restart. A request refused for a malformed header is not remembered, so
//! a corrected retry with the same key runs.
//!
//! Any mutation may say why in `Keyledger-Justification` (see [`justification`]): the
//! text is kept in every record the change appends, and a server started with
//! `--require-justification` refuses a change that grants access without one.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use super::problem::ApiError;
use crate::domain::{self, Command, Justification, Resource, UserId};

/// The response header carrying the log position of a mutation's last event.
pub const POSITION_HEADER: &str = "Keyledger-Position";
/// The response header set on a replayed idempotent response.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// The request header in which an admin says why it makes a change.
pub const JUSTIFICATION_HEADER: &str = "Keyledger-Justification";

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

    /// What the reply costs the idempotency cache, in bytes.
    fn bytes(&self) -> usize {
        self.body.len()
            + self.replay_body.as_ref().map_or(0, Vec::len)
            + self.location.as_ref().map_or(0, String::len)
            + std::mem::size_of::<Self>()
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

/// Reads `Keyledger-Justification`: `None` when the request has none. Its bytes are read
/// as UTF-8, or, when they are not UTF-8, as ISO-8859-1 (what HTTP long took header bytes
/// for, and what clients that cannot send UTF-8 send), then parsed by
/// [`Justification::parse`]: trimmed, 1 to 500 characters, no control or format character.
/// Every other refusal is a 400 `invalid_justification` naming the rule.
pub fn justification(request: &HttpRequest) -> Result<Option<Justification>, ApiError> {
    let mut values = request.headers().get_all(JUSTIFICATION_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidJustification("must be sent once".to_owned()));
    }
    let bytes = value.as_bytes();
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&byte| char::from(byte)).collect()),
    };
    Justification::parse(&text).map(Some).map_err(|error| ApiError::InvalidJustification(error.to_string()))
}

const TTL: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_ENTRIES: usize = 100_000;
const MAX_KEY_LEN: usize = 255;

/// The most bytes the idempotency cache holds by default: keys and kept answers.
pub const DEFAULT_IDEMPOTENCY_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// What an entry costs besides its key and answer: the maps' bookkeeping, roughly.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Whether a request is still running or has its answer.
#[derive(Debug)]
enum Progress {
    InFlight,
    Done { reply: Arc<Reply>, at: Instant },
}

#[derive(Debug)]
struct Entry {
    fingerprint: blake3::Hash,
    state: Progress,
    /// The entry's place in `Entries::order`.
    seq: u64,
    /// What the entry counts against the budget.
    bytes: usize,
}

type CacheKey = (UserId, String);

/// The entries and the order they were last written in, oldest first.
#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<CacheKey, Entry>,
    order: BTreeMap<u64, CacheKey>,
    next_seq: u64,
    bytes: usize,
}

impl Entries {
    fn get(&self, key: &CacheKey) -> Option<&Entry> {
        self.by_key.get(key)
    }

    fn insert(&mut self, key: CacheKey, fingerprint: blake3::Hash, state: Progress) {
        self.remove(&key);
        let reply_bytes = match &state {
            Progress::InFlight => 0,
            Progress::Done { reply, .. } => reply.bytes(),
        };
        let bytes = ENTRY_OVERHEAD_BYTES + key.0.text().len() + key.1.len() + reply_bytes;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes;
        self.order.insert(seq, key.clone());
        self.by_key.insert(key, Entry { fingerprint, state, seq, bytes });
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.by_key.remove(key) {
            self.order.remove(&entry.seq);
            self.bytes -= entry.bytes;
        }
    }

    /// Forgets expired answers, then the oldest answers until there is room for one more
    /// entry within `max_bytes`. Requests in flight are never forgotten: their retries
    /// must be told to wait.
    fn make_room(&mut self, max_bytes: usize) {
        let over = |entries: &Self| {
            entries.by_key.len() >= MAX_ENTRIES || entries.bytes + ENTRY_OVERHEAD_BYTES + MAX_KEY_LEN > max_bytes
        };
        loop {
            let oldest_done = self.order.values().find_map(|key| match self.by_key.get(key) {
                Some(Entry { state: Progress::Done { at, .. }, .. }) => Some((key, at.elapsed() >= TTL)),
                _ => None,
            });
            let Some((key, expired)) = oldest_done else { return };
            if !expired && !over(self) {
                return;
            }
            let key = key.clone();
            self.remove(&key);
        }
    }
}

/// Idempotency keys seen in the last 24 hours, per admin user, within a budget of bytes.
#[derive(Debug)]
pub struct IdempotencyCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
}

impl Default for IdempotencyCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_IDEMPOTENCY_CACHE_BYTES)
    }
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
                let done = Progress::Done { reply: Arc::new(reply.clone()), at: Instant::now() };
                entries.insert(key, self.fingerprint, done);
                entries.make_room(self.cache.max_bytes);
            }
            None => entries.remove(&key),
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
    /// A cache that holds at most `max_bytes` of keys and answers.
    pub fn with_budget(max_bytes: usize) -> Self {
        Self { entries: Mutex::default(), max_bytes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self, key: &CacheKey, fingerprint: blake3::Hash) -> Result<Begin, ApiError> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(Entry { fingerprint: seen, state: Progress::Done { reply, at }, .. }) if at.elapsed() < TTL => {
                return if *seen == fingerprint {
                    Ok(Begin::Replay(Arc::clone(reply)))
                } else {
                    Err(ApiError::IdempotencyKeyReused)
                };
            }
            Some(Entry { fingerprint: seen, state: Progress::InFlight, .. }) => {
                return if *seen == fingerprint {
                    Err(ApiError::IdempotencyKeyInUse)
                } else {
                    Err(ApiError::IdempotencyKeyReused)
                };
            }
            _ => {}
        }
        entries.make_room(self.max_bytes);
        entries.insert(key.clone(), fingerprint, Progress::InFlight);
        Ok(Begin::Run)
    }
}

/// What a mutation runs with: owned, because it runs on its own task.
pub struct Mutation {
    /// The shared state.
    pub state: super::Shared,
    /// The request, for its `If-Match`.
    pub request: HttpRequest,
    /// The admin user making the change.
    pub actor: UserId,
}

impl Mutation {
    /// Submits a command on behalf of the actor, honouring `If-Match`.
    pub async fn submit(&self, command: Command) -> Result<crate::ledger::Applied, ApiError> {
        self.state.submit(command, &self.request, &self.actor).await
    }

    /// Submits a command and answers with `target` as the command left it: `status`, the
    /// command's log position, `target`'s view and its new version as the `ETag`. The
    /// writer reads the view right after applying the command ([`crate::ledger::Render`]),
    /// so this task never waits on the view's lock, which the writer holds through the
    /// next batch and its fsync.
    pub async fn submit_showing<T: Target>(
        &self,
        command: Command,
        target: T,
        status: StatusCode,
    ) -> Result<Reply, ApiError> {
        let render: crate::ledger::Render = Box::new(move |view: &domain::State| {
            target.show(view).map(|shown| Box::new(shown) as crate::ledger::Rendered)
        });
        let (applied, shown) = self.state.submit_rendering(command, &self.request, &self.actor, Some(render)).await?;
        let (shown, version) =
            *shown.and_then(|shown| shown.downcast::<(T::View, u64)>().ok()).ok_or(ApiError::Internal)?;
        Ok(Reply::json(status, &shown, applied.position).with_etag(version))
    }
}

/// What makes two requests with the same `Idempotency-Key` the same request: the method,
/// the path, every header that changes the outcome (`If-Match`, and
/// `Keyledger-Justification`, which the records keep; the actor is part of the cache's
/// key) and the body. Each part is length-prefixed, so no two requests share one.
fn fingerprint(request: &HttpRequest, body: &[u8]) -> blake3::Hash {
    let if_match = request.headers().get(header::IF_MATCH).map(HeaderValue::as_bytes);
    let justification = request.headers().get(JUSTIFICATION_HEADER).map(HeaderValue::as_bytes);
    let mut hasher = blake3::Hasher::new();
    let method = request.method().as_str().as_bytes();
    for part in [Some(method), Some(request.path().as_bytes()), if_match, justification, Some(body)] {
        match part {
            Some(bytes) => hasher.update(&(bytes.len() as u64 + 1).to_le_bytes()).update(bytes),
            None => hasher.update(&0u64.to_le_bytes()),
        };
    }
    hasher.finalize()
}

/// Runs a mutation, honouring `Idempotency-Key` if the request has one.
///
/// The mutation runs on a task of its own that outlives the request: a client that goes
/// away after sending does not stop a change that is already queued, and the answer is
/// still recorded for the retry that `Idempotency-Key` exists for.
pub async fn run<F, Fut>(
    state: &super::Shared,
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
    // A malformed If-Match or justification is refused before the key is remembered, so
    // that the corrected retry with the same key runs.
    expected_version(request)?;
    justification(request)?;
    let fingerprint = fingerprint(request, body);
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
            // A malformed header is the client's to correct, with the same key.
            Err(ApiError::InvalidHeader(_)) => in_flight.finish(None),
            Err(error) if error.status_code().is_client_error() => in_flight.finish(Some(&Reply::from_error(error))),
            Err(_) => in_flight.finish(None),
        }
        outcome
    });
    let outcome = task.await.map_err(|_| ApiError::Internal)?;
    outcome.map(|reply| reply.into_response(false))
}

/// A resource that admin operations read and change, named by its id: a read answers with
/// its view, and so does a mutation, as the resource is after the change.
pub trait Target: Clone + Display + Send + 'static {
    /// What the spec shows for the resource.
    type View: Serialize + Send + 'static;
    /// What a 404 calls it.
    const RESOURCE: Resource;

    /// The resource's view and its version, if `view` holds it.
    fn show(&self, view: &domain::State) -> Option<(Self::View, u64)>;
}

/// Runs a mutation that is one command on `target`, and answers with `target` after it
/// (200). `body` is the request's body, which the `Idempotency-Key` fingerprint covers
/// (empty for a mutation without one).
pub async fn change(
    state: &super::Shared,
    request: &HttpRequest,
    actor: &UserId,
    body: &[u8],
    target: impl Target,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    run(state, request, actor, body, move |m| async move { m.submit_showing(command, target, StatusCode::OK).await })
        .await
}

/// Runs a mutation that creates a resource: `command` for the id `generate` mints (on the
/// mutation's task, so a replay mints none). Answers 201 with the new resource and its
/// `Location`, `{collection}/{id}`.
pub async fn create<T: Target + Display>(
    state: &super::Shared,
    request: &HttpRequest,
    actor: &UserId,
    body: &[u8],
    collection: &'static str,
    generate: impl FnOnce() -> T + 'static,
    command: impl FnOnce(T) -> Command + 'static,
) -> Result<HttpResponse, ApiError> {
    run(state, request, actor, body, move |m| async move {
        let id = generate();
        let location = format!("{collection}/{id}");
        Ok(m.submit_showing(command(id.clone()), id, StatusCode::CREATED).await?.with_location(location))
    })
    .await
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn read(values: &[&[u8]]) -> Result<Option<String>, String> {
        let mut request = TestRequest::default();
        for value in values {
            request = request.append_header((JUSTIFICATION_HEADER, HeaderValue::from_bytes(value).unwrap()));
        }
        justification(&request.to_http_request())
            .map(|why| why.map(|why| why.as_str().to_owned()))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_justification_is_read_as_utf8_or_else_as_iso_8859_1_once_and_by_the_rules() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&["  OPS-1 café ".as_bytes()]), Ok(Some("OPS-1 café".to_owned())));
        assert_eq!(read(&[b"caf\xe9 \xabOPS\xbb"]), Ok(Some("café «OPS»".to_owned())));
        assert_eq!(read(&[b"OPS-1", b"OPS-2"]), Err("Keyledger-Justification must be sent once".to_owned()));
        assert_eq!(
            read(&[b"OPS\xad1"]),
            Err("Keyledger-Justification contains U+00AD, a control or format character".to_owned())
        );
        assert!(read(&[b"x".repeat(501).as_slice()]).is_err_and(|error| error.contains("at most 500")));
    }

    #[test]
    fn the_idempotency_fingerprint_covers_the_justification() {
        let with = |why: Option<&str>| {
            let mut request = TestRequest::post().uri("/v1/roles");
            if let Some(why) = why {
                request = request.insert_header((JUSTIFICATION_HEADER, why));
            }
            fingerprint(&request.to_http_request(), b"{}")
        };
        assert_eq!(with(Some("OPS-1")), with(Some("OPS-1")));
        assert_ne!(with(Some("OPS-1")), with(Some("OPS-2")));
        assert_ne!(with(None), with(Some("")));
    }
}
