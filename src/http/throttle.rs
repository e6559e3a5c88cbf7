//! Brute-force protection: refused key checks are limited per client.
//!
//! Every check refused as `malformed_key` or `unknown_key` (on `checkKey`,
//! `authorizeRequest` or an admin operation) spends one token of its client's bucket; a
//! bucket holds `burst` tokens and refills at `per_minute` tokens a minute. A client with
//! an empty bucket gets 429 with `Retry-After` for every check, valid key or not, until it
//! refills: otherwise a guesser would still learn which guess was right. Clients whose
//! checks pass spend nothing, and while no client has a bucket that is not full a check
//! costs one atomic load here: the client's address is not even worked out.
//!
//! # Who the client is
//!
//! The client address is the TCP peer's, unless the peer is one of the configured trusted
//! proxies: then it is the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy. Without trusted proxies `X-Forwarded-For` is ignored, so a client cannot
//! pick its own address. A hop may carry a port (`192.0.2.1:5678`, `[2001:db8::1]:443`),
//! which is dropped. A hop that is not an address at all (`unknown`, an obfuscated name, a
//! header that is not text) ends the walk: the client is then the nearest trusted proxy,
//! never an address further left, which the client itself may have written.
//!
//! Addresses are canonical before they are compared or counted: an IPv4-mapped IPv6
//! address (`::ffff:192.0.2.1`, as a dual-stack listener sees IPv4 peers) is the IPv4
//! address, both for matching `--trusted-proxy` and for counting. An IPv6 client is
//! counted by its /64, the smallest block a subscriber is normally given: counting single
//! IPv6 addresses would let one host guess with 2^64 fresh buckets.
//!
//! # Bounded memory
//!
//! At most [`MAX_TRACKED_CLIENTS`] buckets are kept (under 150 bytes each with the map's
//! spare room, under 15 MB when full), in order of last use. Only buckets that are not full are kept at all: a full
//! bucket is the same as none, so a bucket that has refilled is dropped when it is next
//! looked at, and each call also drops up to [`IDLE_FORGOTTEN_PER_CALL`] refilled buckets
//! from the least recently used end. When the table is full, a new client evicts the least
//! recently used bucket, in O(1): no call scans the table.
//!
//! A flood of new addresses can therefore evict a bucket that has not refilled yet, and
//! that client starts again with a full burst. This is safe: every request of a throttled
//! client (429s included) makes its bucket the most recently used, so it is evicted only
//! after `MAX_TRACKED_CLIENTS` other clients (IPv4 addresses or IPv6 /64s) have each
//! failed a check since its last request. Whoever controls that many addresses already
//! has `burst` guesses on each of them; resetting one bucket costs more guesses than it
//! gives back.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
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
    /// Proxies whose `X-Forwarded-For` is trusted to name the client. An IPv4-mapped IPv6
    /// address here is the IPv4 address.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { burst: 30, per_minute: 60, trusted_proxies: Vec::new() }
    }
}

/// The most clients whose buckets are kept at once; past that, a new client evicts the
/// least recently used bucket.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// The most refilled buckets one call drops from the least recently used end, so that the
/// table empties once every client has stopped failing, at a bounded cost per call.
pub const IDLE_FORGOTTEN_PER_CALL: usize = 4;

/// The bits of an IPv6 address that name its /64 network.
const IPV6_NETWORK_MASK: u128 = !0 << 64;

/// A client as the limiter counts it: an IPv4 address, or the /64 network of an IPv6
/// address. It can only be built canonical, so two addresses of one client are one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    /// The client at `address`: an IPv4-mapped IPv6 address is its IPv4 address, and any
    /// other IPv6 address stands for its /64.
    pub fn at(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(address) => Client(IpAddr::V4(address)),
            IpAddr::V6(address) => Client(IpAddr::V6(Ipv6Addr::from_bits(address.to_bits() & IPV6_NETWORK_MASK))),
        }
    }

    /// The IPv4 address, or the first address of the IPv6 /64, that names the client.
    pub fn address(self) -> IpAddr {
        self.0
    }
}

/// Reads one `X-Forwarded-For` hop: an address, with or without a port (`192.0.2.1:5678`,
/// `[2001:db8::1]:443`, `[2001:db8::1]`); `None` when it is none of these.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The canonical address of the client behind `peer`: the peer itself unless it is a
/// trusted proxy, else the right-most hop of `forwarded` (the `X-Forwarded-For` values in
/// the order received) that is not a trusted proxy. A hop that is not an address stops the
/// walk at the nearest trusted proxy. `trusted` holds canonical addresses.
fn client_address<'a>(peer: IpAddr, forwarded: impl DoubleEndedIterator<Item = &'a str>, trusted: &[IpAddr]) -> IpAddr {
    let mut nearest = peer.to_canonical();
    if !trusted.contains(&nearest) {
        return nearest;
    }
    for hop in forwarded.rev().flat_map(|value| value.rsplit(',')) {
        let Some(address) = parse_hop(hop).map(|address| address.to_canonical()) else {
            return nearest;
        };
        if !trusted.contains(&address) {
            return address;
        }
        nearest = address;
    }
    nearest
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Marks the end of the recency list.
const NO_SLOT: usize = usize::MAX;

#[derive(Debug)]
struct Slot {
    client: Client,
    bucket: Bucket,
    newer: usize,
    older: usize,
}

/// At most `capacity` buckets in order of last use: a map from client to slot, and the
/// slots linked newest to oldest through their indices. Finding, touching, inserting,
/// removing and evicting are each O(1); freed slots are reused, so memory never grows past
/// `capacity` slots.
#[derive(Debug)]
struct RecentBuckets {
    index: HashMap<Client, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    capacity: usize,
}

impl RecentBuckets {
    fn new(capacity: usize) -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            newest: NO_SLOT,
            oldest: NO_SLOT,
            capacity: capacity.max(1),
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn find(&self, client: Client) -> Option<usize> {
        self.index.get(&client).copied()
    }

    fn bucket(&self, slot: usize) -> Bucket {
        self.slots[slot].bucket
    }

    fn oldest(&self) -> Option<usize> {
        (self.oldest != NO_SLOT).then_some(self.oldest)
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { newer, older, .. } = self.slots[slot];
        if newer == NO_SLOT {
            self.newest = older;
        } else {
            self.slots[newer].older = older;
        }
        if older == NO_SLOT {
            self.oldest = newer;
        } else {
            self.slots[older].newer = newer;
        }
    }

    fn link_newest(&mut self, slot: usize) {
        self.slots[slot].newer = NO_SLOT;
        self.slots[slot].older = self.newest;
        if self.newest == NO_SLOT {
            self.oldest = slot;
        } else {
            self.slots[self.newest].newer = slot;
        }
        self.newest = slot;
    }

    /// Stores the bucket and makes it the most recently used.
    fn update(&mut self, slot: usize, bucket: Bucket) {
        self.slots[slot].bucket = bucket;
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn remove(&mut self, slot: usize) {
        self.unlink(slot);
        self.index.remove(&self.slots[slot].client);
        self.free.push(slot);
    }

    /// Adds a client as the most recently used, evicting the least recently used one when
    /// the table is full.
    fn insert(&mut self, client: Client, bucket: Bucket) -> usize {
        if self.len() >= self.capacity
            && let Some(oldest) = self.oldest()
        {
            self.remove(oldest);
        }
        let fresh = Slot { client, bucket, newer: NO_SLOT, older: NO_SLOT };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = fresh;
                slot
            }
            None => {
                self.slots.push(fresh);
                self.slots.len() - 1
            }
        };
        self.link_newest(slot);
        self.index.insert(client, slot);
        slot
    }
}

/// Per-client buckets of refused checks.
#[derive(Debug)]
pub struct FailureLimiter {
    config: ThrottleConfig,
    buckets: Mutex<RecentBuckets>,
    tracked: AtomicUsize,
}

impl FailureLimiter {
    /// A limiter with this configuration, keeping at most [`MAX_TRACKED_CLIENTS`] buckets.
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with_capacity(config, MAX_TRACKED_CLIENTS)
    }

    fn with_capacity(mut config: ThrottleConfig, capacity: usize) -> Self {
        for proxy in &mut config.trusted_proxies {
            *proxy = proxy.to_canonical();
        }
        Self { config, buckets: Mutex::new(RecentBuckets::new(capacity)), tracked: AtomicUsize::new(0) }
    }

    /// Whether every check passes without a look at the buckets: the limit is off, or no
    /// client has a bucket that is not full. One atomic load.
    fn nobody_tracked(&self) -> bool {
        self.config.burst == 0 || self.tracked.load(Ordering::Relaxed) == 0
    }

    fn refill_rate(&self) -> f64 {
        f64::from(self.config.per_minute.max(1)) / 60.0
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * self.refill_rate()).min(f64::from(self.config.burst));
        Bucket { tokens, updated: now }
    }

    fn is_full(&self, bucket: Bucket) -> bool {
        bucket.tokens >= f64::from(self.config.burst)
    }

    /// Drops refilled buckets from the least recently used end, at most
    /// [`IDLE_FORGOTTEN_PER_CALL`] of them.
    fn forget_idle(&self, buckets: &mut RecentBuckets, now: Instant) {
        for _ in 0..IDLE_FORGOTTEN_PER_CALL {
            match buckets.oldest() {
                Some(oldest) if self.is_full(self.refilled(buckets.bucket(oldest), now)) => buckets.remove(oldest),
                _ => break,
            }
        }
    }

    /// Whether the request's client may make a check now; `Err` carries how long to wait.
    /// While nobody is tracked this is one atomic load: the client is not worked out.
    pub fn admit_request(&self, request: &HttpRequest) -> Result<(), Duration> {
        if self.nobody_tracked() {
            return Ok(());
        }
        self.admit(self.client_of(request))
    }

    /// Spends a token of the request's client's bucket if the check was refused for its
    /// key; the client is worked out only then.
    pub fn record_request(&self, request: &HttpRequest, reason: Reason) {
        if self.counts(reason) {
            self.record(self.client_of(request), reason);
        }
    }

    /// Whether the client may make a check now; `Err` carries how long to wait.
    pub fn admit(&self, client: Client) -> Result<(), Duration> {
        if self.nobody_tracked() {
            return Ok(());
        }
        self.admit_at(client, Instant::now())
    }

    fn admit_at(&self, client: Client, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_idle(&mut buckets, now);
        let verdict = match buckets.find(client) {
            None => Ok(()),
            Some(slot) => {
                let bucket = self.refilled(buckets.bucket(slot), now);
                if self.is_full(bucket) {
                    buckets.remove(slot);
                } else {
                    buckets.update(slot, bucket);
                }
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.refill_rate()))
                }
            }
        };
        self.tracked.store(buckets.len(), Ordering::Relaxed);
        verdict
    }

    fn counts(&self, reason: Reason) -> bool {
        self.config.burst != 0 && matches!(reason, Reason::MalformedKey | Reason::UnknownKey)
    }

    /// Spends a token of the client's bucket if the check was refused for its key.
    pub fn record(&self, client: Client, reason: Reason) {
        if self.counts(reason) {
            self.record_at(client, Instant::now());
        }
    }

    fn record_at(&self, client: Client, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_idle(&mut buckets, now);
        let slot = match buckets.find(client) {
            Some(slot) => slot,
            None => buckets.insert(client, Bucket { tokens: f64::from(self.config.burst), updated: now }),
        };
        let refilled = self.refilled(buckets.bucket(slot), now);
        buckets.update(slot, Bucket { tokens: (refilled.tokens - 1.0).max(0.0), ..refilled });
        self.tracked.store(buckets.len(), Ordering::Relaxed);
    }

    /// How many clients are refused now (their bucket holds less than one token), and how
    /// many have a bucket that is not full, for the metrics. While nobody is tracked this
    /// is one atomic load; otherwise it walks the buckets under their lock (at most
    /// [`MAX_TRACKED_CLIENTS`], once per scrape).
    pub fn throttled_and_tracked(&self) -> (usize, usize) {
        if self.nobody_tracked() {
            return (0, 0);
        }
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let throttled =
            buckets.index.values().filter(|&&slot| self.refilled(buckets.bucket(slot), now).tokens < 1.0).count();
        (throttled, buckets.len())
    }

    /// The request's client, honouring `X-Forwarded-For` only from trusted proxies.
    pub fn client_of(&self, request: &HttpRequest) -> Client {
        let peer = request.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |address| address.ip());
        // A value that is not text is read as a hop that is not an address: it stops the walk.
        let forwarded = request.headers().get_all("x-forwarded-for").map(|value| value.to_str().unwrap_or_default());
        Client::at(client_address(peer, forwarded, &self.config.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn limiter(burst: u32, per_minute: u32) -> FailureLimiter {
        FailureLimiter::new(ThrottleConfig { burst, per_minute, trusted_proxies: vec![] })
    }

    fn small_limiter(burst: u32, capacity: usize) -> FailureLimiter {
        FailureLimiter::with_capacity(ThrottleConfig { burst, per_minute: 1, trusted_proxies: vec![] }, capacity)
    }

    fn behind_proxies(proxies: &[&str]) -> FailureLimiter {
        let trusted_proxies = proxies.iter().map(|proxy| proxy.parse().unwrap()).collect();
        FailureLimiter::new(ThrottleConfig { burst: 1, per_minute: 1, trusted_proxies })
    }

    fn client(address: &str) -> Client {
        Client::at(address.parse().unwrap())
    }

    fn client_seen(limiter: &FailureLimiter, peer: &str, forwarded: &[&str]) -> Client {
        let mut request = TestRequest::default().peer_addr(peer.parse().unwrap());
        for value in forwarded {
            request = request.append_header(("x-forwarded-for", *value));
        }
        limiter.client_of(&request.to_http_request())
    }

    fn tracked(limiter: &FailureLimiter) -> usize {
        limiter.buckets.lock().unwrap().len()
    }

    #[test]
    fn a_client_is_limited_after_its_burst_of_refused_checks_and_others_are_not() {
        let limiter = limiter(3, 60);
        let (guesser, other) = (client("10.0.0.1"), client("10.0.0.2"));
        for _ in 0..3 {
            assert!(limiter.admit(guesser).is_ok());
            limiter.record(guesser, Reason::UnknownKey);
        }
        let wait = limiter.admit(guesser).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.admit(other).is_ok());
    }

    #[test]
    fn the_metrics_count_refused_clients_apart_from_those_merely_tracked() {
        let limiter = limiter(2, 60);
        assert_eq!(limiter.throttled_and_tracked(), (0, 0));
        let (guesser, typo) = (client("10.0.0.1"), client("10.0.0.2"));
        limiter.record(guesser, Reason::UnknownKey);
        limiter.record(guesser, Reason::MalformedKey);
        limiter.record(typo, Reason::UnknownKey);
        assert!(limiter.admit(guesser).is_err());
        assert!(limiter.admit(typo).is_ok());
        assert_eq!(limiter.throttled_and_tracked(), (1, 2));
    }

    #[test]
    fn passing_and_authorisation_refusals_spend_nothing() {
        let limiter = limiter(1, 60);
        let client = client("10.0.0.1");
        for reason in [Reason::Granted, Reason::FunctionNotGranted, Reason::EventNotAccessible, Reason::RevokedKey] {
            limiter.record(client, reason);
        }
        assert!(limiter.admit(client).is_ok());
        assert_eq!(tracked(&limiter), 0);
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off() {
        let limiter = limiter(0, 60);
        let client = client("10.0.0.1");
        for _ in 0..100 {
            limiter.record(client, Reason::MalformedKey);
        }
        assert!(limiter.admit(client).is_ok());
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_its_ipv4_address() {
        assert_eq!(client("::ffff:192.0.2.7"), client("192.0.2.7"));
        assert_eq!(client("::ffff:192.0.2.7").address(), "192.0.2.7".parse::<IpAddr>().unwrap());
        let limiter = limiter(1, 1);
        limiter.record(client("::ffff:192.0.2.7"), Reason::UnknownKey);
        assert!(limiter.admit(client("192.0.2.7")).is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(client("2001:db8:1:2:aaaa::1"), client("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(client("2001:db8:1:2:aaaa::1").address(), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        let limiter = limiter(1, 1);
        limiter.record(client("2001:db8:1:2::1"), Reason::MalformedKey);
        // A guesser cannot escape the limit by moving to another address of its /64.
        assert!(limiter.admit(client("2001:db8:1:2:dead:beef:0:1")).is_err());
        assert!(limiter.admit(client("2001:db8:1:3::1")).is_ok());
        assert!(limiter.admit(client("192.0.2.1")).is_ok());
    }

    #[test]
    fn a_forwarded_hop_may_carry_a_port() {
        for (hop, address) in [
            ("192.0.2.1", "192.0.2.1"),
            (" 192.0.2.1:5678 ", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1"),
        ] {
            assert_eq!(parse_hop(hop), Some(address.parse().unwrap()), "{hop}");
        }
        for hop in ["", "unknown", "_hidden", "192.0.2.1:", "2001:db8::1:443:", "[2001:db8::1", "192.0.2.1:99999"] {
            assert_eq!(parse_hop(hop), None, "{hop}");
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop_without_its_port() {
        let limiter = behind_proxies(&["127.0.0.1", "10.0.0.9"]);
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &["203.0.113.7:5678"]), client("203.0.113.7"));
        assert_eq!(
            client_seen(&limiter, "127.0.0.1:4000", &["192.0.2.1, [2001:db8::1]:443, 10.0.0.9:80"]),
            client("2001:db8::1")
        );
        // Several header lines are one list, in the order received.
        assert_eq!(
            client_seen(&limiter, "127.0.0.1:4000", &["192.0.2.1", "203.0.113.7, 10.0.0.9"]),
            client("203.0.113.7")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(client_seen(&limiter, "198.51.100.4:4000", &["203.0.113.7"]), client("198.51.100.4"));
        // With no header, or every hop trusted, the client is the nearest trusted proxy.
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &[]), client("127.0.0.1"));
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &["10.0.0.9"]), client("10.0.0.9"));
    }

    #[test]
    fn a_hop_that_is_not_an_address_stops_at_the_nearest_trusted_proxy() {
        let limiter = behind_proxies(&["127.0.0.1", "10.0.0.9"]);
        // Whatever the client wrote left of the garbage is never taken as its address.
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &["203.0.113.7, unknown, 10.0.0.9"]), client("10.0.0.9"));
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &["203.0.113.7,"]), client("127.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_matches_the_canonical_peer_address() {
        // A dual-stack listener sees a local IPv4 proxy as ::ffff:127.0.0.1.
        let limiter = behind_proxies(&["127.0.0.1"]);
        assert_eq!(client_seen(&limiter, "[::ffff:127.0.0.1]:4000", &["203.0.113.7"]), client("203.0.113.7"));
        // And a proxy configured in its mapped form matches the IPv4 peer and hop.
        let limiter = behind_proxies(&["::ffff:10.0.0.9", "::ffff:127.0.0.1"]);
        assert_eq!(client_seen(&limiter, "127.0.0.1:4000", &["203.0.113.7, 10.0.0.9"]), client("203.0.113.7"));
        // A trusted IPv6 proxy is trusted by its own address, not by its /64.
        let limiter = behind_proxies(&["2001:db8::1"]);
        assert_eq!(client_seen(&limiter, "[2001:db8::2]:4000", &["203.0.113.7"]), client("2001:db8::2"));
    }

    #[test]
    fn a_flood_of_new_clients_never_keeps_more_than_the_capacity() {
        let limiter = small_limiter(5, 8);
        for host in 0..1000u32 {
            limiter.record(Client::at(IpAddr::from(host.to_be_bytes())), Reason::UnknownKey);
            assert!(tracked(&limiter) <= 8);
        }
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.len(), 8);
        assert!(buckets.slots.len() <= 8, "{} slots", buckets.slots.len());
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used_client() {
        let limiter = small_limiter(1, 3);
        let [first, second, third, fourth] = [1u8, 2, 3, 4].map(|host| Client::at(IpAddr::from([10, 0, 0, host])));
        for guesser in [first, second, third] {
            limiter.record(guesser, Reason::UnknownKey);
        }
        // The first client used again is no longer the least recently used: the second is.
        assert!(limiter.admit(first).is_err());
        limiter.record(fourth, Reason::UnknownKey);
        assert_eq!(tracked(&limiter), 3);
        assert!(limiter.admit(second).is_ok(), "the least recently used client was evicted");
        for kept in [first, third, fourth] {
            assert!(limiter.admit(kept).is_err());
        }
    }

    #[test]
    fn a_throttled_client_that_keeps_trying_is_never_evicted_by_a_flood() {
        let limiter = small_limiter(1, 3);
        let guesser = client("198.51.100.1");
        limiter.record(guesser, Reason::UnknownKey);
        for host in 0..1000u32 {
            assert!(limiter.admit(guesser).is_err(), "evicted after {host} new clients");
            limiter.record(Client::at(IpAddr::from(host.to_be_bytes())), Reason::UnknownKey);
        }
    }

    #[test]
    fn refilled_buckets_are_forgotten_so_checks_return_to_one_atomic_load() {
        let limiter = small_limiter(2, 100);
        let start = Instant::now();
        for host in 0..10u8 {
            limiter.record_at(Client::at(IpAddr::from([10, 0, 0, host])), start);
        }
        assert_eq!(limiter.tracked.load(Ordering::Relaxed), 10);
        // Two minutes later every bucket has refilled; each call forgets a few from the old end.
        let later = start + Duration::from_secs(120);
        let stranger = client("192.0.2.1");
        for _ in 0..10 {
            assert!(limiter.admit_at(stranger, later).is_ok());
        }
        assert_eq!(limiter.tracked.load(Ordering::Relaxed), 0);
        assert!(limiter.nobody_tracked());
        assert!(limiter.buckets.lock().unwrap().oldest().is_none());
    }

    #[test]
    fn a_client_whose_bucket_refilled_is_forgotten_when_it_is_next_seen() {
        let limiter = small_limiter(1, 100);
        let start = Instant::now();
        let guesser = client("10.0.0.1");
        limiter.record_at(guesser, start);
        assert!(limiter.admit_at(guesser, start).is_err());
        assert!(limiter.admit_at(guesser, start + Duration::from_secs(61)).is_ok());
        assert_eq!(tracked(&limiter), 0);
    }
}
