//! Why a change was made: the justification an admin may give with any change (the
//! `Keyledger-Justification` header, such as a ticket id), kept in every record of the
//! change, and which changes must carry one when the server requires it.

use serde::{Deserialize, Serialize};

use super::values::is_control_or_format;
use super::{Command, InvalidText};

/// The reason an admin gave for a change: trimmed, 1 to 500 characters, one line, with no
/// control character (general category Cc) and no format character (Cf: bidi overrides,
/// zero-width spaces), so that what a reviewer reads is what was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Justification(Box<str>);

impl Justification {
    /// The most characters a justification may have.
    pub const MAX_CHARS: usize = 500;

    /// Parses a justification, trimming surrounding white space.
    pub fn parse(value: &str) -> Result<Self, InvalidText> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidText::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidText::TooLong { max: Self::MAX_CHARS });
        }
        if let Some(code_point) = trimmed.chars().find(|&c| is_control_or_format(c)) {
            return Err(InvalidText::ControlCharacter { code_point });
        }
        Ok(Self(trimmed.into()))
    }

    /// The justification as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Justification {
    type Error = InvalidText;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Justification> for String {
    fn from(justification: Justification) -> String {
        justification.0.into()
    }
}

impl std::fmt::Display for Justification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `command` grants access, so that a server started with
/// `--require-justification` refuses it without a justification.
///
/// A command grants access when it can make some key pass a check it did not pass before:
/// a function activated on a role, a role assigned, a user enabled, event access set (it
/// may widen), an event added to a group (every holder of the group and of its ancestors
/// reaches it), or a key generated or imported (a new credential, rotation included), or the key
/// policy set (raising or clearing a limit lets blocked keys pass again). Creating an
/// empty role, user or group grants nothing until one of those follows, and removals
/// (deactivate, unassign, disable, remove an event, revoke) only take access away: they
/// never need one, so that taking access away in a hurry is never held up. Records of what
/// keys did, bootstrap and recovery are not admin changes of this kind.
pub fn required_for(command: &Command) -> bool {
    match command {
        Command::ActivateFunctions { .. }
        | Command::AssignRole { .. }
        | Command::EnableUser { .. }
        | Command::SetUserEventAccess { .. }
        | Command::AddEventToGroup { .. }
        | Command::GenerateKey { .. }
        | Command::ImportKey { .. }
        // A policy change may loosen a limit, which lets blocked keys pass again.
        | Command::SetKeyPolicy { .. } => true,
        Command::Bootstrap { .. }
        | Command::CreateRole { .. }
        | Command::DeactivateFunctions { .. }
        | Command::CreateUser { .. }
        | Command::DisableUser { .. }
        | Command::UnassignRole { .. }
        | Command::CreateEventGroup { .. }
        | Command::RemoveEventFromGroup { .. }
        | Command::RevokeKey { .. }
        | Command::RecordAdminAccessDenied { .. }
        | Command::RecordKeyLookup { .. }
        | Command::RecordKeyUsage { .. }
        | Command::RecoverAdministrator { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeyHash, KeyId, UserId};

    #[test]
    fn a_justification_is_trimmed_bounded_and_one_line() {
        assert_eq!(Justification::parse("  OPS-1234 ").map(|j| j.as_str().to_owned()), Ok("OPS-1234".to_owned()));
        assert_eq!(Justification::parse(" \t "), Err(InvalidText::Empty));
        assert!(Justification::parse(&"é".repeat(Justification::MAX_CHARS)).is_ok());
        assert_eq!(Justification::parse(&"é".repeat(501)), Err(InvalidText::TooLong { max: 500 }));
        for (text, code_point) in
            [("a\nb", '\n'), ("a\u{7F}b", '\u{7F}'), ("a\u{202E}b", '\u{202E}'), ("a\u{AD}b", '\u{AD}')]
        {
            assert_eq!(Justification::parse(text), Err(InvalidText::ControlCharacter { code_point }), "{text:?}");
        }
        let parsed: Justification = serde_json::from_str("\"OPS-1\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"OPS-1\"");
        assert!(serde_json::from_str::<Justification>("\"\"").is_err());
    }

    #[test]
    fn grants_need_a_justification_and_removals_never_do() {
        let user_id = UserId::example(1);
        let grants = [
            Command::EnableUser { user_id: user_id.clone() },
            Command::GenerateKey {
                user_id: user_id.clone(),
                key_id: KeyId::example(1),
                key_hash: KeyHash::example(1),
                expires_at: None,
                grace_seconds: None,
            },
        ];
        let removals = [Command::DisableUser { user_id: user_id.clone() }, Command::RevokeKey { user_id }];
        assert!(grants.iter().all(required_for));
        assert!(!removals.iter().any(required_for));
    }
}
