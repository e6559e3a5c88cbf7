//! Fuzzes the offline bundle verifier: whatever bytes a reviewer is handed, `verify`
//! answers valid or names a line, and never panics.
//!
//! The input is verified twice: alone (the bundle's own key is trusted), and with its
//! first checkpoint line, if one parses, as the trusted checkpoint, which reaches the
//! consistency checks.

#![no_main]

use keyledger::bundle::{VerifyOptions, verify};
use keyledger::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify(data, &VerifyOptions::default());
    let trusted = data
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .find_map(|line| Checkpoint::parse_line(line).ok());
    if let Some(trusted) = trusted {
        let options = VerifyOptions { public_key: None, trusted: Some(trusted) };
        if let Ok(summary) = verify(data, &options) {
            assert!(summary.records >= options.trusted.map_or(0, |t| t.size));
        }
    }
});
