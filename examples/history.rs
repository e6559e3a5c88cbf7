//! Times point-in-time questions (`getPermissionsAt` without HTTP) over a data directory,
//! from its retained snapshots and, for comparison, from a full replay.
//!
//! ```sh
//! cargo run --release --example history -- --data-dir DIR [--every 100000] [--questions 20]
//! ```
//!
//! A log filled by `populate` has no snapshots of its past: the first run replays it once
//! and saves a snapshot every `--every` records, retained as the server retains them
//! (`snapshot::prune`), in `DIR/snapshots`. Then it asks for the view at `--questions`
//! random positions, each answered from the nearest retained snapshot, and once from a full
//! replay, and prints the times in milliseconds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use keyledger::history::{self, At, Source};
use keyledger::ledger::VerifiedReplay;
use keyledger::log::{EventLog, FjallLog};
use keyledger::snapshot;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut data_dir, mut every, mut questions) = (None, 100_000u64, 20usize);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--data-dir", Some(dir)) => data_dir = Some(PathBuf::from(dir)),
            ("--every", Some(n)) => every = n.replace('_', "").parse().unwrap_or(every),
            ("--questions", Some(n)) => questions = n.parse().unwrap_or(questions),
            _ => data_dir = None,
        }
    }
    let Some(data_dir) = data_dir else {
        eprintln!("usage: history --data-dir DIR [--every N] [--questions N]");
        return ExitCode::FAILURE;
    };
    match run(&data_dir, every.max(1), questions) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(data_dir: &Path, every: u64, questions: usize) -> Result<(), String> {
    let log = FjallLog::open(&data_dir.join("log")).map_err(|e| e.to_string())?;
    let head = log.head().map_err(|e| e.to_string())?;
    let dir = data_dir.join("snapshots");
    let spaced = std::fs::read_dir(&dir).map_or(0, |entries| entries.count());
    if (spaced as u64) < (head / every).min(snapshot::SPACED) {
        save_spaced_snapshots(&log, &dir, every)?;
    }
    let files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let bytes: u64 = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!("{head} records, {} snapshots retained, {:.1} MiB in all", files.len(), bytes as f64 / 1048576.0);

    let source = Source::new(&log, Some(dir.as_path()));
    let mut times = Vec::with_capacity(questions);
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..questions {
        // xorshift: the positions only need to spread over the log.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let position = 1 + rng_state % head.max(1);
        let started = Instant::now();
        let replayed = history::state_at(source, At::Position(position)).map_err(|e| e.to_string())?;
        times.push((started.elapsed().as_secs_f64() * 1000.0, position, replayed.position));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].0;
    println!(
        "from retained snapshots, {questions} random positions: median {:.1} ms, p90 {:.1} ms, max {:.1} ms (at position {})",
        at(0.5),
        at(0.9),
        at(1.0),
        times.last().map_or(0, |t| t.1)
    );
    let started = Instant::now();
    history::state_at(&log, At::Position(head / 2)).map_err(|e| e.to_string())?;
    println!("full replay to position {}: {:.1} ms", head / 2, started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

/// Replays the whole log, saving a snapshot every `every` records and pruning as the
/// server does.
fn save_spaced_snapshots(log: &FjallLog, dir: &Path, every: u64) -> Result<(), String> {
    let started = Instant::now();
    let mut replay = VerifiedReplay::new();
    let mut last_at = keyledger::domain::Timestamp::from_unix_millis(0);
    loop {
        let chunk = log.read(replay.size() + 1, 4096).map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            break;
        }
        for stored in &chunk {
            let record = replay.push_trusting_authority(stored).map_err(|e| e.to_string())?;
            last_at = record.at;
            if record.seq % every == 0 {
                snapshot::write(dir, record.seq, replay.head_hash(), last_at, replay.state())
                    .and_then(|_| snapshot::prune(dir, every))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    snapshot::write(dir, replay.size(), replay.head_hash(), last_at, replay.state())
        .and_then(|_| snapshot::prune(dir, every))
        .map_err(|e| e.to_string())?;
    println!("saved spaced snapshots in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
