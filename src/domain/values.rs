//! Validated free-text values: names, descriptions and email addresses.
//!
//! Names are what people read in the access review, so two of them must never look the
//! same. A name is NFC-normalised when parsed, refused if it holds a control or format
//! character (which can hide text or reorder it on screen), and compared with others
//! through its [`Lookalike`] keys: the UTS #39 confusable skeletons of its forms.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The reason a text value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidText {
    /// The value is empty once surrounding white space is removed.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than allowed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// The value holds a control character such as a newline (general category Cc) or a
    /// format character such as a bidi override or a zero-width space (Cf).
    #[error("contains U+{:04X}, a control or format character", u32::from(*.code_point))]
    ControlCharacter {
        /// The first offending character.
        code_point: char,
    },
    /// The value is not an email address.
    #[error("must be an email address such as api@example.com")]
    NotAnEmail,
}

/// A human-readable name or description: trimmed, NFC-normalised, 1 to 200 characters,
/// one line, with no control or format characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// The most characters a name may have.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name: trims surrounding white space, refuses control and format
    /// characters (naming the first), and normalises to NFC, so that "Cafe\u{301}" and
    /// "Café" are the same name.
    pub fn parse(value: &str) -> Result<Self, InvalidText> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidText::Empty);
        }
        if let Some(code_point) = trimmed.chars().find(|&c| is_control_or_format(c)) {
            return Err(InvalidText::ControlCharacter { code_point });
        }
        let normalised: String = trimmed.nfc().collect();
        if normalised.chars().count() > Self::MAX_CHARS {
            return Err(InvalidText::TooLong { max: Self::MAX_CHARS });
        }
        Ok(Self(normalised))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two names are compared in for uniqueness: case-insensitive.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The case-insensitive form of a name, used for uniqueness.
pub fn fold(value: &str) -> String {
    value.to_lowercase()
}

/// Whether a character is a control character (general category Cc: C0, C1, DEL) or a
/// format character (Cf: bidi embeddings, overrides and isolates, zero-width spaces and
/// joiners, the byte order mark, soft hyphens and the like).
pub(super) fn is_control_or_format(c: char) -> bool {
    matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format)
}

/// One key under which a name is compared with others: 128 bits of the blake3 hash of
/// the UTS #39 confusable skeleton of one of the name's forms.
///
/// A name has up to three forms: as written, in lower case and in capitals. Two names
/// look alike when any form of one has the same skeleton as any form of the other. So
/// "Аdministrator" (a Cyrillic А) looks like "Administrator" as written, and
/// "ADMlNISTRATOR" (an l for the I) looks like "administrator" in capitals, while
/// "Mail" and "Mall" stay apart: no single casing makes them look the same. One skeleton
/// of the case-folded name would not do: it either misses "ADMlNISTRATOR" or, to catch
/// it, makes every lower-case i and l the same letter.
///
/// The keys are hashes so that the index of every user's names stays small; a collision
/// of 128-bit hashes is as unlikely as one of key hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Lookalike([u8; 16]);

impl Lookalike {
    /// The keys of a name: one per distinct skeleton of its forms, at most three.
    ///
    /// Stored names are keyed as they were written, without normalising or validating
    /// them again: the skeleton decomposes its input, so an old name that was not in NFC
    /// gets the same keys as its NFC form.
    pub fn keys_of(name: &str) -> Vec<Lookalike> {
        let mut keys = Vec::with_capacity(3);
        for form in [name.to_owned(), name.to_lowercase(), name.to_uppercase()] {
            let key = Self::of_form(&form);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Whether two names look alike.
    pub fn look_alike(a: &str, b: &str) -> bool {
        let keys = Self::keys_of(a);
        Self::keys_of(b).iter().any(|key| keys.contains(key))
    }

    fn of_form(form: &str) -> Lookalike {
        // One hash of the whole skeleton: blake3 costs per call far more than per byte
        // at these lengths.
        let mut skeleton = String::with_capacity(form.len() + 8);
        match ascii_skeleton_parts(form) {
            Some(parts) => parts.for_each(|part| skeleton.push_str(part)),
            None => skeleton.extend(unicode_security::skeleton(form)),
        }
        let mut key = [0; 16];
        key.copy_from_slice(&blake3::hash(skeleton.as_bytes()).as_bytes()[..16]);
        Lookalike(key)
    }
}

/// The skeleton of an ASCII `form`, as the skeletons of its characters one after another,
/// or `None` when `form` is not ASCII.
///
/// This is the UTS #39 skeleton, only faster: `skeleton` decomposes (ASCII is already
/// decomposed), maps each character to its prototype and decomposes again, and the last
/// step can only reorder combining marks that follow one another. Every ASCII character's
/// own skeleton starts with a character of combining class 0 (checked when the table is
/// built; a character for which it did not would make this return `None`), so nothing is
/// reordered across characters and the whole is the parts in order. Names are almost
/// always ASCII, and every created user or role has its name keyed three times on the
/// writer and three times in the view: the general path was a fifth of the writer's CPU.
fn ascii_skeleton_parts(form: &str) -> Option<impl Iterator<Item = &'static str>> {
    use std::sync::LazyLock;
    static PARTS: LazyLock<[Option<Box<str>>; 128]> = LazyLock::new(|| {
        std::array::from_fn(|byte| {
            let c = char::from(u8::try_from(byte).unwrap_or(0));
            let mut buffer = [0; 4];
            let skeleton: String = unicode_security::skeleton(c.encode_utf8(&mut buffer)).collect();
            let starts_a_run = skeleton
                .chars()
                .next()
                .is_none_or(|first| unicode_normalization::char::canonical_combining_class(first) == 0);
            starts_a_run.then(|| skeleton.into_boxed_str())
        })
    });
    let table = &*PARTS;
    let simple = form.bytes().all(|byte| byte.is_ascii() && table[usize::from(byte)].is_some());
    simple.then(|| form.bytes().map(|byte| table[usize::from(byte)].as_deref().unwrap_or_default()))
}

/// `value` without surrounding white space, if that is 1 to `max` characters long.
fn trimmed_within(value: &str, max: usize) -> Result<&str, InvalidText> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidText::Empty);
    }
    if trimmed.chars().count() > max {
        return Err(InvalidText::TooLong { max });
    }
    Ok(trimmed)
}

/// An email address: one `@` with text on both sides, a dot in the domain, no spaces.
///
/// keyledger does not send email; the address is a contact detail, so the check only
/// catches obvious mistakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321's path limit).
    pub const MAX_CHARS: usize = 254;

    /// Parses an email address, trimming surrounding white space.
    pub fn parse(value: &str) -> Result<Self, InvalidText> {
        let trimmed = trimmed_within(value, Self::MAX_CHARS)?;
        let well_formed = match trimmed.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if well_formed { Ok(Self(trimmed.to_owned())) } else { Err(InvalidText::NotAnEmail) }
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an operator recovered administration: trimmed, 1 to 500 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReason(String);

impl RecoveryReason {
    /// The most characters a reason may have.
    pub const MAX_CHARS: usize = 500;

    /// Parses a reason, trimming surrounding white space.
    pub fn parse(value: &str) -> Result<Self, InvalidText> {
        let trimmed = trimmed_within(value, Self::MAX_CHARS)?;
        if let Some(code_point) = trimmed.chars().find(|c| c.is_control()) {
            return Err(InvalidText::ControlCharacter { code_point });
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The reason as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  API Access ").map(|n| n.as_str().to_owned()), Ok("API Access".to_owned()));
        assert_eq!(Name::parse("   "), Err(InvalidText::Empty));
        assert_eq!(Name::parse("a\nb"), Err(InvalidText::ControlCharacter { code_point: '\n' }));
        assert!(Name::parse(&"é".repeat(Name::MAX_CHARS)).is_ok());
        assert_eq!(Name::parse(&"é".repeat(Name::MAX_CHARS + 1)), Err(InvalidText::TooLong { max: 200 }));
    }

    #[test]
    fn recovery_reasons_are_trimmed_and_bounded() {
        assert_eq!(RecoveryReason::parse(" lost key ").map(|r| r.as_str().to_owned()), Ok("lost key".to_owned()));
        assert_eq!(RecoveryReason::parse(""), Err(InvalidText::Empty));
        assert!(RecoveryReason::parse(&"a".repeat(RecoveryReason::MAX_CHARS)).is_ok());
        assert_eq!(RecoveryReason::parse(&"a".repeat(501)), Err(InvalidText::TooLong { max: 500 }));
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("api@example.com").is_ok());
        for bad in ["api", "@example.com", "api@example", "api@@example.com", "a pi@example.com", "api@.com"] {
            assert_eq!(Email::parse(bad), Err(InvalidText::NotAnEmail), "{bad}");
        }
    }

    #[test]
    fn names_are_normalised_to_nfc() {
        let decomposed = Name::parse("Cafe\u{301}").expect("a valid name");
        assert_eq!(decomposed.as_str(), "Caf\u{e9}");
        assert_eq!(decomposed, Name::parse("Caf\u{e9}").expect("a valid name"));
        // The limit counts characters after normalisation: 200 composed é are 400 before.
        assert!(Name::parse(&"e\u{301}".repeat(Name::MAX_CHARS)).is_ok());
    }

    #[test]
    fn control_and_format_characters_are_refused_by_code_point() {
        for (name, code_point) in [
            ("user\u{202E}gnp.exe", '\u{202E}'),
            ("a\u{202A}b", '\u{202A}'),
            ("a\u{2066}b", '\u{2066}'),
            ("a\u{2069}b", '\u{2069}'),
            ("Admin\u{200B}istrator", '\u{200B}'),
            ("a\u{200C}b", '\u{200C}'),
            ("a\u{200D}b", '\u{200D}'),
            ("\u{FEFF}Administrator", '\u{FEFF}'),
            ("a\u{7F}b", '\u{7F}'),
            ("a\u{85}b", '\u{85}'),
            ("a\tb", '\t'),
        ] {
            assert_eq!(Name::parse(name), Err(InvalidText::ControlCharacter { code_point }), "{name:?}");
        }
        assert_eq!(
            Name::parse("x\u{202E}").map_err(|e| e.to_string()),
            Err("contains U+202E, a control or format character".to_owned())
        );
        assert_eq!(
            Name::parse("x\u{1}").map_err(|e| e.to_string()),
            Err("contains U+0001, a control or format character".to_owned())
        );
    }

    #[test]
    fn names_that_look_alike_share_a_key() {
        for (a, b) in [
            ("Administrator", "\u{410}dministrator"),
            ("administrator", "ADMlNISTRATOR"),
            ("Administrator", "ADMINISTRATOR"),
            ("Administrator", "Adrninistrator"),
            ("Caf\u{e9}", "Cafe\u{301}"),
            ("paypal", "p\u{430}yp\u{430}l"),
            ("EMEA", "\u{415}\u{41C}\u{415}\u{410}"),
        ] {
            assert!(Lookalike::look_alike(a, b), "{a:?} and {b:?} should look alike");
            assert!(Lookalike::look_alike(b, a), "{b:?} and {a:?} should look alike");
        }
    }

    #[test]
    fn names_that_differ_do_not_look_alike() {
        for (a, b) in [("Mail", "Mall"), ("Administrator", "Auditor"), ("EMEA", "APAC"), ("app 1", "app 2")] {
            assert!(!Lookalike::look_alike(a, b), "{a:?} and {b:?} should not look alike");
        }
    }

    #[test]
    fn the_ascii_shortcut_gives_the_uts39_skeleton() {
        let general = |form: &str| unicode_security::skeleton(form).collect::<String>();
        let shortcut = |form: &str| ascii_skeleton_parts(form).map(|parts| parts.collect::<String>());
        // Every printable ASCII character takes the shortcut, so names typed on a
        // US keyboard never pay for the general path.
        for byte in 0x20_u8..0x7F {
            let c = char::from(byte).to_string();
            assert_eq!(shortcut(&c), Some(general(&c)), "{c:?}");
        }
        // Every pair, and so every boundary between two characters, joins as the general
        // skeleton of the pair does.
        for a in 0_u8..0x80 {
            for b in 0_u8..0x80 {
                let pair = String::from_utf8(vec![a, b]).expect("ASCII");
                if let Some(fast) = shortcut(&pair) {
                    assert_eq!(fast, general(&pair), "{pair:?}");
                }
            }
        }
        for name in ["Administrator", "ADMlNISTRATOR", "rn m 0O1lI|", "API Access (read-only) #2"] {
            assert_eq!(shortcut(name), Some(general(name)), "{name:?}");
        }
        assert_eq!(shortcut("Caf\u{e9}"), None);
    }
}
