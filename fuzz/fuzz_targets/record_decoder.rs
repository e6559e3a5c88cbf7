//! Fuzzes what reads the log back: the record decoder and both chain verifiers.
//!
//! The input is read three ways, none of which may panic:
//!
//! 1. Whole, as one record, with [`record::decode`].
//! 2. As a log: one record a line, numbered from 1, fed to a [`ChainVerifier`] that only
//!    checks the links and to one that also decodes, as a restart's replay does. Every
//!    record the decoding verifier accepts, the light one must accept too: the server
//!    verifies the audit trail with the light one and replays with the other, so they
//!    must never disagree about a record that replays.
//! 3. Each line resealed: its `hash` member replaced by the true hash of its body (or
//!    appended when it has none). A mutated record almost never carries the hash of its
//!    new contents, so without this the fuzzer would stop at the hash check and never
//!    reach the event upcaster behind it.
//! 4. As a log verified in one chunk on every core ([`ChainVerifier::verify_chunk`]), which
//!    must name the same first failure as the light verifier one record at a time.

#![no_main]

use keyledger::log::record::{self, ChainVerifier, StoredRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = record::decode(data);

    let mut light = ChainVerifier::default();
    let mut decoding = ChainVerifier::default();
    let mut log = Vec::new();
    let mut light_outcome = Ok(());
    for (line, seq) in data.split(|&b| b == b'\n').zip(1..) {
        let stored = StoredRecord { seq, bytes: line.to_vec() };
        let linked = light.verify_next(&stored);
        if decoding.verify_and_decode_next(&stored).is_ok() {
            assert_eq!(linked, Ok(()), "record {seq} replays but fails the light verifier");
        }
        if light_outcome.is_ok() {
            light_outcome = linked;
        }
        if let Some(resealed) = reseal(line) {
            let _ = record::decode(&resealed);
        }
        log.push(stored);
    }
    // The chunk verifier spreads the work over threads but names the same first failure.
    assert_eq!(ChainVerifier::default().verify_chunk(&log), light_outcome, "the chunk verifier disagrees");
});

/// The record member that holds the hash, up to its value, as records write it.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";

/// `line` with a `hash` member that matches its body, or `None` when it is not an object.
fn reseal(line: &[u8]) -> Option<Vec<u8>> {
    let body_without_brace = match line.len().checked_sub(HASH_MEMBER.len() + 64 + 2) {
        Some(end) if line[end..].starts_with(HASH_MEMBER) && line.ends_with(b"\"}") => &line[..end],
        _ => line.strip_suffix(b"}")?,
    };
    let mut body = body_without_brace.to_vec();
    body.push(b'}');
    let hash = blake3::hash(&body);
    body.pop();
    body.extend_from_slice(HASH_MEMBER);
    body.extend_from_slice(hash.to_hex().as_bytes());
    body.extend_from_slice(b"\"}");
    Some(body)
}
