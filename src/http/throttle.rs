//! Brute-force protection: refused key checks are limited per client address.
//!
//! Every check refused as `malformed_key` or `unknown_key` (on `checkKey`,
//! `authorizeRequest` or an admin operation) spends one token of its client's bucket; a
//! bucket holds `burst` tokens and refills at `per_minute` tokens a minute. A client with
//! an empty bucket gets 429 with `Retry-After` for every check, valid key or not, until it
//! refills: otherwise a guesser would still learn which guess was right. Clients whose
//! checks pass spend nothing, and while no client has failed recently a check costs one
//! atomic load here.
//!
//! The client address is the TCP peer's, unless the peer is one of the configured trusted
//! proxies: then it is the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy. Without trusted proxies `X-Forwarded-For` is ignored, so a client cannot
//! pick its own address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::domain::Reason;

/// How refused checks are limited.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Refused checks a client may make in a burst before it is limited; 0 turns the
    /// limit off.
    pub burst: u32,
    /// Refused checks a client may make per minute, sustained.
    pub per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is trusted to name the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { burst: 30, per_minute: 60, trusted_proxies: Vec::new() }
    }
}

/// The most clients tracked at once; past that, clients whose buckets have refilled are
/// forgotten first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-client buckets of refused checks.
#[derive(Debug)]
pub struct FailureLimiter {
    config: ThrottleConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    tracked: AtomicUsize,
}

impl FailureLimiter {
    /// A limiter with this configuration.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, buckets: Mutex::new(HashMap::new()), tracked: AtomicUsize::new(0) }
    }

    fn refill_rate(&self) -> f64 {
        f64::from(self.config.per_minute.max(1)) / 60.0
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * self.refill_rate()).min(f64::from(self.config.burst));
        Bucket { tokens, updated: now }
    }

    /// Whether the client may make a check now; `Err` carries how long to wait.
    pub fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        if self.config.burst == 0 || self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(bucket) = buckets.get_mut(&client) else {
            return Ok(());
        };
        *bucket = self.refilled(*bucket, Instant::now());
        if bucket.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.refill_rate()))
        }
    }

    /// Spends a token of the client's bucket if the check was refused for its key.
    pub fn record(&self, client: IpAddr, reason: Reason) {
        if self.config.burst == 0 || !matches!(reason, Reason::MalformedKey | Reason::UnknownKey) {
            return;
        }
        let now = Instant::now();
        let full = Bucket { tokens: f64::from(self.config.burst), updated: now };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&client) {
            let burst = f64::from(self.config.burst);
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < burst);
        }
        let bucket = buckets.entry(client).or_insert(full);
        let refilled = self.refilled(*bucket, now);
        *bucket = Bucket { tokens: (refilled.tokens - 1.0).max(0.0), ..refilled };
        self.tracked.store(buckets.len(), Ordering::Relaxed);
    }

    /// The client's address, honouring `X-Forwarded-For` only from trusted proxies.
    pub fn client_of(&self, request: &HttpRequest) -> IpAddr {
        let peer = request.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |address| address.ip());
        if !self.config.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded.into_iter().rev().find(|hop| !self.config.trusted_proxies.contains(hop)).unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32) -> FailureLimiter {
        FailureLimiter::new(ThrottleConfig { burst, per_minute, trusted_proxies: vec![] })
    }

    #[test]
    fn a_client_is_limited_after_its_burst_of_refused_checks_and_others_are_not() {
        let limiter = limiter(3, 60);
        let (guesser, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.admit(guesser).is_ok());
            limiter.record(guesser, Reason::UnknownKey);
        }
        let wait = limiter.admit(guesser).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.admit(other).is_ok());
    }

    #[test]
    fn passing_and_authorisation_refusals_spend_nothing() {
        let limiter = limiter(1, 60);
        let client = IpAddr::from([10, 0, 0, 1]);
        for reason in [Reason::Granted, Reason::FunctionNotGranted, Reason::EventNotAccessible, Reason::RevokedKey] {
            limiter.record(client, reason);
        }
        assert!(limiter.admit(client).is_ok());
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off() {
        let limiter = limiter(0, 60);
        let client = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..100 {
            limiter.record(client, Reason::MalformedKey);
        }
        assert!(limiter.admit(client).is_ok());
    }
}
