//! Refused admin requests: which are recorded, and what a record names.
//!
//! An admin request whose key works but lacks the admin function (a 403) is recorded as
//! an `AdminAccessDenied`, at most [`MAX_RECORDED_PER_WINDOW`] per key per window. The
//! window is fixed per key: it opens at the first refusal recorded after the previous
//! window closed and lasts `--denial-window-secs` (60 by default). Refusals past the limit
//! are only counted; the count goes into the `suppressed` field of the key's next recorded
//! refusal, which is the first one after the window closes. Nothing is lost in aggregate
//! either: every refusal also counts as a refused use in the key's entry of the interval's
//! `KeyUsageIntervalRecorded`.
//!
//! Refusals for a bad or unknown key (401) are not recorded here: the brute-force limiter
//! handles those, and they name no key to attribute them to.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::domain::{KeyHash, KeyHashHasher};

/// The most refusals recorded per key per window.
pub const MAX_RECORDED_PER_WINDOW: u32 = 3;

/// The default length of a key's window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The most keys whose windows are tracked at once; past that, the key whose window
/// opened first is forgotten (its unreported count is logged).
const MAX_TRACKED_KEYS: usize = 10_000;

/// The path parameters a record names as its target, in the order they are looked for.
const TARGET_PARAMETERS: [&str; 3] = ["user_id", "role_id", "group_id"];

#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    recorded: u32,
    suppressed: u32,
}

/// Per-key windows of recorded refusals.
#[derive(Debug)]
pub struct DenialLimiter {
    window: Duration,
    keys: Mutex<HashMap<KeyHash, Window, BuildHasherDefault<KeyHashHasher>>>,
}

impl DenialLimiter {
    /// A limiter whose windows last `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, keys: Mutex::new(HashMap::default()) }
    }

    /// Whether to record this refusal of `key` at `now`: `Some(suppressed)`, the number of
    /// the key's refusals left unrecorded since its previous recorded one, or `None` when
    /// it is only counted.
    pub fn admit(&self, key: KeyHash, now: Instant) -> Option<u32> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_TRACKED_KEYS && !keys.contains_key(&key) {
            let window = self.window;
            keys.retain(|_, tracked| now.saturating_duration_since(tracked.opened) < window || tracked.suppressed > 0);
            if keys.len() >= MAX_TRACKED_KEYS
                && let Some((&oldest, tracked)) = keys.iter().min_by_key(|(_, tracked)| tracked.opened)
            {
                tracing::warn!(
                    unrecorded = tracked.suppressed,
                    "too many keys refused admin requests at once; forgetting the window of the oldest"
                );
                keys.remove(&oldest);
            }
        }
        let tracked = keys.entry(key).or_insert(Window { opened: now, recorded: 0, suppressed: 0 });
        if now.saturating_duration_since(tracked.opened) >= self.window {
            tracked.opened = now;
            tracked.recorded = 0;
        }
        if tracked.recorded < MAX_RECORDED_PER_WINDOW {
            tracked.recorded += 1;
            Some(std::mem::take(&mut tracked.suppressed))
        } else {
            tracked.suppressed = tracked.suppressed.saturating_add(1);
            None
        }
    }
}

/// What a refused request was aimed at: the first of its path's `user_id`, `role_id` and
/// `group_id`, as sent (the domain cuts it to 64 characters).
pub fn target_of(request: &HttpRequest) -> Option<String> {
    TARGET_PARAMETERS.iter().find_map(|name| request.match_info().get(name)).map(str::to_owned)
}

/// The operationId of every route, from the OpenAPI document, so that a record names the
/// operation exactly as clients and the spec do.
#[derive(Debug, Default)]
pub struct OperationIds {
    by_route: HashMap<(String, String), String>,
}

impl OperationIds {
    /// Reads the operationIds from the document.
    pub fn from_openapi(document: &utoipa::openapi::OpenApi) -> Self {
        let mut by_route = HashMap::new();
        for (path, item) in &document.paths.paths {
            let methods = [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ];
            for (method, operation) in methods {
                if let Some(id) = operation.as_ref().and_then(|operation| operation.operation_id.clone()) {
                    by_route.insert((method.to_owned(), path.clone()), id);
                }
            }
        }
        Self { by_route }
    }

    /// The operationId of the route the request matched; the method and route pattern
    /// (`POST /v1/roles`) for a route the document does not describe.
    pub fn of(&self, request: &HttpRequest) -> String {
        let route = (request.method().as_str().to_owned(), request.match_pattern().unwrap_or_default());
        self.by_route.get(&route).cloned().unwrap_or_else(|| format!("{} {}", route.0, route.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeySecret;

    fn key() -> KeyHash {
        KeySecret::generate(&mut rand::rng()).hash()
    }

    #[test]
    fn three_refusals_per_window_are_recorded_and_the_next_one_after_it_carries_the_rest() {
        let limiter = DenialLimiter::new(Duration::from_secs(60));
        let (key, start) = (key(), Instant::now());
        let recorded: Vec<Option<u32>> = (0..20).map(|n| limiter.admit(key, start + Duration::from_secs(n))).collect();
        assert_eq!(recorded[..3], [Some(0), Some(0), Some(0)]);
        assert!(recorded[3..].iter().all(Option::is_none));
        assert_eq!(limiter.admit(key, start + Duration::from_secs(60)), Some(17));
        assert_eq!(limiter.admit(key, start + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn each_key_has_its_own_window() {
        let limiter = DenialLimiter::new(Duration::from_secs(60));
        let (noisy, quiet, now) = (key(), key(), Instant::now());
        for _ in 0..10 {
            limiter.admit(noisy, now);
        }
        assert_eq!(limiter.admit(quiet, now), Some(0));
    }

    #[test]
    fn a_flood_of_distinct_keys_keeps_the_limiter_bounded() {
        let limiter = DenialLimiter::new(Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..MAX_TRACKED_KEYS + 50 {
            assert_eq!(limiter.admit(key(), now), Some(0));
        }
        assert!(limiter.keys.lock().unwrap().len() <= MAX_TRACKED_KEYS);
    }
}
