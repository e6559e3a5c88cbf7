//! Signed checkpoints: the service's Ed25519 signature over the log's Merkle root at a
//! size, with the time and the fingerprint of the permission view at that size.
//!
//! A checkpoint is one line of JSON, the same in the data directory's
//! `checkpoints.jsonl`, in an export bundle and over the API:
//!
//! ```text
//! {"kind":"checkpoint","origin":"keyledger/3f…","size":42,"root":"…","time":"…","view":"…","signature":"…"}
//! ```
//!
//! The signature covers a plain-text message built from the fields (see
//! [`Checkpoint::message`]), so verifying never depends on how JSON was serialised. A
//! line must be exactly the canonical serialisation of what it says: one checkpoint has
//! one spelling, so no byte of a bundle can change unnoticed.
//!
//! The signing key is 32 random bytes, kept hex-encoded in the data directory's
//! `signing-key` file (mode 0600) or in a file given by path; only its public half
//! ever leaves the process.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;
use crate::merkle::TreeHash;

/// The name of the signing key file in a data directory.
pub const SIGNING_KEY_FILE: &str = "signing-key";
/// The name of the checkpoint file in a data directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// Why a checkpoint, a key or a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A line is not a canonical checkpoint or public key line.
    #[error("not a {what} line: {reason}")]
    Malformed {
        /// What the line should have been.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing key file is not 64 hexadecimal characters.
    #[error("the signing key in {} is not 64 hexadecimal characters", .0.display())]
    BadSigningKey(PathBuf),
    /// Reading or writing the database's checkpoints failed.
    #[error("the checkpoints in the database: {0}")]
    Database(String),
    /// Reading or writing a file failed.
    #[error("{}", crate::io_advice::describe(.path, .source))]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl CheckpointError {
    fn database(error: crate::log::PostgresLogError) -> Self {
        CheckpointError::Database(error.to_string())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_owned(), source }
}

/// A signed statement of the log's state at a size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log: `keyledger/` and the first 16 hex digits of blake3 of the public key.
    pub origin: String,
    /// How many records the tree covers.
    pub size: u64,
    /// The Merkle root of the first `size` records.
    pub root: TreeHash,
    /// When the checkpoint was made.
    pub time: Timestamp,
    /// The fingerprint of the permission view after the first `size` records.
    pub view: TreeHash,
    /// The Ed25519 signature of [`Checkpoint::message`].
    pub signature: Signature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    kind: String,
    origin: String,
    size: u64,
    root: String,
    time: String,
    view: String,
    signature: String,
}

impl Checkpoint {
    /// The text the signature covers: a fixed header, then one field per line.
    pub fn message(origin: &str, size: u64, root: &TreeHash, time: Timestamp, view: &TreeHash) -> String {
        format!("keyledger checkpoint v1\n{origin}\n{size}\n{root}\n{time}\n{view}\n")
    }

    /// Whether `key` signed this checkpoint.
    pub fn is_signed_by(&self, key: &PublicKey) -> bool {
        let message = Self::message(&self.origin, self.size, &self.root, self.time, &self.view);
        key.0.verify(message.as_bytes(), &self.signature).is_ok()
    }

    /// The signature as 128 lowercase hexadecimal characters.
    pub fn signature_hex(&self) -> String {
        hex(&self.signature.to_bytes())
    }

    /// The checkpoint as one line of JSON, without a newline.
    pub fn to_line(&self) -> String {
        let line = CheckpointLine {
            kind: "checkpoint".to_owned(),
            origin: self.origin.clone(),
            size: self.size,
            root: self.root.to_hex(),
            time: self.time.to_string(),
            view: self.view.to_hex(),
            signature: self.signature_hex(),
        };
        // Serialising plain strings and numbers into memory cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Parses a checkpoint line, which must be exactly what [`Checkpoint::to_line`] writes.
    /// The signature is not checked here.
    pub fn parse_line(line: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason: String| CheckpointError::Malformed { what: "checkpoint", reason };
        let parsed: CheckpointLine = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
        if parsed.kind != "checkpoint" {
            return Err(malformed(format!("its kind is {:?}", parsed.kind)));
        }
        let root = TreeHash::from_hex(&parsed.root).ok_or_else(|| malformed("root is not 64 lowercase hex".into()))?;
        let view = TreeHash::from_hex(&parsed.view).ok_or_else(|| malformed("view is not 64 lowercase hex".into()))?;
        let time = Timestamp::parse(&parsed.time).map_err(|_| malformed("time is not RFC 3339".into()))?;
        let signature = unhex::<64>(&parsed.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or_else(|| malformed("signature is not 128 lowercase hex".into()))?;
        let checkpoint = Checkpoint { origin: parsed.origin, size: parsed.size, root, time, view, signature };
        if checkpoint.to_line() != line {
            return Err(malformed("it is not in canonical form".into()));
        }
        Ok(checkpoint)
    }
}

/// The public half of the signing key: what a reviewer verifies checkpoints with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyLine {
    kind: String,
    algorithm: String,
    key: String,
}

impl PublicKey {
    /// The key as 64 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// Parses 64 lowercase hexadecimal characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        unhex::<32>(text.trim()).and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok()).map(PublicKey)
    }

    /// The origin of the log this key signs for: `keyledger/` and the first 16 hex digits
    /// of blake3 of the key.
    pub fn origin(&self) -> String {
        format!("keyledger/{}", &blake3::hash(self.0.as_bytes()).to_hex()[..16])
    }

    /// The key as one line of JSON, as an export bundle starts.
    pub fn to_line(&self) -> String {
        let line = PublicKeyLine { kind: "public_key".into(), algorithm: "ed25519".into(), key: self.to_hex() };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Parses a public key line, which must be exactly what [`PublicKey::to_line`] writes.
    pub fn parse_line(line: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason: String| CheckpointError::Malformed { what: "public key", reason };
        let parsed: PublicKeyLine = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
        if parsed.kind != "public_key" || parsed.algorithm != "ed25519" {
            return Err(malformed("it is not an ed25519 public key".into()));
        }
        let key = PublicKey::from_hex(&parsed.key).ok_or_else(|| malformed("key is not a valid ed25519 key".into()))?;
        if key.to_line() != line {
            return Err(malformed("it is not in canonical form".into()));
        }
        Ok(key)
    }
}

/// The service's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("public_key", &self.public_key().to_hex()).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// Loads the key from `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let seed = unhex::<32>(text.trim()).ok_or_else(|| CheckpointError::BadSigningKey(path.to_owned()))?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }

    /// Loads the key from `path`, first creating it (readable by its owner only) if there
    /// is no file there.
    pub fn load_or_create(path: &Path) -> Result<Self, CheckpointError> {
        if path.exists() {
            return Self::load(path);
        }
        let signer = Self::generate();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io(path))?;
        writeln!(file, "{}", hex(signer.key.as_bytes())).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        if let Some(parent) = path.parent() {
            File::open(parent).and_then(|dir| dir.sync_all()).map_err(io(parent))?;
        }
        tracing::info!(path = %path.display(), public_key = %signer.public_key().to_hex(), "created a signing key");
        Ok(signer)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs a checkpoint.
    pub fn sign(&self, size: u64, root: TreeHash, time: Timestamp, view: TreeHash) -> Checkpoint {
        let origin = self.public_key().origin();
        let signature = self.key.sign(Checkpoint::message(&origin, size, &root, time, &view).as_bytes());
        Checkpoint { origin, size, root, time, view, signature }
    }
}

/// The checkpoints a service has written, one line each, oldest first: in a file beside
/// the fjall log, or in the PostgreSQL database beside the records (the same lines).
#[derive(Debug)]
pub struct CheckpointStore {
    place: Place,
}

#[derive(Debug)]
enum Place {
    File(PathBuf),
    Postgres(Box<crate::log::PostgresCheckpoints>),
}

impl CheckpointStore {
    /// The store in `path` (created on the first write).
    pub fn new(path: PathBuf) -> Self {
        Self { place: Place::File(path) }
    }

    /// The store in a PostgreSQL database's `checkpoints` table.
    pub fn in_postgres(checkpoints: crate::log::PostgresCheckpoints) -> Self {
        Self { place: Place::Postgres(Box::new(checkpoints)) }
    }

    /// Appends a checkpoint and makes it durable: synced to disk (a torn last line, left
    /// by a crash while a checkpoint was being written, is cut off first), or committed.
    pub fn append(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let path = match &self.place {
            Place::File(path) => path,
            Place::Postgres(table) => {
                return table.append(checkpoint.size, &checkpoint.to_line()).map_err(CheckpointError::database);
            }
        };
        let mut file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(io(path))?;
        let contents_end = complete_length(&mut file).map_err(io(path))?;
        file.set_len(contents_end).map_err(io(path))?;
        file.seek(SeekFrom::Start(contents_end)).map_err(io(path))?;
        writeln!(file, "{}", checkpoint.to_line()).map_err(io(path))?;
        file.sync_data().map_err(io(path))
    }

    /// Every checkpoint, oldest first. A last line without its newline was torn by a crash
    /// while being written, and is skipped: the checkpoint was never acknowledged.
    pub fn all(&self) -> Result<Vec<Checkpoint>, CheckpointError> {
        let path = match &self.place {
            Place::File(path) => path,
            Place::Postgres(table) => {
                let lines = table.lines().map_err(CheckpointError::database)?;
                return lines.iter().map(|line| Checkpoint::parse_line(line)).collect();
            }
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io(path)(error)),
        };
        let mut checkpoints = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line).map_err(io(path))? > 0 {
            if let Some(complete) = line.strip_suffix('\n') {
                checkpoints.push(Checkpoint::parse_line(complete)?);
            }
            line.clear();
        }
        Ok(checkpoints)
    }
}

/// The length of a file's complete lines: up to and including its last newline.
fn complete_length(file: &mut File) -> std::io::Result<u64> {
    let length = file.metadata()?.len();
    let mut end = length;
    let mut buffer = [0u8; 512];
    while end > 0 {
        let start = end.saturating_sub(buffer.len() as u64);
        let chunk = &mut buffer[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(newline) = chunk.iter().rposition(|&byte| byte == b'\n') {
            return Ok(start + newline as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let lowercase = text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if text.len() != 2 * N || !lowercase {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    fn sample(signer: &Signer) -> Checkpoint {
        signer.sign(7, leaf_hash(b"root"), Timestamp::from_unix_millis(1_800_000_000_000), leaf_hash(b"view"))
    }

    #[test]
    fn a_checkpoint_line_round_trips_and_verifies_only_under_its_key() {
        let signer = Signer::generate();
        let checkpoint = sample(&signer);
        let line = checkpoint.to_line();
        assert!(line.starts_with(r#"{"kind":"checkpoint","origin":"keyledger/"#), "{line}");
        let parsed = Checkpoint::parse_line(&line).unwrap();
        assert_eq!(parsed, checkpoint);
        assert!(parsed.is_signed_by(&signer.public_key()));
        assert!(!parsed.is_signed_by(&Signer::generate().public_key()));
    }

    #[test]
    fn any_change_to_a_signed_field_breaks_the_signature() {
        let signer = Signer::generate();
        let key = signer.public_key();
        let checkpoint = sample(&signer);
        let mut changed = [checkpoint.clone(), checkpoint.clone(), checkpoint.clone(), checkpoint.clone()];
        changed[0].size += 1;
        changed[1].root = leaf_hash(b"other");
        changed[2].time = Timestamp::from_unix_millis(1);
        changed[3].view = leaf_hash(b"other");
        for forged in changed {
            assert!(!forged.is_signed_by(&key), "{forged:?}");
        }
    }

    #[test]
    fn only_the_canonical_spelling_of_a_line_parses() {
        let signer = Signer::generate();
        let line = sample(&signer).to_line();
        for variant in [
            line.replacen("{\"kind\"", "{ \"kind\"", 1),
            line.to_uppercase(),
            line.replacen(",\"size\":7", ",\"size\":7.0", 1),
            format!("{line} "),
        ] {
            assert!(Checkpoint::parse_line(&variant).is_err(), "{variant}");
        }
        let key_line = signer.public_key().to_line();
        assert_eq!(PublicKey::parse_line(&key_line).unwrap(), signer.public_key());
        assert!(PublicKey::parse_line(&key_line.replace("ed25519", "rsa")).is_err());
    }

    #[test]
    fn the_signing_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIGNING_KEY_FILE);
        let created = Signer::load_or_create(&path).unwrap();
        let loaded = Signer::load_or_create(&path).unwrap();
        assert_eq!(created.public_key(), loaded.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(Signer::load(&path), Err(CheckpointError::BadSigningKey(_))));
    }

    #[test]
    fn the_store_keeps_checkpoints_in_order_and_skips_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join(CHECKPOINTS_FILE));
        assert!(store.all().unwrap().is_empty());
        let signer = Signer::generate();
        let first = sample(&signer);
        let second = signer.sign(9, leaf_hash(b"r2"), Timestamp::from_unix_millis(1_800_000_001_000), leaf_hash(b"v"));
        store.append(&first).unwrap();
        store.append(&second).unwrap();
        let mut file = OpenOptions::new().append(true).open(dir.path().join(CHECKPOINTS_FILE)).unwrap();
        write!(file, "{{\"kind\":\"checkp").unwrap();
        assert_eq!(store.all().unwrap(), vec![first.clone(), second.clone()]);
        // The next append cuts the torn line off rather than writing after it.
        let third = signer.sign(12, leaf_hash(b"r3"), Timestamp::from_unix_millis(1_800_000_002_000), leaf_hash(b"v"));
        store.append(&third).unwrap();
        assert_eq!(store.all().unwrap(), vec![first, second, third]);
    }
}
