//! Restore: a data directory rebuilt from a verified audit bundle (`keyledger restore`).
//!
//! A bundle (see [`crate::bundle`]) is a consistent, signed copy of the log, taken while
//! the service runs (`exportAuditBundle`). Restoring verifies it first, exactly as
//! `keyledger verify` does, under a signer the operator pins; then writes every record
//! byte for byte into a new log, every checkpoint into `checkpoints.jsonl`, and the signing
//! key (whose private half a bundle never holds, so it is backed up apart) into
//! `signing-key`; and finally opens the result as `serve` would, which replays it and
//! checks it against the latest checkpoint. The restored service answers every check as
//! the original did at the bundle's last position.
//!
//! It refuses a directory that is not empty: a restore never mixes with existing data.

use std::path::{Path, PathBuf};

use crate::app::{self, CheckpointConfig, StartError};
use crate::bundle::{self, VerifyOptions};
use crate::checkpoint::{Checkpoint, CheckpointStore, SIGNING_KEY_FILE, Signer};
use crate::log::{EventLog, FjallLog};

/// How many records are written per append.
const CHUNK: usize = 4096;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The target directory holds something already.
    #[error("{} is not empty: restore only into a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    /// The bundle does not verify.
    #[error("the bundle does not verify, so nothing was restored: {0}")]
    Invalid(String),
    /// The signing key is not the one that signed the bundle's checkpoints.
    #[error("the signing key {} is not the bundle's signer ({signer}), so the restored service could not open its checkpoints", path.display())]
    WrongSigningKey {
        /// The key file given.
        path: PathBuf,
        /// The bundle's signer, as hex.
        signer: String,
    },
    /// Reading or writing files failed.
    #[error("{0}")]
    Io(String),
    /// The restored directory does not open as a service would open it.
    #[error("the restored directory does not open: {0}")]
    Open(#[from] StartError),
}

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    /// How many records.
    pub records: u64,
    /// How many checkpoints.
    pub checkpoints: usize,
    /// The last checkpoint, covering every record.
    pub last: Checkpoint,
}

/// Restores `bundle` into `data_dir` (new or empty), after verifying it under `options`
/// (which must pin the signer: the caller checks), with the service's signing key from
/// `signing_key`, copied into the directory.
pub fn restore(
    bundle: &[u8],
    options: &VerifyOptions,
    data_dir: &Path,
    signing_key: &Path,
) -> Result<Restored, RestoreError> {
    let io = |what: &Path| {
        let what = what.to_owned();
        move |error: std::io::Error| RestoreError::Io(format!("{}: {error}", what.display()))
    };
    if is_non_empty_dir(data_dir).map_err(io(data_dir))? {
        return Err(RestoreError::NotEmpty(data_dir.to_owned()));
    }
    let summary = bundle::verify(bundle, options).map_err(|failure| RestoreError::Invalid(failure.to_string()))?;
    let signer = Signer::load(signing_key).map_err(|error| RestoreError::Io(error.to_string()))?;
    if signer.public_key() != summary.public_key {
        return Err(RestoreError::WrongSigningKey {
            path: signing_key.to_owned(),
            signer: summary.public_key.to_hex(),
        });
    }

    let existed = data_dir.exists();
    let written = write(bundle, data_dir, signing_key);
    if written.is_err() {
        // Leave the directory as it was found: absent, or empty.
        if existed {
            for entry in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        } else {
            let _ = std::fs::remove_dir_all(data_dir);
        }
    }
    let checkpoints = written?;
    Ok(Restored { records: summary.records, checkpoints, last: summary.last })
}

/// Writes the verified bundle's records, checkpoints and the signing key into `data_dir`,
/// and opens it as `serve` would; returns how many checkpoints it wrote.
fn write(bundle: &[u8], data_dir: &Path, signing_key: &Path) -> Result<usize, RestoreError> {
    let io = |what: &Path| {
        let what = what.to_owned();
        move |error: std::io::Error| RestoreError::Io(format!("{}: {error}", what.display()))
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let log = FjallLog::open(&data_dir.join("log")).map_err(|error| RestoreError::Io(error.to_string()))?;
    let records = bundle::records(bundle);
    let mut head = 0;
    for chunk in records.chunks(CHUNK) {
        log.append(head, chunk).map_err(|error| RestoreError::Io(format!("writing the log: {error}")))?;
        head += chunk.len() as u64;
    }
    drop(log);

    let store = CheckpointStore::new(data_dir.join(crate::checkpoint::CHECKPOINTS_FILE));
    let mut checkpoints = 0;
    for line in bundle.split(|&byte| byte == b'\n').filter(|line| line.starts_with(br#"{"kind":"checkpoint""#)) {
        let text = std::str::from_utf8(line).map_err(|error| RestoreError::Invalid(error.to_string()))?;
        let checkpoint = Checkpoint::parse_line(text).map_err(|error| RestoreError::Invalid(error.to_string()))?;
        store.append(&checkpoint).map_err(|error| RestoreError::Io(error.to_string()))?;
        checkpoints += 1;
    }

    let key_copy = data_dir.join(SIGNING_KEY_FILE);
    copy_private(signing_key, &key_copy).map_err(io(&key_copy))?;

    // Opened as `serve` opens it: replayed, and checked against the latest checkpoint.
    let (ledger, bootstrapped) =
        app::open_ledger(data_dir, None, app::DEFAULT_SNAPSHOT_EVERY, &CheckpointConfig::default())?;
    debug_assert!(bootstrapped.is_none(), "a verified bundle holds at least the bootstrap");
    ledger.close();
    Ok(checkpoints)
}

fn is_non_empty_dir(path: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Copies a key file, readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = std::fs::read(from)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(to)?;
    file.write_all(&bytes)?;
    file.sync_all()
}
