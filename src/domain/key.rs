//! API key secrets: their format, their checksum and their hash.
//!
//! A key reads `kl_` + 30 random base62 characters (about 178 bits from a
//! cryptographically secure generator) + 6 base62 characters of CRC32 over everything
//! before them, as GitHub's token format does. The checksum lets a mistyped or junk key
//! be refused before any lookup. keyledger keeps only the blake3 hash of a key.
//!
//! **Legacy keys** (issue #14, point 8): the platform's keys before keyledger are 32
//! hexadecimal characters, which apps send as the Basic password with an empty user name.
//! `importKey` takes one, or only its SHA-256, and keyledger keeps
//! [`KeyHash::of_legacy_sha256`] of that SHA-256: blake3 keyed by a context string of its
//! own, so it can never equal the hash of a `kl_` key. A presented secret that is not a
//! `kl_` key and is 32 hexadecimal characters is hashed that way (SHA-256 of the 32
//! characters exactly as sent, then the keyed blake3) and looked up like any key; the
//! `kl_` path is unchanged. Hexadecimal case is part of the key, as the platform hashed it.

use std::fmt;

use rand::{CryptoRng, RngExt};
use serde::{Deserialize, Serialize};
use sha2::Digest;

const PREFIX: &str = "kl_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// The length of every key keyledger issues.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// The length of a legacy (imported) key: 32 hexadecimal characters.
pub const LEGACY_KEY_LEN: usize = 32;
/// The blake3 key-derivation context of legacy keys' hashes.
const LEGACY_CONTEXT: &str = "keyledger 2026-11 legacy key sha256";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key's secret. It exists only between generation and the response that shows it
/// once: it is never stored, logged or exported, and its `Debug` form hides it.
pub struct KeySecret(String);

impl KeySecret {
    /// Generates a fresh key from a cryptographically secure generator.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = String::with_capacity(KEY_LEN);
        key.push_str(PREFIX);
        for _ in 0..RANDOM_LEN {
            key.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
        }
        let checksum = encode_checksum(crc32fast::hash(key.as_bytes()));
        key.extend(checksum.iter().map(|&b| char::from(b)));
        Self(key)
    }

    /// The secret itself, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash keyledger stores in place of the secret.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of_well_formed(&self.0)
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

/// The reason a presented string cannot be a keyledger key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed keyledger key")]
pub struct MalformedKey;

/// The blake3 hash of a key: what the log and the permission view hold.
///
/// In JSON (records, the API) it is 64 hexadecimal characters; in binary formats (the
/// snapshot) its 32 bytes, which a snapshot of a million keys decodes without parsing
/// hex or allocating a string per key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyHash([u8; 32]);

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
            Self::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(KeyHash)
        }
    }
}

impl KeyHash {
    /// Checks a presented key's shape and checksum, then hashes it.
    ///
    /// This is the first step of every key check, so it does no allocation.
    ///
    /// ASCII whitespace around the key is not part of it: the format has none, so a key
    /// pasted with a trailing newline (or base64-encoded by `echo` for Basic) is the key.
    pub fn of_presented(key: &str) -> Result<KeyHash, MalformedKey> {
        let key = key.trim_ascii();
        let bytes = key.as_bytes();
        if bytes.len() != KEY_LEN || !key.starts_with(PREFIX) {
            return KeyHash::of_legacy_key(key).ok_or(MalformedKey);
        }
        let (body, checksum) = bytes.split_at(KEY_LEN - CHECKSUM_LEN);
        if !body[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric) {
            return Err(MalformedKey);
        }
        let expected = encode_checksum(crc32fast::hash(body));
        if checksum != expected {
            return Err(MalformedKey);
        }
        Ok(KeyHash::of_well_formed(key))
    }

    /// The hash of a legacy key as presented (32 hexadecimal characters), or `None` if it
    /// is not one: the SHA-256 of its characters, then [`KeyHash::of_legacy_sha256`].
    pub fn of_legacy_key(key: &str) -> Option<KeyHash> {
        let key = key.trim_ascii();
        if key.len() != LEGACY_KEY_LEN || !key.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        Some(KeyHash::of_legacy_sha256(&sha2::Sha256::digest(key.as_bytes()).into()))
    }

    /// The hash keyledger keeps for a legacy key known by its SHA-256: blake3 in key
    /// derivation mode with a context of its own, which no `kl_` key's hash can equal.
    pub fn of_legacy_sha256(sha256: &[u8; 32]) -> KeyHash {
        KeyHash(blake3::derive_key(LEGACY_CONTEXT, sha256))
    }

    fn of_well_formed(key: &str) -> KeyHash {
        KeyHash(*blake3::hash(key.as_bytes()).as_bytes())
    }

    /// The hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// A hash for examples and tests, the same on every run: blake3 of the byte `n`, the
    /// hash of no key anyone can present.
    pub fn example(n: u8) -> KeyHash {
        KeyHash(*blake3::hash(&[n]).as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Encodes a CRC32 as six base62 digits, most significant first.
fn encode_checksum(mut checksum: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(checksum % 62) as usize];
        checksum /= 62;
    }
    digits
}

impl std::hash::Hash for KeyHash {
    /// A blake3 output is uniform, so its first eight bytes are as good a hash as any.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

/// The reason a string is not a key hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key hash is 64 hexadecimal characters")]
pub struct InvalidKeyHash;

impl KeyHash {
    fn from_hex(text: &str) -> Result<Self, InvalidKeyHash> {
        blake3::Hash::from_hex(text.as_bytes()).map(|hash| KeyHash(*hash.as_bytes())).map_err(|_| InvalidKeyHash)
    }
}

impl TryFrom<String> for KeyHash {
    type Error = InvalidKeyHash;
    fn try_from(value: String) -> Result<Self, InvalidKeyHash> {
        Self::from_hex(&value)
    }
}

impl From<KeyHash> for String {
    fn from(hash: KeyHash) -> String {
        hash.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_prefix_the_length_and_a_valid_checksum() {
        let mut rng = rand::rng();
        let secret = KeySecret::generate(&mut rng);
        assert!(secret.expose().starts_with("kl_"));
        assert_eq!(secret.expose().len(), KEY_LEN);
        assert_eq!(KeyHash::of_presented(secret.expose()), Ok(secret.hash()));
    }

    #[test]
    fn two_keys_differ() {
        let mut rng = rand::rng();
        assert_ne!(KeySecret::generate(&mut rng).expose(), KeySecret::generate(&mut rng).expose());
    }

    #[test]
    fn a_single_mistyped_character_is_refused_by_the_checksum() {
        let mut rng = rand::rng();
        let secret = KeySecret::generate(&mut rng);
        for position in PREFIX.len()..KEY_LEN {
            let mut typo = secret.expose().as_bytes().to_vec();
            typo[position] = if typo[position] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).unwrap();
            assert_eq!(KeyHash::of_presented(&typo), Err(MalformedKey), "typo at {position}");
        }
    }

    #[test]
    fn whitespace_around_a_key_is_not_part_of_it_but_inside_it_is_refused() {
        let key = KeySecret::generate(&mut rand::rng());
        let hash = key.hash();
        for padded in [format!("{}\n", key.expose()), format!(" {}\r\n", key.expose()), format!("\t{} ", key.expose())]
        {
            assert_eq!(KeyHash::of_presented(&padded), Ok(hash), "{padded:?}");
        }
        let (head, tail) = key.expose().split_at(10);
        assert!(KeyHash::of_presented(&format!("{head} {tail}")).is_err());
        assert!(KeyHash::of_presented(&format!("{}\u{a0}", key.expose())).is_err(), "only ASCII whitespace");
    }

    #[test]
    fn a_legacy_key_is_hashed_from_its_sha256_and_never_like_a_kl_key() {
        let legacy = "0123456789abcdef0123456789ABCDEF";
        let sha: [u8; 32] = sha2::Sha256::digest(legacy.as_bytes()).into();
        assert_eq!(KeyHash::of_presented(legacy), Ok(KeyHash::of_legacy_sha256(&sha)));
        assert_eq!(KeyHash::of_presented(&format!(" {legacy}\n")), Ok(KeyHash::of_legacy_sha256(&sha)));
        assert_ne!(KeyHash::of_legacy_sha256(&sha), KeyHash::of_well_formed(legacy));
        assert_ne!(KeyHash::of_presented(&legacy.to_lowercase()), KeyHash::of_presented(legacy), "case is kept");
        for not_legacy in [&legacy[1..], &format!("{legacy}0"), "0123456789abcdef0123456789abcdeg"] {
            assert_eq!(KeyHash::of_presented(not_legacy), Err(MalformedKey), "{not_legacy}");
        }
    }

    #[test]
    fn junk_is_refused() {
        for junk in ["", "kl_", "Bearer x", "ghp_0123456789abcdefghijklmnopqrstuvwxyz", &"é".repeat(20)] {
            assert_eq!(KeyHash::of_presented(junk), Err(MalformedKey), "{junk:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = KeySecret::generate(&mut rand::rng());
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn checksum_encoding_is_fixed_width() {
        assert_eq!(&encode_checksum(0), b"000000");
        assert_eq!(&encode_checksum(61), b"00000z");
        assert_eq!(&encode_checksum(62), b"000010");
    }
}
