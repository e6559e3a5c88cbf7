//! Points in time, as keyledger records them: UTC, millisecond precision, RFC 3339.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The reason a string is not an RFC 3339 timestamp keyledger can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an RFC 3339 timestamp such as 2027-01-31T17:00:00Z")]
pub struct InvalidTimestamp;

/// A point in time: milliseconds since the Unix epoch, in UTC.
///
/// It is written as RFC 3339 in records and over HTTP, and compared as an integer on the
/// key-check path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed when the text has no escapes, which a timestamp never has.
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Timestamp {
    /// Builds a timestamp from milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// The current time, from the system clock.
    ///
    /// The domain never calls this itself: callers pass the time in, so that deciding a
    /// command stays a pure function.
    pub fn now() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis())
            .unwrap_or(0);
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// This time plus a number of seconds, saturating at the end of representable time.
    pub fn plus_seconds(self, seconds: u64) -> Self {
        let millis = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1000);
        Self(self.0.saturating_add(millis))
    }

    /// Parses an RFC 3339 timestamp with any offset, keeping millisecond precision.
    ///
    /// The instant must fall within the years 0000 to 9999 in UTC, the range its RFC 3339
    /// form can be written in: `9999-12-31T23:59:59-01:00` is refused, since in UTC it is
    /// in the year 10000 and could not be read back from a record.
    pub fn parse(value: &str) -> Result<Self, InvalidTimestamp> {
        let parsed = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| InvalidTimestamp)?;
        // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds since the epoch.
        const WRITABLE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;
        if !WRITABLE.contains(&parsed.unix_timestamp()) {
            return Err(InvalidTimestamp);
        }
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).map(Self).map_err(|_| InvalidTimestamp)
    }

    fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(at) => {
                let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
                let (hour, minute, second) = (at.hour(), at.minute(), at.second());
                let millis = at.millisecond();
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
            }
            // Only timestamps far outside years 1..9999 land here; they cannot be parsed
            // from RFC 3339 in the first place, so this is a representation of last resort.
            Err(_) => format!("@{}", self.0),
        }
    }
}

impl From<Timestamp> for String {
    fn from(at: Timestamp) -> String {
        at.to_rfc3339()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_utc_rfc3339_with_milliseconds_and_parses_back() {
        let at = Timestamp::parse("2027-03-01T09:30:15.250+01:00").unwrap();
        assert_eq!(at.to_string(), "2027-03-01T08:30:15.250Z");
        assert_eq!(Timestamp::parse(&at.to_string()), Ok(at));
    }

    #[test]
    fn refuses_instants_whose_utc_year_has_no_rfc3339_form() {
        // Found by the key_parser fuzz target: these were written as "@…" and
        // "-001-…", which replay could not read back.
        assert_eq!(Timestamp::parse("9999-12-31T23:59:59-01:00"), Err(InvalidTimestamp));
        assert_eq!(Timestamp::parse("0000-01-01T00:00:00+01:00"), Err(InvalidTimestamp));
        let last = Timestamp::parse("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(Timestamp::parse(&last.to_string()), Ok(last));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        assert!(Timestamp::parse("2027-03-01").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("1700000000").is_err());
    }
}
