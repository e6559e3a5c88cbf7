//! Validated free-text values: names, descriptions and email addresses.

use std::fmt;

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
    /// The value holds a control character such as a newline.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// The value is not an email address.
    #[error("must be an email address such as api@example.com")]
    NotAnEmail,
}

/// A human-readable name or description: trimmed, 1 to 200 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// The most characters a name may have.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name, trimming surrounding white space.
    pub fn parse(value: &str) -> Result<Self, InvalidText> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidText::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidText::TooLong { max: Self::MAX_CHARS });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidText::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
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
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidText::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidText::TooLong { max: Self::MAX_CHARS });
        }
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
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidText::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidText::TooLong { max: Self::MAX_CHARS });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidText::ControlCharacter);
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
        assert_eq!(Name::parse("a\nb"), Err(InvalidText::ControlCharacter));
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
}
