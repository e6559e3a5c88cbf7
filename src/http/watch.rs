//! The change feed: `watchAuditEvents`, the log's records as Server-Sent Events, from any
//! position, then live as they are appended.
//!
//! Each record is one event: `id:` its `seq`, `event:` its type, `data:` the record exactly
//! as stored, so a follower can recompute its hash and its link to the one before. A
//! record is compact JSON (serde_json escapes every control character inside strings and
//! writes no whitespace), so it is one `data:` line; were a record ever to hold a line
//! feed, it would go out as several `data:` lines, which SSE joins back with line feeds.
//!
//! A stream first reads the log from its start position up to the head it saw, then
//! follows the ledger's change feed ([`crate::ledger::feed`]). It subscribes to the feed
//! before it reads the head, so nothing is missed, and skips live records it already sent
//! from the log, so nothing is sent twice. Every stream runs on a task of its own that
//! hands the body one chunk at a time: it reads from the log only as fast as the client
//! takes what it sent. The feed is a bounded ring the writer never waits for; a stream
//! that falls behind it while following live is cut off (`event: lagged`, then the end)
//! and the client resumes from its last id. One that falls behind while it still reads
//! the log simply reads on from the log, since the log keeps everything. Before it sends
//! anything, a stream asks again whether its key holds `security.audit.read`, and ends
//! once it does not.

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use utoipa::IntoParams;

use super::Shared;
use super::audit::{AuditFilter, Verdict};
use super::params::LastEventId;
use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded};
use crate::checkpoint::Checkpoint;
use crate::domain::{self, CheckView, FunctionId, KeyHash, Reason, Timestamp};
use crate::ledger::Change;
use crate::log::{EventLog, StoredRecord};

/// How often a stream sends a comment (`: keepalive`) when it has sent nothing else, by
/// default: often enough for proxies that close idle connections after 30 or 60 s.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The most records a stream reads from the log at a time.
const HISTORY_CHUNK: usize = 128;

/// About how many bytes of records a stream reads from the log at a time: after the first
/// read, the number of records is set from the size of the last ones, so that a run of
/// large records (key usage of thousands of keys, up to about 300 KB each) is read a few
/// at a time. The first read takes [`FIRST_READ`] records.
const HISTORY_BYTES: usize = 1 << 20;

/// How many records the first read of the log takes.
const FIRST_READ: usize = 16;

/// The most bytes of events handed to the body at once (unless one record is larger).
const PIECE_BYTES: usize = 256 << 10;

/// What every change feed of a server shares: the heartbeat, and the signal that ends
/// every stream when the server stops (a graceful stop waits for open responses, and a
/// stream never ends by itself).
#[derive(Debug)]
pub struct Followers {
    heartbeat: Duration,
    stopping: watch::Sender<bool>,
}

impl Followers {
    /// Streams that send a heartbeat comment after `heartbeat` without sending anything.
    pub fn new(heartbeat: Duration) -> Self {
        let (stopping, _) = watch::channel(false);
        Self { heartbeat: heartbeat.max(Duration::from_millis(10)), stopping }
    }

    /// Ends every stream, open or opened from now on: the server is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

impl Default for Followers {
    fn default() -> Self {
        Self::new(DEFAULT_HEARTBEAT)
    }
}

/// What a stream follows: the ledger's change feed, its head and its log. The server's
/// [`Shared`] state is one; tests follow a ledger over an in-memory log.
trait Followed: Clone + Send + Sync + 'static {
    /// Subscribes to the change feed.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
    /// The view's head: every record up to it is in the log.
    fn head(&self) -> u64;
    /// Up to `max` records from `from` on, as stored.
    fn read(&self, from: u64, max: usize) -> Result<Vec<StoredRecord>, String>;
    /// Whether the key the stream was opened with still holds `security.audit.read`.
    fn still_allowed(&self, key: KeyHash) -> bool;
}

/// Whether `key` passes the admin guard's check of `security.audit.read` now.
fn holds_audit_read<V: CheckView + ?Sized>(view: &V, key: KeyHash) -> bool {
    domain::check_key_hash(view, key, FunctionId::AUDIT_READ.as_str(), None, Timestamp::now()).reason == Reason::Granted
}

impl Followed for Shared {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.ledger.subscribe()
    }

    fn head(&self) -> u64 {
        self.ledger.view().head()
    }

    fn read(&self, from: u64, max: usize) -> Result<Vec<StoredRecord>, String> {
        self.ledger.log().read(from, max).map_err(|error| error.to_string())
    }

    fn still_allowed(&self, key: KeyHash) -> bool {
        holds_audit_read(&*self.ledger.checks(), key)
    }
}

/// Where the stream starts and ends, and which records it sends.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Start after this `seq`: 0 (the default) sends the whole log. The `Last-Event-ID`
    /// header, which an EventSource sends when it reconnects, takes precedence.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
    /// End the stream once the record at this `seq` has been read (sent, or passed over
    /// by the filters), waiting for it if it is not yet written. Omit to follow for ever.
    #[param(minimum = 1, maximum = 9223372036854775807_i64, example = 100)]
    pub until: Option<u64>,
    /// Only records of these event types, comma-separated, such as
    /// `KeyGenerated,KeyRevoked`.
    #[serde(rename = "type")]
    #[param(rename = "type", example = "KeyGenerated,KeyRevoked")]
    pub kind: Option<String>,
    /// Only records made by this actor: a user id, or `system`.
    #[param(example = "usr_00aa11bb22cc33dd", pattern = "^(system|usr_[0-9a-f]{16})$")]
    pub actor: Option<String>,
    /// Only records about this role, user or group id (or `system`).
    #[param(example = "usr_5f0c2a9e1b7d4c3a")]
    pub subject: Option<String>,
}

/// The position to start after: the `Last-Event-ID` header if sent, else `after`, else 0.
/// The header wins because an EventSource reconnects to the same URL with it: were the
/// query to win, `?after=0` would start again from the beginning on every reconnect.
fn start_position(request: &HttpRequest, query: &WatchQuery) -> Result<u64, ApiError> {
    // Positions are int64 in the spec, as every client language can hold.
    let position = |value: u64| (value <= i64::MAX as u64).then_some(value);
    let out_of_range = |name: &str| ApiError::InvalidQuery(format!("{name} must be between 0 and {}", i64::MAX));
    if query.until.is_some_and(|until| position(until).is_none()) {
        return Err(out_of_range("until"));
    }
    let Some(value) = request.headers().get("last-event-id") else {
        return query.after.map_or(Ok(0), |after| position(after).ok_or_else(|| out_of_range("after")));
    };
    let text = value.to_str().unwrap_or_default().trim();
    text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse::<u64>().ok()).flatten().and_then(position).ok_or_else(
        || {
            ApiError::InvalidHeader(format!(
                "Last-Event-ID must be the id of an event of this stream, a seq from 0 to {}",
                i64::MAX
            ))
        },
    )
}

// Documentation only: the stream itself is framed by `frame_records`.
/// One event of the change feed, sent as Server-Sent Events' `id:`, `event:` and `data:`
/// lines.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WatchEvent {
    /// The record's `seq`, for `Last-Event-ID`; absent on `checkpoint` and `lagged` events.
    #[schema(example = "1")]
    id: Option<String>,
    /// The record's type (`RoleCreated`, …), or `checkpoint`, or `lagged`.
    #[schema(example = "RoleCreated")]
    event: String,
    /// The record exactly as stored (one line of JSON), the checkpoint as `getCheckpoint`
    /// serves it, or `{"after": <last seq read>}` for `lagged`.
    data: String,
}

/// Follows the audit trail as Server-Sent Events: every record after `after` (or the
/// `Last-Event-ID` header, which wins) exactly as stored, then every record appended from
/// then on, each exactly once and in order, optionally filtered by event type, actor and
/// subject like `listAuditEvents`.
///
/// Each record is an event with `id:` its `seq`, `event:` its type and `data:` the record
/// as stored (one line), so a client can recompute each hash and chain link. Whenever a
/// checkpoint is signed, an event `checkpoint` carries it as `getCheckpoint` serves it (no
/// `id`; checkpoints signed while the stream was still reading the log may be skipped:
/// `listCheckpoints` has them all). A comment `: keepalive` comes after 15 s without
/// anything else. A client that falls too far behind the records being appended gets an
/// event `lagged` (data: `{"after": <last seq read>}`) and the stream ends: reconnect with
/// `Last-Event-ID` to carry on. Writes never wait for a stream. The key is checked again
/// before anything is sent: once it no longer holds the function (revoked, expired, its
/// user disabled or its role changed), the stream ends.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "watchAuditEvents",
    tag = "audit",
    params(
        WatchQuery,
        LastEventId,
    ),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The stream of records (Server-Sent Events)", content_type = "text/event-stream", body = WatchEvent,
            example = "id: 1\nevent: RoleCreated\ndata: {\"seq\":1,\"type\":\"RoleCreated\",…,\"hash\":\"0c7e…\"}\n\n"),
        (status = 400, description = "Bad query parameters or `Last-Event-ID`; an unknown event type is `unknown_event_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`after` (or `Last-Event-ID`) is past the head of the log (`position_beyond_head`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/watch")]
pub async fn watch_audit_events(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    // The stream asks again before it sends anything (`Follower::send`): a key revoked, or
    // a user disabled or stripped of the function, stops receiving the trail.
    let key = super::auth::presented_key(&request)
        .and_then(|presented| KeyHash::of_presented(presented.key()).ok())
        .ok_or(ApiError::Internal)?;
    let query: WatchQuery = super::query(&request)?;
    let filter = AuditFilter::matching(query.kind.as_deref(), query.actor.as_deref(), query.subject.as_deref())?;
    let after = start_position(&request, &query)?;
    if let Some(until) = query.until
        && until <= after
    {
        return Err(ApiError::InvalidQuery(format!("until ({until}) must be past the start position ({after})")));
    }
    // Subscribe first, then read the head: every record past it will come through the feed.
    let feed = state.ledger.subscribe();
    let head = state.ledger.view().head();
    if after > head {
        return Err(ApiError::PositionBeyondHead { position: after, head });
    }
    let (sender, body) = mpsc::channel(1);
    let stopping = state.followers.stopping.subscribe();
    let follower = Follower {
        heartbeat: state.followers.heartbeat,
        source: state.clone(),
        key,
        feed,
        out: sender,
        last: after,
        until: query.until,
        filter: std::sync::Arc::new(filter),
        last_sent: Instant::now(),
        read_size: FIRST_READ,
    };
    actix_web::rt::spawn(follower.run(stopping));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx buffers proxied responses unless told not to.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(Events(body)))
}

/// One stream's task: reads the log, then follows the feed, and hands the body its text.
struct Follower<S> {
    source: S,
    /// The key the stream was opened with, by its hash.
    key: KeyHash,
    feed: broadcast::Receiver<Change>,
    out: mpsc::Sender<Bytes>,
    /// The last `seq` read (sent, or passed over by the filter).
    last: u64,
    until: Option<u64>,
    filter: std::sync::Arc<AuditFilter>,
    heartbeat: Duration,
    last_sent: Instant,
    /// How many records the next read of the log takes.
    read_size: usize,
}

/// Why a stream ends.
enum End {
    /// The client went away, the server is stopping, or `until` was reached.
    Done,
    /// The log could not be read, or a record not parsed; the client reconnects later.
    Failed,
}

impl<S: Followed> Follower<S> {
    async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        let out = self.out.clone();
        tokio::select! {
            _ = self.follow() => {}
            _ = stopping.wait_for(|stopping| *stopping) => {}
            _ = out.closed() => {}
        }
    }

    async fn follow(&mut self) -> End {
        // After reading the log, the feed may have overflowed meanwhile (a long history, a
        // slow client): that is no lag of the live stream, so read on from the log.
        let mut just_caught_up = match self.catch_up().await {
            Ok(()) => true,
            Err(end) => return end,
        };
        loop {
            let idle = tokio::time::sleep_until(self.last_sent + self.heartbeat);
            let change = tokio::select! {
                change = self.feed.recv() => change,
                () = idle => {
                    if let Err(end) = self.send(Bytes::from_static(b": keepalive\n\n")).await {
                        return end;
                    }
                    continue;
                }
            };
            match change {
                Ok(Change::Records(batch)) => {
                    just_caught_up = false;
                    let Some(first) = batch.first() else { continue };
                    if first.seq > self.last + 1 {
                        // Never expected (the feed carries every batch in order); the log
                        // has what is missing.
                        tracing::warn!(
                            first = first.seq,
                            last = self.last,
                            "the change feed skipped records; reading the log"
                        );
                        if let Err(end) = self.catch_up().await {
                            return end;
                        }
                        continue;
                    }
                    let fresh: Vec<&StoredRecord> = batch.iter().filter(|record| record.seq > self.last).collect();
                    let Ok(framed) = frame_records(&self.filter, fresh, self.until) else { return End::Failed };
                    self.last = framed.last.unwrap_or(self.last);
                    if let Err(end) = self.send_pieces(framed.pieces).await {
                        return end;
                    }
                    if framed.done {
                        return End::Done;
                    }
                }
                Ok(Change::Checkpoint(checkpoint)) => {
                    just_caught_up = false;
                    if let Err(end) = self.send(frame_checkpoint(&checkpoint)).await {
                        return end;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) if just_caught_up => {
                    self.feed = self.source.subscribe();
                    if let Err(end) = self.catch_up().await {
                        return end;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(after = self.last, missed, "a change feed client fell behind; ending its stream");
                    let text = format!("event: lagged\ndata: {{\"after\":{}}}\n\n", self.last);
                    let _ = self.send(Bytes::from(text)).await;
                    return End::Done;
                }
                Err(broadcast::error::RecvError::Closed) => return End::Done,
            }
        }
    }

    /// Sends the log's records after `last` up to the view's head (as it is when each
    /// chunk is read), reading chunk by chunk as the client takes them.
    async fn catch_up(&mut self) -> Result<(), End> {
        loop {
            let head = self.source.head();
            if self.last >= head {
                return Ok(());
            }
            let from = self.last + 1;
            let wanted = usize::try_from(head - self.last).unwrap_or(usize::MAX).min(self.read_size);
            let (source, filter, until) = (self.source.clone(), self.filter.clone(), self.until);
            let read = web::block(move || {
                let records = source.read(from, wanted).map_err(|error| {
                    tracing::warn!(%error, from, "reading the log for a change feed failed");
                })?;
                let bytes: usize = records.iter().map(|record| record.bytes.len()).sum();
                let next = (HISTORY_BYTES.saturating_mul(records.len()) / bytes.max(1)).clamp(1, HISTORY_CHUNK);
                frame_records(&filter, records.iter().collect(), until).map(|framed| (framed, next))
            })
            .await;
            let Ok(Ok((framed, next))) = read else { return Err(End::Failed) };
            self.read_size = next;
            let Some(last) = framed.last else {
                tracing::error!(from, head, "the log holds fewer records than the view's head");
                return Err(End::Failed);
            };
            self.last = last;
            self.send_pieces(framed.pieces).await?;
            if framed.done {
                return Err(End::Done);
            }
        }
    }

    /// Sends the pieces, in order; with none, a heartbeat if one is due (a filter may pass
    /// over many records in a row).
    async fn send_pieces(&mut self, pieces: Vec<Bytes>) -> Result<(), End> {
        if pieces.is_empty() && self.last_sent.elapsed() >= self.heartbeat {
            return self.send(Bytes::from_static(b": keepalive\n\n")).await;
        }
        for piece in pieces {
            self.send(piece).await?;
        }
        Ok(())
    }

    /// Waits until the body takes `bytes`: the client's pace sets the stream's.
    /// Ends the stream instead if its key no longer holds `security.audit.read`.
    async fn send(&mut self, bytes: Bytes) -> Result<(), End> {
        if !self.source.still_allowed(self.key) {
            tracing::info!(after = self.last, "the key of a change feed stream lost security.audit.read; ending it");
            return Err(End::Done);
        }
        self.out.send(bytes).await.map_err(|_| End::Done)?;
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// Records framed as events, in pieces of about [`PIECE_BYTES`].
struct Framed {
    /// The events, in order; no piece is empty.
    pieces: Vec<Bytes>,
    /// The last `seq` read (sent, or passed over by the filter); `None` for no records.
    last: Option<u64>,
    /// Whether `until` was reached.
    done: bool,
}

/// The records that pass `filter`, framed as events, up to `until`. Fails on a record
/// whose envelope cannot be read.
fn frame_records(filter: &AuditFilter, records: Vec<&StoredRecord>, until: Option<u64>) -> Result<Framed, ()> {
    let mut framed = Framed { pieces: Vec::new(), last: None, done: false };
    let mut text = Vec::new();
    let everything = filter.is_empty();
    for record in records {
        framed.last = Some(record.seq);
        let listed = everything
            || match filter.judge(record) {
                Ok(verdict) => matches!(verdict, Verdict::List),
                Err(_) => return Err(()),
            };
        if listed {
            frame_record(record, &mut text)?;
            if text.len() >= PIECE_BYTES {
                framed.pieces.push(Bytes::from(std::mem::take(&mut text)));
            }
        }
        if until.is_some_and(|until| record.seq >= until) {
            framed.done = true;
            break;
        }
    }
    if !text.is_empty() {
        framed.pieces.push(Bytes::from(text));
    }
    Ok(framed)
}

/// The members of a record an event's name needs.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// A record's type, read where the writer puts it (`{"seq":N,"type":"…"`) without parsing
/// the record; any other layout is parsed. Every follower frames every record, so this is
/// the stream's hot path.
fn type_of(bytes: &[u8]) -> Option<Cow<'_, str>> {
    let quick = bytes
        .strip_prefix(b"{\"seq\":")
        .map(|rest| rest.trim_ascii_start())
        .and_then(|rest| rest.iter().position(|b| !b.is_ascii_digit()).map(|digits| &rest[digits..]))
        .and_then(|rest| rest.strip_prefix(b",\"type\":\""))
        .and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[..end]))
        .filter(|name| !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_'))
        .and_then(|name| std::str::from_utf8(name).ok());
    match quick {
        Some(name) => Some(Cow::Borrowed(name)),
        None => serde_json::from_slice::<Kind<'_>>(bytes).ok().map(|kind| kind.kind),
    }
}

/// Appends one record as an event: `id`, `event` (its type) and the stored bytes as
/// `data`, one line per line of the record (always one: records are compact JSON).
fn frame_record(record: &StoredRecord, text: &mut Vec<u8>) -> Result<(), ()> {
    let Some(kind) = type_of(&record.bytes) else {
        tracing::error!(seq = record.seq, "a stored record has no readable type");
        return Err(());
    };
    // Type names are identifiers; anything else cannot be an event name on one line.
    let name = if kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') { &kind } else { "record" };
    text.extend_from_slice(b"id: ");
    text.extend_from_slice(record.seq.to_string().as_bytes());
    text.extend_from_slice(b"\nevent: ");
    text.extend_from_slice(name.as_bytes());
    text.push(b'\n');
    for line in record.bytes.split(|&b| b == b'\n') {
        text.extend_from_slice(b"data: ");
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text.push(b'\n');
    Ok(())
}

/// A checkpoint as an event, its data the line `getCheckpoint` serves.
fn frame_checkpoint(checkpoint: &Checkpoint) -> Bytes {
    Bytes::from(format!("event: checkpoint\ndata: {}\n\n", checkpoint.to_line()))
}

/// The response body: what the stream's task hands over, one chunk at a time.
struct Events(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Events {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(context).map(|chunk| chunk.map(Ok))
    }
}

/// Registers the route.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(watch_audit_events);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Actor, Command, Name, RoleId};
    use crate::ledger::{DEFAULT_FEED_CAPACITY, Ledger, Request};
    use crate::log::MemoryLog;

    impl<L: EventLog> Followed for Arc<Ledger<L>> {
        fn subscribe(&self) -> broadcast::Receiver<Change> {
            Ledger::subscribe(self)
        }

        fn head(&self) -> u64 {
            self.view().head()
        }

        fn read(&self, from: u64, max: usize) -> Result<Vec<StoredRecord>, String> {
            self.log().read(from, max).map_err(|error| error.to_string())
        }

        fn still_allowed(&self, key: KeyHash) -> bool {
            holds_audit_read(&*self.checks(), key)
        }
    }

    /// A bootstrapped ledger over an in-memory log, a request by its Administrator, and the
    /// Administrator's key.
    fn ledger() -> (Arc<Ledger<MemoryLog>>, Request, KeyHash) {
        let ledger = Ledger::open(MemoryLog::new()).expect("the ledger opens");
        let secret = ledger.bootstrap().expect("bootstrap").expect("a new ledger");
        let admin = ledger.view().users_after(0).next().map(|user| user.id().clone()).expect("the Administrator");
        let request =
            Request { actor: Actor::User(admin), expected_version: None, credential: None, justification: None };
        (Arc::new(ledger), request, secret.hash())
    }

    async fn create_roles(ledger: &Ledger<MemoryLog>, admin: &Request, count: usize) {
        for index in 0..count {
            let command = Command::CreateRole {
                role_id: RoleId::generate(&mut rand::rng()),
                description: Name::parse(&format!("Role {index} of {count}")).expect("a name"),
            };
            // One at a time: each command is a batch, so a message of the feed, of its own.
            ledger.submit(command, admin.clone()).await.expect("applied");
        }
    }

    /// Starts a stream after `after` whose client has read nothing yet.
    fn follow(ledger: &Arc<Ledger<MemoryLog>>, key: KeyHash, after: u64, until: Option<u64>) -> mpsc::Receiver<Bytes> {
        let (out, body) = mpsc::channel(1);
        let follower = Follower {
            source: Arc::clone(ledger),
            key,
            feed: ledger.subscribe(),
            out,
            last: after,
            until,
            filter: Arc::new(AuditFilter::default()),
            heartbeat: Duration::from_secs(3600),
            last_sent: Instant::now(),
            read_size: FIRST_READ,
        };
        let (stopping, stopped) = watch::channel(false);
        actix_web::rt::spawn(async move {
            follower.run(stopped).await;
            drop(stopping);
        });
        body
    }

    /// What the client reads until the stream ends.
    async fn read_to_end(body: &mut mpsc::Receiver<Bytes>) -> String {
        let mut text = String::new();
        while let Some(chunk) = body.recv().await {
            text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
        text
    }

    fn ids(text: &str) -> Vec<u64> {
        text.lines().filter_map(|line| line.strip_prefix("id: ")).map(|id| id.parse().expect("an id")).collect()
    }

    #[test]
    fn a_follower_that_stops_reading_while_live_is_cut_off_with_lagged_after_the_last_record_it_got() {
        let (ledger, admin, key) = ledger();
        actix_web::rt::System::new().block_on(async move {
            let head = ledger.view().head();
            let mut body = follow(&ledger, key, head, None);
            // Live: the next record arrives as it is appended.
            create_roles(&ledger, &admin, 1).await;
            let first = body.recv().await.expect("a record");
            assert_eq!(ids(std::str::from_utf8(&first).expect("utf-8")), [head + 1]);
            // Then the client stops reading while more commits than the feed keeps are made.
            create_roles(&ledger, &admin, DEFAULT_FEED_CAPACITY + 10).await;
            let text = read_to_end(&mut body).await;
            let sent = ids(&text);
            let last = *sent.last().expect("the records it held");
            assert_eq!(sent, (head + 2..=last).collect::<Vec<_>>(), "no gap before the cut-off");
            assert!(last < ledger.view().head(), "it could not have kept up");
            assert!(text.ends_with(&format!("event: lagged\ndata: {{\"after\":{last}}}\n\n")), "{text}");
        });
    }

    #[test]
    fn a_follower_that_falls_behind_while_reading_the_log_reads_on_from_the_log_and_misses_nothing() {
        let (ledger, admin, key) = ledger();
        actix_web::rt::System::new().block_on(async move {
            // More history than a chunk and the body's buffer hold, so that the stream is
            // still reading the log while more commits than the feed keeps are made.
            create_roles(&ledger, &admin, 3 * HISTORY_CHUNK).await;
            let mut body = follow(&ledger, key, 0, None);
            create_roles(&ledger, &admin, DEFAULT_FEED_CAPACITY + 10).await;
            let head = ledger.view().head();
            let mut text = String::new();
            while ids(&text).last() != Some(&head) {
                text.push_str(std::str::from_utf8(&body.recv().await.expect("more")).expect("utf-8"));
            }
            // Then it follows live on a fresh subscription.
            create_roles(&ledger, &admin, 1).await;
            text.push_str(std::str::from_utf8(&body.recv().await.expect("the live record")).expect("utf-8"));
            assert_eq!(ids(&text), (1..=head + 1).collect::<Vec<_>>());
            assert!(!text.contains("lagged"), "reading the log is never cut off");
        });
    }

    fn record(seq: u64, kind: &str) -> StoredRecord {
        let bytes = format!(
            r#"{{"seq":{seq},"type":"{kind}","v":1,"id":"x","at":"2027-01-31T17:00:00.000Z","actor":"system","subject":"system","data":{{}},"prev_hash":"0","hash":"0"}}"#
        );
        StoredRecord { seq, bytes: bytes.into_bytes() }
    }

    #[test]
    fn the_type_is_read_where_the_writer_puts_it_and_parsed_from_any_other_layout() {
        assert_eq!(type_of(&record(12, "KeyRevoked").bytes).as_deref(), Some("KeyRevoked"));
        // Another member order, spacing or an escape: parsed, with the same answer.
        assert_eq!(type_of(br#"{"type":"RoleCreated","seq":3}"#).as_deref(), Some("RoleCreated"));
        assert_eq!(type_of(br#"{"seq": 3, "type": "RoleCreated"}"#).as_deref(), Some("RoleCreated"));
        assert_eq!(type_of(br#"{"seq":3,"type":"Role\u0043reated"}"#).as_deref(), Some("RoleCreated"));
        assert_eq!(type_of(br#"{"seq":3}"#), None);
        assert_eq!(type_of(b"not json"), None);
    }

    #[test]
    fn a_record_is_one_event_with_its_seq_its_type_and_its_bytes_as_stored() {
        let stored = record(7, "RoleCreated");
        let mut text = Vec::new();
        frame_record(&stored, &mut text).expect("framed");
        let expected = format!("id: 7\nevent: RoleCreated\ndata: {}\n\n", String::from_utf8_lossy(&stored.bytes));
        assert_eq!(String::from_utf8(text).expect("utf-8"), expected);
    }

    #[test]
    fn a_record_holding_a_line_feed_is_framed_as_data_lines_that_sse_joins_back_exactly() {
        let stored = StoredRecord { seq: 2, bytes: b"{\"type\":\"RoleCreated\",\n\"seq\":2}".to_vec() };
        let mut text = Vec::new();
        frame_record(&stored, &mut text).expect("framed");
        let text = String::from_utf8(text).expect("utf-8");
        // What an SSE client does: join the data lines with a line feed.
        let data: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
        assert_eq!(data.join("\n").as_bytes(), stored.bytes.as_slice());
    }

    #[test]
    fn many_records_are_handed_over_in_bounded_pieces_that_join_into_every_event_in_order() {
        let records: Vec<StoredRecord> = (1..=2000).map(|seq| record(seq, "RoleCreated")).collect();
        let framed = frame_records(&AuditFilter::default(), records.iter().collect(), None).expect("framed");
        assert!(framed.pieces.len() > 1, "2000 records are more than one piece");
        let largest_record = records.iter().map(|record| record.bytes.len() + 64).max().unwrap_or(0);
        assert!(framed.pieces.iter().all(|piece| !piece.is_empty() && piece.len() < PIECE_BYTES + largest_record));
        let mut whole = Vec::new();
        for record in &records {
            frame_record(record, &mut whole).expect("framed");
        }
        assert_eq!(framed.pieces.concat(), whole);
        assert_eq!((framed.last, framed.done), (Some(2000), false));
    }

    #[test]
    fn framing_stops_at_until_and_reports_the_last_record_read_even_when_filtered_out() {
        let filter = AuditFilter::matching(Some("RoleCreated"), None, None).expect("filter");
        let records = [record(1, "RoleCreated"), record(2, "UserCreated"), record(3, "RoleCreated")];
        let framed = frame_records(&filter, records.iter().collect(), Some(2)).expect("framed");
        assert_eq!((framed.last, framed.done), (Some(2), true));
        let text: Vec<u8> = framed.pieces.concat();
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.starts_with("id: 1\n") && !text.contains("id: 2") && !text.contains("id: 3"), "{text}");
    }
}
