//! Why was I refused? (issue #14, point 7): the most recent refused checks of each known
//! key, kept in memory, for `listKeyRefusals` and `whoAmI?refusals=true`.
//!
//! Only refused checks of known keys are kept (a malformed or unknown key names no user;
//! the brute-force limiter handles those), at most [`PER_KEY`] per key, the oldest dropped
//! first. A granted check never touches this: only a refused one takes one lock of one of
//! [`SHARDS`] small maps, chosen by the key's hash. Nothing here is written to the log:
//! refused checks are counted in the usage records, and these details are lost on restart.
//! The function and event as the client sent them are cut to [`MAX_TEXT_CHARS`]
//! characters, so a key's entries stay small whatever the client sends.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::UserPath;
use super::problem::{ApiError, Problem};
use super::responses::{Paged, UsersRead};
use super::users::user_id;
use super::{Page, Shared, paginate};
use crate::domain::{FunctionId, KeyHash, KeyHashHasher, KeyId, Reason, Resource, Timestamp, UserId};

/// How many refused checks are kept per key.
pub const PER_KEY: usize = 100;
/// How many independently locked maps the refusals are spread over.
pub const SHARDS: usize = 16;
/// The longest function or event id kept, in characters.
pub const MAX_TEXT_CHARS: usize = 128;

/// One refused check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// When it was refused.
    pub at: Timestamp,
    /// Why.
    pub reason: Reason,
    /// The function asked about, as sent (cut to [`MAX_TEXT_CHARS`]).
    pub function: String,
    /// The event asked about, if any, as sent (cut to [`MAX_TEXT_CHARS`]).
    pub event_id: Option<String>,
    /// The client's address, as the brute-force limiter works it out.
    pub client: IpAddr,
}

/// The refusals of one key, most recent last.
#[derive(Debug)]
struct KeyRefusals {
    user_id: UserId,
    key_id: KeyId,
    recent: VecDeque<Refusal>,
}

type Shard = HashMap<KeyHash, KeyRefusals, BuildHasherDefault<KeyHashHasher>>;

/// The recent refused checks of every key that had one since the service started.
#[derive(Debug, Default)]
pub struct RefusalLog {
    shards: [Mutex<Shard>; SHARDS],
}

/// A refused check of a known key, as the check saw it.
#[derive(Debug, Clone, Copy)]
pub struct RefusedCheck<'a> {
    /// The key's hash.
    pub key_hash: KeyHash,
    /// Its user.
    pub user_id: &'a UserId,
    /// Its id.
    pub key_id: &'a KeyId,
    /// Why it was refused.
    pub reason: Reason,
    /// The function asked about.
    pub function: &'a str,
    /// The event asked about.
    pub event_id: Option<&'a str>,
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

impl RefusalLog {
    fn shard(&self, key_hash: &KeyHash) -> MutexGuard<'_, Shard> {
        let bits = BuildHasherDefault::<KeyHashHasher>::default().hash_one(key_hash) >> 40;
        let index = usize::try_from(bits).unwrap_or(0) % SHARDS;
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a refused check, dropping the key's oldest beyond [`PER_KEY`].
    pub fn record(&self, check: RefusedCheck<'_>, client: IpAddr, at: Timestamp) {
        let refusal = Refusal {
            at,
            reason: check.reason,
            function: cut(check.function),
            event_id: check.event_id.map(cut),
            client,
        };
        let mut shard = self.shard(&check.key_hash);
        let entry = match shard.entry(check.key_hash) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(KeyRefusals {
                user_id: check.user_id.clone(),
                key_id: check.key_id.clone(),
                recent: VecDeque::new(),
            }),
        };
        if entry.recent.len() == PER_KEY {
            entry.recent.pop_front();
        }
        entry.recent.push_back(refusal);
    }

    /// The refusals of one key, most recent first.
    pub fn of_key(&self, key_hash: &KeyHash) -> Vec<Refusal> {
        self.shard(key_hash).get(key_hash).map_or_else(Vec::new, |kept| kept.recent.iter().rev().cloned().collect())
    }

    /// The refusals of every key of a user, with the key's id, most recent first.
    pub fn of_user(&self, user_id: &UserId) -> Vec<(KeyId, Refusal)> {
        let mut all: Vec<(KeyId, Refusal)> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for kept in shard.values().filter(|kept| kept.user_id == *user_id) {
                all.extend(kept.recent.iter().rev().map(|refusal| (kept.key_id.clone(), refusal.clone())));
            }
        }
        // Stable: a key's refusals in the same millisecond stay most recent first.
        all.sort_by_key(|(_, refusal)| std::cmp::Reverse(refusal.at));
        all
    }
}

/// A refused check.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"key_id": "key_0f1e2d3c4b5a6978", "at": "2027-02-03T09:15:00.000Z", "reason": "event_not_accessible", "function": "api.attendees.read", "event_id": "gala-paris", "client_address": "192.0.2.10"}))]
pub struct RefusalView {
    /// The key that was refused.
    pub key_id: String,
    /// When.
    pub at: String,
    /// Why, as `checkKey` says it (`function_not_granted`, `revoked_key`, …).
    pub reason: String,
    /// The function asked about, as sent (at most 128 characters).
    pub function: String,
    /// The event asked about, if any, as sent (at most 128 characters).
    pub event_id: Option<String>,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client_address: String,
}

impl RefusalView {
    /// Shows a refusal of the key `key_id`.
    pub fn of(key_id: &KeyId, refusal: &Refusal) -> Self {
        RefusalView {
            key_id: key_id.to_string(),
            at: refusal.at.to_string(),
            reason: refusal.reason.as_str().to_owned(),
            function: refusal.function.clone(),
            event_id: refusal.event_id.clone(),
            client_address: refusal.client.to_string(),
        }
    }
}

list_page! {
    /// A page of refused checks.
    RefusalList of RefusalView, "The refused checks, most recent first."
}

/// The most recent refused checks of a user's keys (at most 100 per key), most recent
/// first: the key, when, why, the function and event asked about, and the client's
/// address. Kept in memory since the service started (a restart forgets them; the counts
/// are in the usage records). Checks refused for a malformed or unknown key name no user
/// and are not here. Needs `security.users.read`.
#[utoipa::path(
    operation_id = "listKeyRefusals",
    tag = "users",
    params(UserPath, Page),
    responses(
        Paged<UsersRead>,
        (status = 200, description = "A page of refused checks", body = RefusalList),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/users/{user_id}/refusals")]
pub async fn list_key_refusals(
    state: Shared,
    request: HttpRequest,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::USERS_READ)?;
    let user = user_id(&path.user_id)?;
    let page = Page::of(&request)?;
    let limit = page.limit()?;
    if state.ledger.view().user(&user).is_none() {
        return Err(ApiError::NotFound { resource: Resource::User, id: user.to_string() });
    }
    let refusals = state.refusals.of_user(&user);
    let skip = usize::try_from(page.after()).unwrap_or(usize::MAX);
    let (items, next) = paginate(
        refusals.iter().enumerate().skip(skip),
        limit,
        |(index, _)| *index as u64 + 1,
        |(_, (key_id, refusal))| RefusalView::of(key_id, refusal),
    );
    Ok(HttpResponse::Ok().json(RefusalList { items, next }))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(list_key_refusals);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(log: &RefusalLog, n: u8, user: &UserId, key: &KeyId, at: i64) {
        let check = RefusedCheck {
            key_hash: KeyHash::example(n),
            user_id: user,
            key_id: key,
            reason: Reason::FunctionNotGranted,
            function: &"f".repeat(300),
            event_id: Some("summit"),
        };
        log.record(check, IpAddr::from([192, 0, 2, 1]), Timestamp::from_unix_millis(at));
    }

    #[test]
    fn a_key_keeps_its_last_hundred_refusals_most_recent_first_and_texts_are_cut() {
        let log = RefusalLog::default();
        let (user, key) = (UserId::example(1), KeyId::example(1));
        for at in 0..250 {
            refused(&log, 1, &user, &key, at);
        }
        let kept = log.of_key(&KeyHash::example(1));
        assert_eq!(kept.len(), PER_KEY);
        assert_eq!(kept.first().map(|r| r.at), Some(Timestamp::from_unix_millis(249)));
        assert_eq!(kept.last().map(|r| r.at), Some(Timestamp::from_unix_millis(150)));
        assert!(kept.iter().all(|r| r.function.chars().count() == MAX_TEXT_CHARS));
    }

    #[test]
    fn a_users_refusals_gather_every_key_of_theirs_and_no_one_elses() {
        let log = RefusalLog::default();
        let (user, other) = (UserId::example(1), UserId::example(2));
        refused(&log, 1, &user, &KeyId::example(1), 10);
        refused(&log, 2, &user, &KeyId::example(2), 30);
        refused(&log, 3, &other, &KeyId::example(3), 20);
        let mine: Vec<(KeyId, i64)> =
            log.of_user(&user).into_iter().map(|(key, r)| (key, r.at.unix_millis())).collect();
        assert_eq!(mine, [(KeyId::example(2), 30), (KeyId::example(1), 10)]);
        assert!(log.of_key(&KeyHash::example(4)).is_empty());
    }
}
