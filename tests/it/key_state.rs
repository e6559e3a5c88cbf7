//! One judgement of a key's state (issue #10): `getUser`, `getPermissionsAt`, the access
//! report (JSON and CSV) and `checkKey` agree on where a key stands, for every combination
//! of replaced (in its grace period or past it), expired, revoked and disabled.
//!
//! Each combination is a user of its own, set up through the API. Expiry and the end of a
//! grace period need real time: the keys that expire do so three seconds after they are
//! generated, the grace periods that end last two seconds (room for a slow revocation
//! right after the rotation on a loaded machine), and the test waits once for all
//! of them.

use std::time::Duration;

use serde_json::{Value, json};

use super::helpers::{TestApp, spawn_app_with};
use super::walkthrough::{rfc3339, time_now_millis};

/// What happened to a user's first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    /// It is still the user's current key.
    No,
    /// A new key replaced it with an hour of grace.
    InGrace,
    /// A new key replaced it with two seconds of grace, which are over when asked.
    PastGrace,
}

/// One combination, and the user and first key it was set up with.
#[derive(Debug)]
struct Combination {
    replaced: Replaced,
    expired: bool,
    revoked: bool,
    disabled: bool,
    user_id: String,
    key_id: String,
    secret: String,
}

impl Combination {
    fn label(&self) -> String {
        let replaced = match self.replaced {
            Replaced::No => "current",
            Replaced::InGrace => "in-grace",
            Replaced::PastGrace => "past-grace",
        };
        let flag = |set: bool, name: &str| if set { format!(" {name}") } else { String::new() };
        format!(
            "{replaced}{}{}{}",
            flag(self.expired, "expired"),
            flag(self.revoked, "revoked"),
            flag(self.disabled, "disabled")
        )
    }

    /// The state every view must show, by the documented precedence: revoked, replaced
    /// past its grace period, expired, in grace, active. A grace period never outlasts
    /// the key's expiry, so a key in grace that expires is past its grace period.
    fn expected_state(&self) -> &'static str {
        match (self.revoked, self.replaced, self.expired) {
            (true, _, _) => "revoked",
            (false, Replaced::PastGrace, _) | (false, Replaced::InGrace, true) => "replaced",
            (false, Replaced::No, true) => "expired",
            (false, Replaced::InGrace, false) => "grace",
            (false, Replaced::No, false) => "active",
        }
    }

    /// What `checkKey` says of the key: the state's refusal, else the user's.
    fn expected_reason(&self) -> &'static str {
        match self.expected_state() {
            "revoked" => "revoked_key",
            "replaced" => "unknown_key",
            "expired" => "expired_key",
            _ if self.disabled => "user_disabled",
            _ => "granted",
        }
    }
}

/// Sets up one combination, except for the parts that wait for time to pass.
fn set_up(app: &TestApp, role: &str, replaced: Replaced, expired: bool, revoked: bool, disabled: bool) -> Combination {
    let mut combination = Combination {
        replaced,
        expired,
        revoked,
        disabled,
        user_id: String::new(),
        key_id: String::new(),
        secret: String::new(),
    };
    let user = app.create_user(&format!("App {}", combination.label()));
    app.assign(&user, role);
    let options =
        if expired { json!({ "expires_at": rfc3339((time_now_millis() + 3000) as f64 / 1000.0) }) } else { json!({}) };
    let reply = app.post(&format!("/v1/users/{user}/key"), &options);
    reply.expect(201);
    combination.secret = reply.json()["key"].as_str().expect("key").to_owned();
    combination.key_id = reply.json()["key_id"].as_str().expect("key_id").to_owned();
    let grace = match replaced {
        Replaced::No => None,
        Replaced::InGrace => Some(3600),
        Replaced::PastGrace => Some(2),
    };
    if let Some(grace_seconds) = grace {
        app.post(&format!("/v1/users/{user}/key"), &json!({ "grace_seconds": grace_seconds })).expect(201);
    }
    if revoked {
        app.delete(&format!("/v1/users/{user}/key")).expect(200);
    }
    if disabled {
        app.post_empty(&format!("/v1/users/{user}/disable")).expect(200);
    }
    combination.user_id = user;
    combination
}

/// The state `getUser` shows for the key, if it shows the key at all (as the user's
/// current key or the one in its grace period).
fn state_in_get_user(app: &TestApp, combination: &Combination) -> Option<String> {
    let user = app.get(&format!("/v1/users/{}", combination.user_id));
    user.expect(200);
    let user = user.json();
    ["key", "previous_key"]
        .iter()
        .map(|field| &user[*field])
        .find(|key| key["key_id"] == combination.key_id.as_str())
        .map(|key| key["state"].as_str().expect("state").to_owned())
}

/// The state `getPermissionsAt` (now) shows for the key.
fn state_in_permissions(view: &Value, combination: &Combination) -> Option<String> {
    let user = view["users"].as_array()?.iter().find(|user| user["id"] == combination.user_id.as_str())?;
    let key = user["keys"].as_array()?.iter().find(|key| key["key_id"] == combination.key_id.as_str())?;
    Some(key["state"].as_str()?.to_owned())
}

/// The state the access report's JSON row shows for the key, if the key is the user's
/// current one.
fn state_in_report(report: &Value, combination: &Combination) -> Option<String> {
    let row = report["rows"].as_array()?.iter().find(|row| row["user_id"] == combination.user_id.as_str())?;
    (row["key_id"] == combination.key_id.as_str()).then(|| row["key_state"].as_str().map(str::to_owned))?
}

/// The state the access report's CSV row shows for the key, if the key is the user's
/// current one. No cell of these rows needs quoting.
fn state_in_csv(csv: &str, combination: &Combination) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let column = |name: &str| header.iter().position(|column| *column == name);
    let (user_column, key_column, state_column) = (column("user_id")?, column("key_id")?, column("key_state")?);
    let row: Vec<&str> =
        lines.map(|line| line.split(',').collect::<Vec<_>>()).find(|row| row[user_column] == combination.user_id)?;
    (row[key_column] == combination.key_id).then(|| row[state_column].to_owned())
}

#[test]
fn get_user_permissions_at_the_access_report_and_check_key_agree_on_every_key_state() {
    // Twenty-odd refused checks from one client would otherwise be throttled.
    let app = spawn_app_with(&["--failed-check-burst", "0"]);
    let role = app.create_role("Readers");
    app.activate(&role, &["api.events.read"]);
    let mut combinations = Vec::new();
    for replaced in [Replaced::No, Replaced::InGrace, Replaced::PastGrace] {
        for expired in [false, true] {
            for revoked in [false, true] {
                for disabled in [false, true] {
                    combinations.push(set_up(&app, &role, replaced, expired, revoked, disabled));
                }
            }
        }
    }
    // Every expiry was three seconds after its key was generated, and every short grace
    // period two seconds after its rotation: wait until all of them have passed.
    std::thread::sleep(Duration::from_millis(3300));

    let view = app.get("/v1/audit/permissions?limit=1000");
    view.expect(200);
    let view = view.json();
    let report = app.get("/v1/audit/access-report");
    report.expect(200);
    let report = report.json();
    let csv = app.get("/v1/audit/access-report?format=csv");
    csv.expect(200);
    let csv = csv.body.clone();

    for combination in &combinations {
        let label = combination.label();
        let expected = Some(combination.expected_state().to_owned());
        assert_eq!(state_in_permissions(&view, combination), expected, "getPermissionsAt, {label}");
        // A revoked key is no longer a key of its user, so getUser no longer shows it.
        let shown_by_get_user = if combination.revoked { None } else { expected.clone() };
        assert_eq!(state_in_get_user(&app, combination), shown_by_get_user, "getUser, {label}");
        // The report shows the current key only: neither a replaced nor a revoked one.
        let current = combination.replaced == Replaced::No && !combination.revoked;
        let shown_by_report = if current { expected.clone() } else { None };
        assert_eq!(state_in_report(&report, combination), shown_by_report, "accessReport, {label}");
        assert_eq!(state_in_csv(&csv, combination), shown_by_report, "accessReport CSV, {label}");
        assert_eq!(
            app.check_reason(&combination.secret, "api.events.read", None),
            combination.expected_reason(),
            "checkKey, {label}"
        );
    }
}
