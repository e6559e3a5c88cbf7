//! The domain's rules, as scenarios: given these events, when this command, then these
//! events or this refusal. Key checks read the same way: given these events, this key
//! asking for this function (on this event) gets this reason.
//!
//! Every scenario goes through [`given`], so a change of the domain's API touches one place.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;

// ---------------------------------------------------------------------------------------
// The scenario helper.
// ---------------------------------------------------------------------------------------

/// When every event of a `given` history was recorded.
const RECORDED_AT: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

/// When commands are decided and keys checked, unless a scenario says otherwise: an hour
/// after the history was recorded.
const NOW: Timestamp = Timestamp::from_unix_millis(1_800_003_600_000);

/// A state built from a history, and the context the next command is decided in.
struct Scenario {
    state: State,
    context: Context,
}

/// Applies `history` to a fresh state at positions 1, 2, 3… all recorded at [`RECORDED_AT`].
/// Commands are then decided by the administrator at [`NOW`], with no `If-Match`.
///
/// Unless the history creates the administrator itself, it is followed by
/// [`the_administrator`]: a standing administrator holding every admin function, so that
/// scenarios about other rules are not refused for lack of authority.
fn given(history: &[Event]) -> Scenario {
    let mut state = State::default();
    let creates_admin =
        history.iter().any(|event| matches!(event, Event::UserCreated { user_id, .. } if *user_id == admin()));
    let preamble = if creates_admin { Vec::new() } else { the_administrator() };
    for (seq, event) in (1..).zip(history.iter().chain(&preamble)) {
        state.apply(Position { seq, at: RECORDED_AT }, event);
    }
    Scenario {
        state,
        context: Context { actor: Actor::User(admin()), now: NOW, expected_version: None, credential: None },
    }
}

/// An empty state, with not even an administrator: the ledger before its bootstrap.
fn given_an_empty_ledger() -> Scenario {
    let context = Context { actor: Actor::System, now: NOW, expected_version: None, credential: None };
    Scenario { state: State::default(), context }
}

/// The administrator who decides commands unless a scenario says otherwise: a user
/// holding the Root role, which carries every admin function, with a key that does not
/// expire.
fn the_administrator() -> Vec<Event> {
    let mut events = vec![user_created(admin(), "Administrator"), role_created(root(), "Root")];
    events
        .extend(FunctionSet::all_admin().iter().map(|function| Event::FunctionActivated { role_id: root(), function }));
    events.push(assigned(admin(), root()));
    events.push(key_generated(admin(), key_id("key_00000000000000ad"), key_hash(0xad), None));
    events
}

impl Scenario {
    /// Decides the command as someone else.
    fn by(mut self, actor: Actor) -> Self {
        self.context.actor = actor;
        self
    }

    /// Decides the command, or checks keys, at another time.
    fn at(mut self, now: Timestamp) -> Self {
        self.context.now = now;
        self
    }

    /// Decides the command as if the client sent `If-Match: version`.
    fn if_match(mut self, version: u64) -> Self {
        self.context.expected_version = Some(version);
        self
    }

    /// Decides a command.
    fn when(self, command: Command) -> Outcome {
        Outcome { result: decide(&self.state, &self.context, command) }
    }

    /// Checks a presented key at the scenario's time and gives the reason as clients see it.
    fn check(&self, key: &str, function: &str, event_id: Option<&str>) -> &'static str {
        self.checked(key, function, event_id).reason.as_str()
    }

    /// Checks a presented key at the scenario's time and gives the whole decision.
    fn checked(&self, key: &str, function: &str, event_id: Option<&str>) -> Decision<'_> {
        check(&self.state, CheckRequest { key, function, event_id }, self.context.now)
    }
}

/// What a command was decided into.
struct Outcome {
    result: Result<Vec<Event>, DomainError>,
}

impl Outcome {
    /// Asserts that the command was accepted with exactly these events (none: a no-op).
    #[track_caller]
    fn then(self, expected: &[Event]) {
        assert_eq!(self.result, Ok(expected.to_vec()));
    }

    /// Asserts that the command was refused for this reason.
    #[track_caller]
    fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// The accepted events, or none if the command was refused.
    fn events_if_accepted(self) -> Vec<Event> {
        self.result.unwrap_or_default()
    }

    /// The accepted events, for a scenario that goes on from them.
    #[track_caller]
    fn events(self) -> Vec<Event> {
        self.result.expect("the command should have been accepted")
    }
}

// ---------------------------------------------------------------------------------------
// Fixed, readable ids and values.
// ---------------------------------------------------------------------------------------

fn user_id(id: &str) -> UserId {
    UserId::parse(id).expect("test user ids are well formed")
}
fn role_id(id: &str) -> RoleId {
    RoleId::parse(id).expect("test role ids are well formed")
}
fn group_id(id: &str) -> GroupId {
    GroupId::parse(id).expect("test group ids are well formed")
}
fn key_id(id: &str) -> KeyId {
    KeyId::parse(id).expect("test key ids are well formed")
}

/// The administrator who decides commands unless a scenario says otherwise.
fn admin() -> UserId {
    user_id("usr_00000000000000ad")
}
/// A person.
fn alice() -> UserId {
    user_id("usr_00000000000000a1")
}
/// Another person.
fn bob() -> UserId {
    user_id("usr_00000000000000b0")
}
/// A standalone API user, such as a booking app.
fn booking_app() -> UserId {
    user_id("usr_000000000000a990")
}

/// The role holding every admin function that [`the_administrator`] holds.
fn root() -> RoleId {
    role_id("role_000000000000000f")
}
/// A role of admin functions.
fn administrators() -> RoleId {
    role_id("role_00000000000000ad")
}
/// A role of API functions: the standalone API role.
fn api_access() -> RoleId {
    role_id("role_00000000000000a1")
}
/// Another role of admin functions.
fn editors() -> RoleId {
    role_id("role_00000000000000ed")
}
/// A role with no functions yet.
fn reporting() -> RoleId {
    role_id("role_00000000000000f0")
}

/// A top-level event group.
fn americas() -> GroupId {
    group_id("grp_00000000000000a1")
}
/// A group nested in "Americas".
fn usa() -> GroupId {
    group_id("grp_00000000000000a2")
}
/// Another top-level event group.
fn emea() -> GroupId {
    group_id("grp_00000000000000e1")
}
/// A group nested in "EMEA".
fn online_in_emea() -> GroupId {
    group_id("grp_00000000000000e2")
}
/// A group that no event of any scenario creates.
fn unknown_group() -> GroupId {
    group_id("grp_00000000000000ff")
}

fn first_key() -> KeyId {
    key_id("key_0000000000000001")
}
fn second_key() -> KeyId {
    key_id("key_0000000000000002")
}

/// A platform event in the "USA" group.
const NYC: &str = "nyc-2027";
/// A platform event in the "Americas" group itself, in no subgroup.
const LIMA: &str = "lima-2027";
/// A platform event in the "EMEA" group.
const PARIS: &str = "paris-2027";

fn event_id(id: &str) -> EventId {
    EventId::parse(id).expect("test event ids are well formed")
}

fn function(id: &str) -> FunctionId {
    FunctionId::parse(id).expect("test functions are in the catalogue")
}

fn functions(ids: &[&str]) -> BTreeSet<FunctionId> {
    ids.iter().map(|id| function(id)).collect()
}

fn name(value: &str) -> Name {
    Name::parse(value).expect("test names are valid")
}

/// A key hash for scenarios that never present the key: sixty-four hex digits ending in `n`.
fn key_hash(n: u8) -> KeyHash {
    KeyHash::try_from(format!("{n:064x}")).expect("sixty-four hex digits are a key hash")
}

/// A fresh key, for scenarios that present it to `check`.
fn new_secret() -> KeySecret {
    KeySecret::generate(&mut rand::rng())
}

fn seconds_after(at: Timestamp, seconds: u64) -> Timestamp {
    at.plus_seconds(seconds)
}

fn seconds_before(at: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.unix_millis() - seconds * 1000)
}

// ---------------------------------------------------------------------------------------
// Events, built readably.
// ---------------------------------------------------------------------------------------

fn user_created(user_id: UserId, name: &str) -> Event {
    Event::UserCreated { user_id, name: name.to_owned(), email: None }
}
fn user_disabled(user_id: UserId) -> Event {
    Event::UserDisabled { user_id }
}
fn role_created(role_id: RoleId, description: &str) -> Event {
    Event::RoleCreated { role_id, description: description.to_owned() }
}
fn activated(role_id: RoleId, function_id: &str) -> Event {
    Event::FunctionActivated { role_id, function: function(function_id) }
}
fn assigned(user_id: UserId, role_id: RoleId) -> Event {
    Event::RoleAssigned { user_id, role_id }
}
fn group_created(group_id: GroupId, name: &str, parent_id: Option<GroupId>) -> Event {
    Event::EventGroupCreated { group_id, name: name.to_owned(), parent_id }
}
fn event_added(group_id: GroupId, event: &str) -> Event {
    Event::EventAddedToGroup { group_id, event_id: event_id(event) }
}
fn access_to_groups(user_id: UserId, groups: &[GroupId]) -> Event {
    Event::EventAccessSet { user_id, all_events: false, groups: groups.to_vec() }
}
fn access_to_all_events(user_id: UserId) -> Event {
    Event::EventAccessSet { user_id, all_events: true, groups: vec![] }
}
/// A user's first key.
fn key_generated(user_id: UserId, key_id: KeyId, key_hash: KeyHash, expires_at: Option<Timestamp>) -> Event {
    Event::KeyGenerated { user_id, key_id, key_hash, expires_at, replaced_key_id: None, replaced_key_valid_until: None }
}
/// A key that replaces `replaced`, which keeps working until `valid_until` (`None`: stops at once).
fn key_replaced(
    user_id: UserId,
    key_id: KeyId,
    key_hash: KeyHash,
    replaced: KeyId,
    valid_until: Option<Timestamp>,
) -> Event {
    Event::KeyGenerated {
        user_id,
        key_id,
        key_hash,
        expires_at: None,
        replaced_key_id: Some(replaced),
        replaced_key_valid_until: valid_until,
    }
}
fn key_revoked(user_id: UserId, key_id: KeyId) -> Event {
    Event::KeyRevoked { user_id, key_id }
}

/// Alice, holding the Editors role, which can read and manage users.
fn alice_the_editor() -> Vec<Event> {
    vec![
        user_created(alice(), "Alice"),
        role_created(editors(), "Editors"),
        activated(editors(), "security.users.read"),
        activated(editors(), "security.users.manage"),
        assigned(alice(), editors()),
    ]
}

/// The administrator, then Alice, a second full administrator: she also holds Root, with a
/// key that does not expire.
fn two_administrators() -> Vec<Event> {
    let mut history = the_administrator();
    history.extend([
        user_created(alice(), "Alice"),
        assigned(alice(), root()),
        key_generated(alice(), key_id("key_00000000000000a1"), key_hash(0xa1), None),
    ]);
    history
}

/// The booking app, holding the API Access role (attendees and events read), with no
/// event access yet and the key whose hash is `key`.
fn booking_app_with_key(key: KeyHash) -> Vec<Event> {
    vec![
        user_created(booking_app(), "Booking app"),
        role_created(api_access(), "API Access"),
        activated(api_access(), "api.attendees.read"),
        activated(api_access(), "api.events.read"),
        assigned(booking_app(), api_access()),
        key_generated(booking_app(), first_key(), key, None),
    ]
}

/// "Americas" holding Lima, and "USA" nested in it holding New York.
fn americas_with_usa_inside() -> Vec<Event> {
    vec![
        group_created(americas(), "Americas", None),
        group_created(usa(), "USA", Some(americas())),
        event_added(usa(), NYC),
        event_added(americas(), LIMA),
    ]
}

// ---------------------------------------------------------------------------------------
// Bootstrap.
// ---------------------------------------------------------------------------------------

fn bootstrap(key_hash: KeyHash) -> Command {
    Command::Bootstrap { user_id: admin(), role_id: administrators(), key_id: first_key(), key_hash }
}

#[test]
fn bootstrap_creates_an_administrator_holding_every_admin_function_and_a_first_key() {
    let admin_functions = [
        "security.functions.read",
        "security.roles.read",
        "security.roles.manage",
        "security.users.read",
        "security.users.manage",
        "security.keys.manage",
        "security.event_access.read",
        "security.event_access.manage",
        "security.audit.read",
    ];
    let mut expected = vec![user_created(admin(), "Administrator"), role_created(administrators(), "Administrator")];
    expected.extend(admin_functions.iter().map(|f| activated(administrators(), f)));
    expected.push(assigned(admin(), administrators()));
    expected.push(key_generated(admin(), first_key(), key_hash(1), None));

    given_an_empty_ledger().by(Actor::System).when(bootstrap(key_hash(1))).then(&expected);
}

#[test]
fn the_bootstrap_key_may_use_every_admin_function_and_no_api_function() {
    let secret = new_secret();
    let history = given_an_empty_ledger().by(Actor::System).when(bootstrap(secret.hash())).events();
    let ledger = given(&history);
    for function in FunctionId::all() {
        let expected = if function.is_admin() { "granted" } else { "function_not_granted" };
        assert_eq!(ledger.check(secret.expose(), function.as_str(), None), expected, "{function}");
    }
}

#[test]
fn bootstrap_on_a_ledger_that_already_has_events_is_refused() {
    given(&[user_created(alice(), "Alice")])
        .by(Actor::System)
        .when(bootstrap(key_hash(1)))
        .then_error(DomainError::AlreadyInitialised);
}

// ---------------------------------------------------------------------------------------
// Roles and their functions.
// ---------------------------------------------------------------------------------------

#[test]
fn creating_a_role_records_its_description() {
    given(&[])
        .when(Command::CreateRole { role_id: api_access(), description: name("API Access") })
        .then(&[role_created(api_access(), "API Access")]);
}

#[test]
fn a_role_description_already_taken_in_another_case_is_refused() {
    given(&[role_created(api_access(), "API Access")])
        .when(Command::CreateRole { role_id: editors(), description: name("api ACCESS") })
        .then_error(DomainError::DuplicateRoleDescription {
            description: "api ACCESS".to_owned(),
            existing: api_access(),
        });
}

#[test]
fn activating_several_functions_records_one_event_per_function_not_yet_active() {
    given(&[role_created(api_access(), "API Access"), activated(api_access(), "api.events.read")])
        .when(Command::ActivateFunctions {
            role_id: api_access(),
            functions: functions(&["api.people.read", "api.events.read", "api.attendees.read"]),
        })
        .then(&[activated(api_access(), "api.attendees.read"), activated(api_access(), "api.people.read")]);
}

#[test]
fn activating_only_functions_already_active_records_nothing() {
    given(&[role_created(api_access(), "API Access"), activated(api_access(), "api.events.read")])
        .when(Command::ActivateFunctions { role_id: api_access(), functions: functions(&["api.events.read"]) })
        .then(&[]);
}

#[test]
fn activating_functions_on_an_unknown_role_is_refused() {
    given(&[])
        .when(Command::ActivateFunctions { role_id: api_access(), functions: functions(&["api.events.read"]) })
        .then_error(DomainError::NotFound { resource: Resource::Role, id: api_access().to_string() });
}

#[test]
fn an_admin_function_cannot_be_activated_on_an_api_role() {
    given(&[role_created(api_access(), "API Access"), activated(api_access(), "api.events.read")])
        .when(Command::ActivateFunctions {
            role_id: api_access(),
            functions: functions(&["api.people.read", "security.users.read"]),
        })
        .then_error(DomainError::MixedRole { role_id: api_access(), function: function("security.users.read") });
}

#[test]
fn an_api_function_cannot_be_activated_on_an_admin_role() {
    given(&[role_created(editors(), "Editors"), activated(editors(), "security.users.read")])
        .when(Command::ActivateFunctions {
            role_id: editors(),
            functions: functions(&["security.users.manage", "api.attendees.write"]),
        })
        .then_error(DomainError::MixedRole { role_id: editors(), function: function("api.attendees.write") });
}

#[test]
fn one_command_cannot_give_an_empty_role_both_api_and_admin_functions() {
    given(&[role_created(reporting(), "Reporting")])
        .when(Command::ActivateFunctions {
            role_id: reporting(),
            functions: functions(&["api.events.read", "security.audit.read"]),
        })
        .then_error(DomainError::MixedRole { role_id: reporting(), function: function("security.audit.read") });
}

#[test]
fn deactivating_records_only_the_functions_that_were_active() {
    given(&[role_created(api_access(), "API Access"), activated(api_access(), "api.events.read")])
        .when(Command::DeactivateFunctions {
            role_id: api_access(),
            functions: functions(&["api.events.read", "api.people.read"]),
        })
        .then(&[Event::FunctionDeactivated { role_id: api_access(), function: function("api.events.read") }]);
}

// ---------------------------------------------------------------------------------------
// Users.
// ---------------------------------------------------------------------------------------

#[test]
fn creating_a_user_records_the_name_and_email() {
    given(&[])
        .when(Command::CreateUser {
            user_id: booking_app(),
            name: name("  Booking app "),
            email: Some(Email::parse("api@example.com").expect("a valid address")),
        })
        .then(&[Event::UserCreated {
            user_id: booking_app(),
            name: "Booking app".to_owned(),
            email: Some("api@example.com".to_owned()),
        }]);
}

#[test]
fn disabling_an_enabled_user_records_it() {
    given(&[user_created(alice(), "Alice")])
        .when(Command::DisableUser { user_id: alice() })
        .then(&[user_disabled(alice())]);
}

#[test]
fn disabling_a_disabled_user_records_nothing() {
    given(&[user_created(alice(), "Alice"), user_disabled(alice())])
        .when(Command::DisableUser { user_id: alice() })
        .then(&[]);
}

#[test]
fn enabling_a_disabled_user_records_it() {
    given(&[user_created(alice(), "Alice"), user_disabled(alice())])
        .when(Command::EnableUser { user_id: alice() })
        .then(&[Event::UserEnabled { user_id: alice() }]);
}

#[test]
fn enabling_an_enabled_user_records_nothing() {
    given(&[user_created(alice(), "Alice")]).when(Command::EnableUser { user_id: alice() }).then(&[]);
}

#[test]
fn disabling_an_unknown_user_is_refused() {
    given(&[])
        .when(Command::DisableUser { user_id: alice() })
        .then_error(DomainError::NotFound { resource: Resource::User, id: alice().to_string() });
}

// ---------------------------------------------------------------------------------------
// Assigning roles, and the standalone API role.
// ---------------------------------------------------------------------------------------

#[test]
fn a_person_may_hold_several_ordinary_roles() {
    let mut history = alice_the_editor();
    history.push(role_created(reporting(), "Reporting"));
    given(&history)
        .when(Command::AssignRole { user_id: alice(), role_id: reporting() })
        .then(&[assigned(alice(), reporting())]);
}

#[test]
fn assigning_a_role_the_user_already_holds_records_nothing() {
    given(&alice_the_editor()).when(Command::AssignRole { user_id: alice(), role_id: editors() }).then(&[]);
}

#[test]
fn assigning_an_api_role_to_a_user_with_no_role_is_allowed() {
    given(&[
        user_created(booking_app(), "Booking app"),
        role_created(api_access(), "API Access"),
        activated(api_access(), "api.events.read"),
    ])
    .when(Command::AssignRole { user_id: booking_app(), role_id: api_access() })
    .then(&[assigned(booking_app(), api_access())]);
}

#[test]
fn assigning_an_api_role_to_a_user_who_holds_another_role_is_refused() {
    let mut history = alice_the_editor();
    history.extend([role_created(api_access(), "API Access"), activated(api_access(), "api.events.read")]);
    given(&history)
        .when(Command::AssignRole { user_id: alice(), role_id: api_access() })
        .then_error(DomainError::StandaloneApiRole { user_id: alice(), api_role: api_access() });
}

#[test]
fn assigning_a_second_role_to_an_api_user_is_refused() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend([role_created(editors(), "Editors"), activated(editors(), "security.users.read")]);
    given(&history)
        .when(Command::AssignRole { user_id: booking_app(), role_id: editors() })
        .then_error(DomainError::StandaloneApiRole { user_id: booking_app(), api_role: api_access() });
}

#[test]
fn assigning_a_role_with_no_functions_to_an_api_user_is_refused() {
    let mut history = booking_app_with_key(key_hash(1));
    history.push(role_created(reporting(), "Reporting"));
    given(&history)
        .when(Command::AssignRole { user_id: booking_app(), role_id: reporting() })
        .then_error(DomainError::StandaloneApiRole { user_id: booking_app(), api_role: api_access() });
}

#[test]
fn activating_an_api_function_on_a_role_whose_holder_holds_another_role_is_refused() {
    let mut history = alice_the_editor();
    history.extend([role_created(reporting(), "Reporting"), assigned(alice(), reporting())]);
    given(&history)
        .when(Command::ActivateFunctions { role_id: reporting(), functions: functions(&["api.events.read"]) })
        .then_error(DomainError::StandaloneApiRole { user_id: alice(), api_role: reporting() });
}

#[test]
fn activating_an_api_function_on_a_role_its_holders_hold_alone_is_allowed() {
    given(&[
        user_created(booking_app(), "Booking app"),
        role_created(reporting(), "Reporting"),
        assigned(booking_app(), reporting()),
    ])
    .when(Command::ActivateFunctions { role_id: reporting(), functions: functions(&["api.events.read"]) })
    .then(&[activated(reporting(), "api.events.read")]);
}

#[test]
fn a_role_stripped_of_its_api_functions_no_longer_has_to_stand_alone() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend([
        Event::FunctionDeactivated { role_id: api_access(), function: function("api.attendees.read") },
        Event::FunctionDeactivated { role_id: api_access(), function: function("api.events.read") },
        role_created(reporting(), "Reporting"),
    ]);
    given(&history)
        .when(Command::AssignRole { user_id: booking_app(), role_id: reporting() })
        .then(&[assigned(booking_app(), reporting())]);
}

#[test]
fn unassigning_a_held_role_records_it() {
    given(&alice_the_editor())
        .when(Command::UnassignRole { user_id: alice(), role_id: editors() })
        .then(&[Event::RoleUnassigned { user_id: alice(), role_id: editors() }]);
}

#[test]
fn unassigning_a_role_the_user_does_not_hold_is_refused() {
    let mut history = alice_the_editor();
    history.push(role_created(reporting(), "Reporting"));
    given(&history)
        .when(Command::UnassignRole { user_id: alice(), role_id: reporting() })
        .then_error(DomainError::RoleNotAssigned { user_id: alice(), role_id: reporting() });
}

// ---------------------------------------------------------------------------------------
// Self-lockout.
// ---------------------------------------------------------------------------------------

#[test]
fn an_administrator_cannot_disable_themselves() {
    given(&the_administrator())
        .when(Command::DisableUser { user_id: admin() })
        .then_error(DomainError::SelfLockout { action: "disable yourself" });
}

#[test]
fn an_administrator_cannot_revoke_their_own_key() {
    given(&the_administrator())
        .when(Command::RevokeKey { user_id: admin() })
        .then_error(DomainError::SelfLockout { action: "revoke your own key; generate a new one instead" });
}

#[test]
fn an_administrator_cannot_unassign_their_own_role() {
    given(&the_administrator())
        .when(Command::UnassignRole { user_id: admin(), role_id: root() })
        .then_error(DomainError::SelfLockout { action: "unassign your own roles" });
}

#[test]
fn another_administrator_may_disable_an_administrator() {
    let history = two_administrators();
    given(&history)
        .by(Actor::User(alice()))
        .when(Command::DisableUser { user_id: admin() })
        .then(&[user_disabled(admin())]);
}

// ---------------------------------------------------------------------------------------
// Event groups.
// ---------------------------------------------------------------------------------------

#[test]
fn creating_a_nested_group_records_its_parent() {
    given(&[group_created(americas(), "Americas", None)])
        .when(Command::CreateEventGroup { group_id: usa(), name: name("USA"), parent_id: Some(americas()) })
        .then(&[group_created(usa(), "USA", Some(americas()))]);
}

/// A chain of `levels` nested groups, the outermost first, and the events that create it.
fn nested_groups(levels: usize) -> (Vec<GroupId>, Vec<Event>) {
    let ids: Vec<GroupId> = (1..=levels).map(|level| group_id(&format!("grp_{level:016x}"))).collect();
    let events = ids
        .iter()
        .enumerate()
        .map(|(index, id)| group_created(id.clone(), "Level", index.checked_sub(1).map(|parent| ids[parent].clone())))
        .collect();
    (ids, events)
}

#[test]
fn issue_9_a_group_below_the_deepest_level_is_refused() {
    let (ids, history) = nested_groups(Group::MAX_DEPTH);
    let deepest = ids.last().cloned();
    given(&history)
        .when(Command::CreateEventGroup { group_id: unknown_group(), name: name("Too deep"), parent_id: deepest })
        .then_error(DomainError::GroupTooDeep { max: 32 });
}

#[test]
fn issue_9_a_group_at_the_deepest_level_is_allowed() {
    let (ids, history) = nested_groups(Group::MAX_DEPTH - 1);
    let parent_id = ids.last().cloned();
    given(&history)
        .when(Command::CreateEventGroup {
            group_id: unknown_group(),
            name: name("Deepest"),
            parent_id: parent_id.clone(),
        })
        .then(&[group_created(unknown_group(), "Deepest", parent_id)]);
}

#[test]
fn a_top_level_group_name_taken_in_another_case_is_refused() {
    given(&[group_created(americas(), "Americas", None)])
        .when(Command::CreateEventGroup { group_id: emea(), name: name("AMERICAS"), parent_id: None })
        .then_error(DomainError::DuplicateGroupName { name: "AMERICAS".to_owned(), existing: americas() });
}

#[test]
fn a_subgroup_name_taken_by_a_sibling_in_another_case_is_refused() {
    given(&americas_with_usa_inside())
        .when(Command::CreateEventGroup { group_id: emea(), name: name("usa"), parent_id: Some(americas()) })
        .then_error(DomainError::DuplicateGroupName { name: "usa".to_owned(), existing: usa() });
}

#[test]
fn the_same_group_name_is_allowed_under_different_parents() {
    given(&[
        group_created(americas(), "Americas", None),
        group_created(emea(), "EMEA", None),
        group_created(online_in_emea(), "Online", Some(emea())),
    ])
    .when(Command::CreateEventGroup { group_id: usa(), name: name("online"), parent_id: Some(americas()) })
    .then(&[group_created(usa(), "online", Some(americas()))]);
}

#[test]
fn a_subgroup_may_share_its_name_with_a_top_level_group() {
    given(&[group_created(americas(), "Americas", None), group_created(emea(), "EMEA", None)])
        .when(Command::CreateEventGroup { group_id: usa(), name: name("Americas"), parent_id: Some(emea()) })
        .then(&[group_created(usa(), "Americas", Some(emea()))]);
}

#[test]
fn a_group_under_an_unknown_parent_is_refused() {
    given(&[])
        .when(Command::CreateEventGroup { group_id: usa(), name: name("USA"), parent_id: Some(americas()) })
        .then_error(DomainError::NotFound { resource: Resource::Group, id: americas().to_string() });
}

#[test]
fn adding_an_event_to_a_group_records_it() {
    given(&[group_created(emea(), "EMEA", None)])
        .when(Command::AddEventToGroup { group_id: emea(), event_id: event_id(PARIS) })
        .then(&[event_added(emea(), PARIS)]);
}

#[test]
fn adding_an_event_already_in_the_group_records_nothing() {
    given(&americas_with_usa_inside())
        .when(Command::AddEventToGroup { group_id: usa(), event_id: event_id(NYC) })
        .then(&[]);
}

#[test]
fn adding_an_event_to_an_unknown_group_is_refused() {
    given(&[])
        .when(Command::AddEventToGroup { group_id: emea(), event_id: event_id(PARIS) })
        .then_error(DomainError::NotFound { resource: Resource::Group, id: emea().to_string() });
}

#[test]
fn removing_an_event_from_its_group_records_it() {
    given(&americas_with_usa_inside())
        .when(Command::RemoveEventFromGroup { group_id: usa(), event_id: event_id(NYC) })
        .then(&[Event::EventRemovedFromGroup { group_id: usa(), event_id: event_id(NYC) }]);
}

#[test]
fn removing_an_event_that_is_only_in_another_group_is_refused() {
    given(&americas_with_usa_inside())
        .when(Command::RemoveEventFromGroup { group_id: americas(), event_id: event_id(NYC) })
        .then_error(DomainError::EventNotInGroup { group_id: americas(), event_id: event_id(NYC) });
}

// ---------------------------------------------------------------------------------------
// Event access.
// ---------------------------------------------------------------------------------------

#[test]
fn setting_event_access_records_the_groups() {
    let mut history = americas_with_usa_inside();
    history.extend([group_created(emea(), "EMEA", None), user_created(alice(), "Alice")]);
    given(&history)
        .when(Command::SetUserEventAccess {
            user_id: alice(),
            access: EventAccess::Groups(BTreeSet::from([emea(), americas()])),
        })
        .then(&[access_to_groups(alice(), &[americas(), emea()])]);
}

#[test]
fn setting_event_access_to_all_events_records_it() {
    given(&[user_created(alice(), "Alice")])
        .when(Command::SetUserEventAccess { user_id: alice(), access: EventAccess::AllEvents })
        .then(&[access_to_all_events(alice())]);
}

#[test]
fn setting_event_access_to_an_unknown_group_is_refused() {
    let mut history = americas_with_usa_inside();
    history.push(user_created(alice(), "Alice"));
    given(&history)
        .when(Command::SetUserEventAccess {
            user_id: alice(),
            access: EventAccess::Groups(BTreeSet::from([americas(), unknown_group()])),
        })
        .then_error(DomainError::NotFound { resource: Resource::Group, id: unknown_group().to_string() });
}

#[test]
fn setting_the_same_groups_again_records_nothing() {
    let mut history = americas_with_usa_inside();
    history.extend([user_created(alice(), "Alice"), access_to_groups(alice(), &[americas(), usa()])]);
    given(&history)
        .when(Command::SetUserEventAccess {
            user_id: alice(),
            access: EventAccess::Groups(BTreeSet::from([usa(), americas()])),
        })
        .then(&[]);
}

#[test]
fn setting_all_events_access_again_records_nothing() {
    given(&[user_created(alice(), "Alice"), access_to_all_events(alice())])
        .when(Command::SetUserEventAccess { user_id: alice(), access: EventAccess::AllEvents })
        .then(&[]);
}

#[test]
fn a_new_user_has_no_event_access_so_setting_none_records_nothing() {
    given(&[user_created(alice(), "Alice")])
        .when(Command::SetUserEventAccess { user_id: alice(), access: EventAccess::Groups(BTreeSet::new()) })
        .then(&[]);
}

// ---------------------------------------------------------------------------------------
// Generating and revoking keys.
// ---------------------------------------------------------------------------------------

fn generate_key(
    key_id: KeyId,
    key_hash: KeyHash,
    expires_at: Option<Timestamp>,
    grace_seconds: Option<u64>,
) -> Command {
    Command::GenerateKey { user_id: booking_app(), key_id, key_hash, expires_at, grace_seconds }
}

#[test]
fn a_users_first_key_replaces_nothing() {
    let expires_at = Some(seconds_after(NOW, 86_400));
    given(&[user_created(booking_app(), "Booking app")])
        .when(generate_key(first_key(), key_hash(1), expires_at, Some(3600)))
        .then(&[key_generated(booking_app(), first_key(), key_hash(1), expires_at)]);
}

#[test]
fn a_key_that_would_expire_at_or_before_the_time_of_the_command_is_refused() {
    let history = [user_created(booking_app(), "Booking app")];
    given(&history)
        .when(generate_key(first_key(), key_hash(1), Some(NOW), None))
        .then_error(DomainError::ExpiryInThePast);
    given(&history)
        .when(generate_key(first_key(), key_hash(1), Some(seconds_before(NOW, 1)), None))
        .then_error(DomainError::ExpiryInThePast);
}

#[test]
fn generating_a_key_for_an_unknown_user_is_refused() {
    given(&[])
        .when(generate_key(first_key(), key_hash(1), None, None))
        .then_error(DomainError::NotFound { resource: Resource::User, id: booking_app().to_string() });
}

#[test]
fn a_new_key_without_grace_names_the_key_it_replaces_and_stops_it_at_once() {
    let history =
        [user_created(booking_app(), "Booking app"), key_generated(booking_app(), first_key(), key_hash(1), None)];
    let expected = [key_replaced(booking_app(), second_key(), key_hash(2), first_key(), None)];
    given(&history).when(generate_key(second_key(), key_hash(2), None, None)).then(&expected);
    given(&history).when(generate_key(second_key(), key_hash(2), None, Some(0))).then(&expected);
}

#[test]
fn a_grace_period_keeps_the_replaced_key_working_until_now_plus_grace() {
    given(&[
        user_created(booking_app(), "Booking app"),
        key_generated(booking_app(), first_key(), key_hash(1), Some(seconds_after(NOW, 86_400))),
    ])
    .when(generate_key(second_key(), key_hash(2), None, Some(3600)))
    .then(&[key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_after(NOW, 3600)))]);
}

#[test]
fn a_grace_period_never_outlives_the_replaced_keys_own_expiry() {
    let first_key_expiry = seconds_after(NOW, 600);
    given(&[
        user_created(booking_app(), "Booking app"),
        key_generated(booking_app(), first_key(), key_hash(1), Some(first_key_expiry)),
    ])
    .when(generate_key(second_key(), key_hash(2), None, Some(3600)))
    .then(&[key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(first_key_expiry))]);
}

// A grace period is capped at 30 days, so its end is always a time a record can hold and
// replay can read back (issue #2: a longer one once produced an unreadable record).
#[test]
fn a_key_generated_with_any_accepted_grace_period_can_be_read_back_from_its_recorded_form() {
    let history =
        [user_created(booking_app(), "Booking app"), key_generated(booking_app(), first_key(), key_hash(1), None)];
    for grace_seconds in [3600, 300_000_000_000, u64::MAX] {
        let events = given(&history)
            .when(generate_key(second_key(), key_hash(2), None, Some(grace_seconds)))
            .events_if_accepted();
        for event in events {
            let recorded = serde_json::to_string(&event).expect("events serialise");
            assert_eq!(
                serde_json::from_str::<Event>(&recorded).ok(),
                Some(event),
                "a grace period of {grace_seconds} seconds was recorded as {recorded}"
            );
        }
    }
}

#[test]
fn a_grace_period_longer_than_thirty_days_is_refused() {
    given(&[user_created(booking_app(), "Booking app"), key_generated(booking_app(), first_key(), key_hash(1), None)])
        .when(generate_key(second_key(), key_hash(2), None, Some(MAX_GRACE_SECONDS + 1)))
        .then_error(DomainError::GracePeriodTooLong { max: MAX_GRACE_SECONDS });
}

#[test]
fn an_administrator_cannot_deactivate_admin_functions_on_a_role_they_hold() {
    given(&the_administrator())
        .when(Command::DeactivateFunctions {
            role_id: root(),
            functions: [FunctionId::USERS_MANAGE].into_iter().collect(),
        })
        .then_error(DomainError::SelfLockout { action: "deactivate admin functions on a role you hold" });
}

#[test]
fn revoking_revokes_the_current_key_and_the_key_still_in_its_grace_period() {
    given(&[
        user_created(booking_app(), "Booking app"),
        key_generated(booking_app(), first_key(), key_hash(1), None),
        key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_after(NOW, 60))),
    ])
    .when(Command::RevokeKey { user_id: booking_app() })
    .then(&[key_revoked(booking_app(), second_key()), key_revoked(booking_app(), first_key())]);
}

#[test]
fn revoking_leaves_alone_a_replaced_key_whose_grace_period_is_over() {
    given(&[
        user_created(booking_app(), "Booking app"),
        key_generated(booking_app(), first_key(), key_hash(1), None),
        key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_before(NOW, 1))),
    ])
    .when(Command::RevokeKey { user_id: booking_app() })
    .then(&[key_revoked(booking_app(), second_key())]);
}

#[test]
fn revoking_when_the_user_has_no_key_is_refused() {
    given(&[user_created(booking_app(), "Booking app")])
        .when(Command::RevokeKey { user_id: booking_app() })
        .then_error(DomainError::NoKey { user_id: booking_app() });
}

#[test]
fn revoking_a_key_twice_is_refused_the_second_time() {
    given(&[
        user_created(booking_app(), "Booking app"),
        key_generated(booking_app(), first_key(), key_hash(1), None),
        key_revoked(booking_app(), first_key()),
    ])
    .when(Command::RevokeKey { user_id: booking_app() })
    .then_error(DomainError::NoKey { user_id: booking_app() });
}

// ---------------------------------------------------------------------------------------
// If-Match.
// ---------------------------------------------------------------------------------------

#[test]
fn a_stale_if_match_version_of_a_user_is_refused() {
    // Alice was created at position 1 and last changed at position 3.
    let history = [user_created(alice(), "Alice"), user_created(bob(), "Bob"), user_disabled(alice())];
    given(&history)
        .if_match(1)
        .when(Command::EnableUser { user_id: alice() })
        .then_error(DomainError::VersionMismatch { resource: Resource::User, expected: 1, actual: 3 });
}

#[test]
fn the_current_if_match_version_of_a_user_lets_the_command_through() {
    let history = [user_created(alice(), "Alice"), user_created(bob(), "Bob"), user_disabled(alice())];
    given(&history)
        .if_match(3)
        .when(Command::EnableUser { user_id: alice() })
        .then(&[Event::UserEnabled { user_id: alice() }]);
}

#[test]
fn if_match_on_a_role_compares_the_position_of_the_roles_last_event_not_the_head() {
    // The role was last changed at position 2; the log's head is at 3.
    let history = [
        role_created(editors(), "Editors"),
        activated(editors(), "security.users.read"),
        user_created(alice(), "Alice"),
    ];
    let command =
        || Command::ActivateFunctions { role_id: editors(), functions: functions(&["security.users.manage"]) };
    given(&history).if_match(3).when(command()).then_error(DomainError::VersionMismatch {
        resource: Resource::Role,
        expected: 3,
        actual: 2,
    });
    given(&history).if_match(2).when(command()).then(&[activated(editors(), "security.users.manage")]);
}

#[test]
fn if_match_on_a_group_compares_the_position_of_the_groups_last_event() {
    // "USA" was created at position 2 and had New York added at position 3.
    let history = americas_with_usa_inside();
    let command = || Command::AddEventToGroup { group_id: usa(), event_id: event_id(PARIS) };
    given(&history).if_match(2).when(command()).then_error(DomainError::VersionMismatch {
        resource: Resource::Group,
        expected: 2,
        actual: 3,
    });
    given(&history).if_match(3).when(command()).then(&[event_added(usa(), PARIS)]);
}

// ---------------------------------------------------------------------------------------
// The key check: one test per reason, then grace periods and nested groups.
// ---------------------------------------------------------------------------------------

#[test]
fn a_key_whose_role_has_the_function_is_granted_and_the_decision_names_its_user_and_key() {
    let secret = new_secret();
    let ledger = given(&booking_app_with_key(secret.hash()));
    let booking_app = booking_app();
    let first_key = first_key();
    assert_eq!(
        ledger.checked(secret.expose(), "api.events.read", None),
        Decision {
            reason: Reason::Granted,
            user_id: Some(&booking_app),
            key_id: Some(&first_key),
            key_hash: Some(secret.hash())
        }
    );
}

#[test]
fn a_string_that_is_not_a_keyledger_key_is_malformed() {
    let secret = new_secret();
    let ledger = given(&booking_app_with_key(secret.hash()));
    let mut mistyped = secret.expose().to_owned();
    let last = if mistyped.ends_with('a') { "b" } else { "a" };
    mistyped.replace_range(mistyped.len() - 1.., last);
    for junk in ["", "Bearer token", "kl_short", mistyped.as_str()] {
        assert_eq!(ledger.check(junk, "api.events.read", None), "malformed_key", "{junk:?}");
    }
}

#[test]
fn a_well_formed_key_that_was_never_generated_is_unknown_and_names_no_one() {
    let ledger = given(&booking_app_with_key(new_secret().hash()));
    assert_eq!(
        ledger.checked(new_secret().expose(), "api.events.read", None),
        Decision { reason: Reason::UnknownKey, user_id: None, key_id: None, key_hash: None }
    );
}

#[test]
fn a_revoked_key_is_refused_as_revoked() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.push(key_revoked(booking_app(), first_key()));
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", None), "revoked_key");
}

#[test]
fn a_key_works_until_its_expiry_and_is_refused_as_expired_from_then_on() {
    let secret = new_secret();
    let expiry = seconds_after(NOW, 60);
    let mut history = booking_app_with_key(secret.hash());
    // The booking app's key is replaced by one that expires in a minute.
    let expiring = new_secret();
    history.push(Event::KeyGenerated {
        user_id: booking_app(),
        key_id: second_key(),
        key_hash: expiring.hash(),
        expires_at: Some(expiry),
        replaced_key_id: Some(first_key()),
        replaced_key_valid_until: None,
    });
    assert_eq!(
        given(&history).at(seconds_before(expiry, 1)).check(expiring.expose(), "api.events.read", None),
        "granted"
    );
    assert_eq!(given(&history).at(expiry).check(expiring.expose(), "api.events.read", None), "expired_key");
}

#[test]
fn a_key_of_a_disabled_user_is_refused() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.push(user_disabled(booking_app()));
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", None), "user_disabled");
}

#[test]
fn a_function_none_of_the_users_roles_has_active_is_not_granted() {
    let secret = new_secret();
    let ledger = given(&booking_app_with_key(secret.hash()));
    assert_eq!(ledger.check(secret.expose(), "api.invoices.read", None), "function_not_granted");
    assert_eq!(ledger.check(secret.expose(), "security.users.read", None), "function_not_granted");
}

#[test]
fn a_function_held_through_any_of_a_persons_roles_is_granted() {
    let secret = new_secret();
    let mut history = alice_the_editor();
    history.extend([
        role_created(reporting(), "Reporting"),
        activated(reporting(), "security.audit.read"),
        assigned(alice(), reporting()),
        key_generated(alice(), first_key(), secret.hash(), None),
    ]);
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "security.users.manage", None), "granted");
    assert_eq!(ledger.check(secret.expose(), "security.audit.read", None), "granted");
    assert_eq!(ledger.check(secret.expose(), "security.roles.manage", None), "function_not_granted");
}

#[test]
fn a_function_missing_from_the_catalogue_is_unknown() {
    let secret = new_secret();
    let ledger = given(&booking_app_with_key(secret.hash()));
    assert_eq!(ledger.check(secret.expose(), "api.events.write", None), "unknown_function");
}

#[test]
fn an_event_outside_the_users_event_access_is_not_accessible() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", Some(NYC)), "event_not_accessible");
}

#[test]
fn the_key_is_judged_before_the_request() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.push(key_revoked(booking_app(), first_key()));
    assert_eq!(given(&history).check(secret.expose(), "api.events.write", Some(NYC)), "revoked_key");
}

#[test]
fn a_key_replaced_without_grace_is_unknown_at_once() {
    let first = new_secret();
    let second = new_secret();
    let mut history = booking_app_with_key(first.hash());
    history.push(key_replaced(booking_app(), second_key(), second.hash(), first_key(), None));
    let ledger = given(&history);
    assert_eq!(ledger.check(first.expose(), "api.events.read", None), "unknown_key");
    assert_eq!(ledger.check(second.expose(), "api.events.read", None), "granted");
}

#[test]
fn a_key_replaced_with_grace_works_until_the_grace_period_ends() {
    let first = new_secret();
    let second = new_secret();
    let valid_until = seconds_after(NOW, 3600);
    let mut history = booking_app_with_key(first.hash());
    history.push(key_replaced(booking_app(), second_key(), second.hash(), first_key(), Some(valid_until)));

    let first_key = first_key();
    let during_grace = given(&history).at(seconds_before(valid_until, 1));
    assert_eq!(during_grace.checked(first.expose(), "api.events.read", None).key_id, Some(&first_key));
    assert_eq!(during_grace.check(first.expose(), "api.events.read", None), "granted");
    assert_eq!(during_grace.check(second.expose(), "api.events.read", None), "granted");

    let after_grace = given(&history).at(valid_until);
    assert_eq!(after_grace.check(first.expose(), "api.events.read", None), "unknown_key");
    assert_eq!(after_grace.check(second.expose(), "api.events.read", None), "granted");
}

#[test]
fn a_key_in_its_grace_period_is_gone_once_it_is_replaced_again() {
    let first = new_secret();
    let mut history = booking_app_with_key(first.hash());
    history.extend([
        key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_after(NOW, 3600))),
        key_replaced(booking_app(), key_id("key_0000000000000003"), key_hash(3), second_key(), None),
    ]);
    assert_eq!(given(&history).check(first.expose(), "api.events.read", None), "unknown_key");
}

#[test]
fn revoking_a_key_in_its_grace_period_stops_it_before_the_period_ends() {
    let first = new_secret();
    let mut history = booking_app_with_key(first.hash());
    history.extend([
        key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_after(NOW, 3600))),
        key_revoked(booking_app(), second_key()),
        key_revoked(booking_app(), first_key()),
    ]);
    assert_eq!(given(&history).check(first.expose(), "api.events.read", None), "revoked_key");
}

#[test]
fn access_to_a_parent_group_reaches_the_events_of_its_subgroups() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.push(access_to_groups(booking_app(), &[americas()]));
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(LIMA)), "granted");
}

#[test]
fn access_to_a_subgroup_does_not_reach_events_placed_only_in_its_parent() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.push(access_to_groups(booking_app(), &[usa()]));
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(LIMA)), "event_not_accessible");
}

#[test]
fn an_event_removed_from_a_group_is_no_longer_reached_through_it() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.extend([
        access_to_groups(booking_app(), &[americas()]),
        Event::EventRemovedFromGroup { group_id: usa(), event_id: event_id(NYC) },
    ]);
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", Some(NYC)), "event_not_accessible");
}

#[test]
fn issue_9_an_event_removed_from_a_subgroup_is_still_reached_through_the_parent_that_holds_it_too() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.extend([
        event_added(americas(), NYC),
        access_to_groups(booking_app(), &[americas()]),
        Event::EventRemovedFromGroup { group_id: usa(), event_id: event_id(NYC) },
    ]);
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", Some(NYC)), "granted");
}

#[test]
fn issue_9_an_event_in_two_groups_removed_from_one_is_reached_only_through_the_other() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.extend([
        group_created(emea(), "EMEA", None),
        event_added(emea(), NYC),
        Event::EventRemovedFromGroup { group_id: usa(), event_id: event_id(NYC) },
    ]);
    let mut through_emea = history.clone();
    through_emea.push(access_to_groups(booking_app(), &[emea()]));
    assert_eq!(given(&through_emea).check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    history.push(access_to_groups(booking_app(), &[americas()]));
    assert_eq!(given(&history).check(secret.expose(), "api.events.read", Some(NYC)), "event_not_accessible");
}

#[test]
fn issue_9_an_event_at_the_deepest_level_is_reached_through_the_outermost_group_only_from_above() {
    let secret = new_secret();
    let (ids, groups) = nested_groups(Group::MAX_DEPTH);
    let deepest = ids[ids.len() - 1].clone();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(groups);
    history.push(event_added(deepest.clone(), NYC));
    history.push(event_added(ids[10].clone(), LIMA));
    history.push(access_to_groups(booking_app(), &[ids[0].clone()]));
    let outermost = given(&history);
    assert_eq!(outermost.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(outermost.check(secret.expose(), "api.events.read", Some(LIMA)), "granted");
    history.push(access_to_groups(booking_app(), &[ids[20].clone()]));
    let middle = given(&history);
    assert_eq!(middle.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(middle.check(secret.expose(), "api.events.read", Some(LIMA)), "event_not_accessible");
}

#[test]
fn all_events_access_reaches_even_an_event_in_no_group() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.push(access_to_all_events(booking_app()));
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(PARIS)), "granted");
}

#[test]
fn a_check_of_an_account_wide_function_that_names_no_event_ignores_event_access() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.events.read", None), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(NYC)), "event_not_accessible");
}

// ---------------------------------------------------------------------------------------
// Refused admin requests and key usage: records of what keys did, which change no
// permission and no version.
// ---------------------------------------------------------------------------------------

fn denial(key_hash: KeyHash, target: Option<&str>, suppressed: u32) -> Command {
    Command::RecordAdminAccessDenied {
        key_hash,
        operation: "createRole".to_owned(),
        function: function("security.roles.manage"),
        target: target.map(str::to_owned),
        suppressed,
    }
}

fn denied(user_id: UserId, key_id: KeyId, target: Option<&str>, suppressed: u32) -> Event {
    Event::AdminAccessDenied {
        user_id,
        key_id,
        operation: "createRole".to_owned(),
        function: function("security.roles.manage"),
        target: target.map(str::to_owned),
        suppressed,
    }
}

fn usage(key_hash: KeyHash, allowed: u64, refused: u64, first: Timestamp, last: Timestamp) -> KeyUsage {
    KeyUsage { key_hash, allowed, refused, first_used_at: first, last_used_at: last, functions: Vec::new() }
}

fn usage_recorded(
    user_id: UserId,
    key_id: KeyId,
    allowed: u64,
    refused: u64,
    first: Timestamp,
    last: Timestamp,
) -> Event {
    Event::KeyUsageRecorded { user_id, key_id, allowed, refused, first_used_at: first, last_used_at: last }
}

/// The `KeyUsageIntervalRecorded` of these keys' usage, each as (user, key, allowed,
/// refused, first, last), in the order given.
fn interval_recorded(keys: &[(UserId, KeyId, u64, u64, Timestamp, Timestamp)]) -> Event {
    let from = keys.iter().map(|used| used.4).min().expect("some keys");
    let to = keys.iter().map(|used| used.5).max().expect("some keys");
    let after = |at: Timestamp| u64::try_from(at.unix_millis() - from.unix_millis()).expect("not before from");
    let keys = keys
        .iter()
        .map(|(user_id, key_id, allowed, refused, first, last)| KeyUse {
            user_id: user_id.clone(),
            key_id: key_id.clone(),
            allowed: *allowed,
            refused: *refused,
            first_after: after(*first),
            last_after: after(*last),
            functions: Some(Vec::new()),
        })
        .collect();
    Event::KeyUsageIntervalRecorded { from, to, keys }
}

#[test]
fn a_refused_admin_request_is_recorded_with_the_keys_user_and_key_the_operation_and_the_target() {
    given(&booking_app_with_key(key_hash(1)))
        .by(Actor::User(booking_app()))
        .when(denial(key_hash(1), Some("role_00000000000000ad"), 17))
        .then(&[denied(booking_app(), first_key(), Some("role_00000000000000ad"), 17)]);
}

#[test]
fn a_refusal_of_a_key_no_longer_known_records_nothing_and_is_not_an_error() {
    given(&booking_app_with_key(key_hash(1))).when(denial(key_hash(2), None, 0)).then(&[]);
}

#[test]
fn a_refusals_target_is_cut_to_64_characters() {
    let long = "x".repeat(500);
    let events = given(&booking_app_with_key(key_hash(1)))
        .by(Actor::User(booking_app()))
        .when(denial(key_hash(1), Some(&long), 0))
        .events();
    let [Event::AdminAccessDenied { target: Some(target), .. }] = events.as_slice() else {
        panic!("one AdminAccessDenied with a target: {events:?}");
    };
    assert_eq!(target.chars().count(), MAX_DENIAL_TARGET_CHARS);
}

#[test]
fn key_usage_is_recorded_per_known_key_skipping_unknown_keys_and_empty_counts() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend(alice_the_editor());
    history.push(key_generated(alice(), second_key(), key_hash(2), None));
    let (first, last) = (seconds_after(RECORDED_AT, 10), seconds_after(RECORDED_AT, 20));
    given(&history)
        .by(Actor::System)
        .when(Command::RecordKeyUsage {
            usage: vec![
                usage(key_hash(1), 40, 2, first, last),
                usage(key_hash(9), 5, 0, first, last),
                usage(key_hash(2), 0, 0, first, last),
                usage(key_hash(2), 0, 3, last, last),
            ],
        })
        .then(&[interval_recorded(&[
            (alice(), second_key(), 0, 3, last, last),
            (booking_app(), first_key(), 40, 2, first, last),
        ])]);
}

/// Issue #11: the log grows by a number of usage records that does not depend on how many
/// keys were used, up to `MAX_KEYS_PER_USAGE_RECORD` keys per record.
#[test]
fn any_number_of_keys_used_up_to_the_bound_is_one_record_and_more_are_split_into_bounded_records() {
    let users = 2 * MAX_KEYS_PER_USAGE_RECORD + 1;
    let hash_of = |n: usize| KeyHash::try_from(format!("{:064x}", n + 1)).expect("a key hash");
    let mut history = Vec::new();
    for n in 0..users {
        let user = user_id(&format!("usr_{:016x}", n + 1));
        history.push(user_created(user.clone(), &format!("App {n}")));
        history.push(key_generated(user, key_id(&format!("key_{:016x}", n + 1)), hash_of(n), None));
    }
    let ledger = given(&history).by(Actor::System);
    let record_sizes = |keys: usize| -> Vec<usize> {
        let usage = (0..keys).map(|n| usage(hash_of(n), 1, 0, NOW, NOW)).collect();
        let events = Scenario { state: ledger.state.clone(), context: ledger.context.clone() }
            .when(Command::RecordKeyUsage { usage })
            .events();
        events
            .iter()
            .map(|event| match event {
                Event::KeyUsageIntervalRecorded { keys, .. } => keys.len(),
                other => panic!("only usage records: {other:?}"),
            })
            .collect()
    };
    for keys in [1, 2, 100, MAX_KEYS_PER_USAGE_RECORD] {
        assert_eq!(record_sizes(keys), [keys], "{keys} keys are one record");
    }
    let bound = MAX_KEYS_PER_USAGE_RECORD;
    assert_eq!(record_sizes(bound + 1), [bound, 1]);
    assert_eq!(record_sizes(2 * bound + 1), [bound, bound, 1]);
}

#[test]
fn an_interval_record_sets_each_keys_last_use_and_moves_no_version() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend(alice_the_editor());
    history.push(key_generated(alice(), second_key(), key_hash(2), None));
    let before = given(&history);
    let (first, last) = (seconds_after(RECORDED_AT, 10), seconds_after(RECORDED_AT, 20));
    history.push(interval_recorded(&[
        (alice(), second_key(), 0, 3, first, first),
        (booking_app(), first_key(), 40, 2, first, last),
    ]));
    let after = given(&history);
    assert_eq!(after.state.key(&key_hash(1)).and_then(Key::last_used_at), Some(last));
    assert_eq!(after.state.key(&key_hash(2)).and_then(Key::last_used_at), Some(first));
    for user in [alice(), booking_app()] {
        assert_eq!(after.state.user(&user).map(User::version), before.state.user(&user).map(User::version));
    }
    assert_eq!(after.state.fingerprint(), before.state.fingerprint(), "usage grants nothing");
}

#[test]
fn a_revoked_key_still_tried_is_recorded_so_the_trail_shows_it() {
    let mut history = booking_app_with_key(key_hash(1));
    history.push(key_revoked(booking_app(), first_key()));
    given(&history)
        .by(Actor::System)
        .when(Command::RecordKeyUsage { usage: vec![usage(key_hash(1), 0, 4, NOW, NOW)] })
        .then(&[interval_recorded(&[(booking_app(), first_key(), 0, 4, NOW, NOW)])]);
}

#[test]
fn usage_and_refusal_records_ignore_if_match_because_they_change_no_resource() {
    let history = booking_app_with_key(key_hash(1));
    given(&history)
        .by(Actor::System)
        .if_match(1)
        .when(Command::RecordKeyUsage { usage: vec![usage(key_hash(1), 1, 0, NOW, NOW)] })
        .then(&[interval_recorded(&[(booking_app(), first_key(), 1, 0, NOW, NOW)])]);
    given(&history).by(Actor::User(booking_app())).if_match(1).when(denial(key_hash(1), None, 0)).then(&[denied(
        booking_app(),
        first_key(),
        None,
        0,
    )]);
}

#[test]
fn recorded_usage_sets_the_keys_last_use_and_moves_no_version_and_no_check_answer() {
    let secret = new_secret();
    let history = booking_app_with_key(secret.hash());
    let before = given(&history);
    let used_at = seconds_after(RECORDED_AT, 30);
    let mut after_usage = history.clone();
    after_usage.push(usage_recorded(booking_app(), first_key(), 3, 1, RECORDED_AT, used_at));
    after_usage.push(denied(booking_app(), first_key(), None, 0));
    let after = given(&after_usage);

    assert_eq!(before.state.key(&secret.hash()).and_then(Key::last_used_at), None);
    assert_eq!(after.state.key(&secret.hash()).and_then(Key::last_used_at), Some(used_at));
    let version = |scenario: &Scenario| scenario.state.user(&booking_app()).map(User::version);
    assert_eq!(version(&after), version(&before), "a user's ETag does not move because its key was used");
    let role_version = |scenario: &Scenario| scenario.state.role(&api_access()).map(Role::version);
    assert_eq!(role_version(&after), role_version(&before));
    assert_eq!(after.state.head(), before.state.head() + 2);
    for function in FunctionId::all() {
        assert_eq!(
            after.check(secret.expose(), function.as_str(), None),
            before.check(secret.expose(), function.as_str(), None)
        );
    }
}

#[test]
fn an_older_usage_record_does_not_move_the_last_use_back() {
    let mut history = booking_app_with_key(key_hash(1));
    let (earlier, later) = (seconds_after(RECORDED_AT, 10), seconds_after(RECORDED_AT, 20));
    history.push(usage_recorded(booking_app(), first_key(), 1, 0, later, later));
    history.push(usage_recorded(booking_app(), first_key(), 1, 0, earlier, earlier));
    assert_eq!(given(&history).state.key(&key_hash(1)).and_then(Key::last_used_at), Some(later));
}

#[test]
fn usage_of_a_key_in_its_grace_period_sets_that_keys_last_use_not_the_new_ones() {
    let mut history = booking_app_with_key(key_hash(1));
    history.push(key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(seconds_after(NOW, 60))));
    history.push(usage_recorded(booking_app(), first_key(), 1, 0, NOW, NOW));
    let ledger = given(&history);
    assert_eq!(ledger.state.key(&key_hash(1)).and_then(Key::last_used_at), Some(NOW));
    assert_eq!(ledger.state.key(&key_hash(2)).and_then(Key::last_used_at), None);
}

#[test]
fn merging_usage_adds_the_counts_and_widens_the_span() {
    let (t1, t2, t3) = (seconds_after(NOW, 1), seconds_after(NOW, 2), seconds_after(NOW, 3));
    let mut counted = KeyUsage::of_one_check(key_hash(1), true, t2);
    counted.merge(&KeyUsage::of_one_check(key_hash(1), false, t1));
    counted.merge(&usage(key_hash(1), 5, 5, t3, t3));
    assert_eq!(counted, usage(key_hash(1), 6, 6, t1, t3));
}

// ---------------------------------------------------------------------------------------
// The access review report.
// ---------------------------------------------------------------------------------------

const DAY: u64 = 24 * 60 * 60;

fn report_row(scenario: &Scenario, user: &UserId) -> AccessReviewRow {
    access_report(&scenario.state, scenario.context.now)
        .into_iter()
        .find(|row| row.user_id == *user)
        .expect("every user has a row")
}

#[test]
fn the_report_has_one_row_per_user_in_creation_order_with_roles_functions_access_and_key() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend(alice_the_editor());
    history.extend(americas_with_usa_inside());
    history.push(access_to_groups(booking_app(), &[usa()]));
    let ledger = given(&history).at(seconds_after(RECORDED_AT, 3 * DAY + 5));
    let rows = access_report(&ledger.state, ledger.context.now);
    // The scenario's administrator comes after the history.
    assert_eq!(rows.iter().map(|row| row.user_id.clone()).collect::<Vec<_>>(), [booking_app(), alice(), admin()]);

    let app = &rows[0];
    assert_eq!(app.name, "Booking app");
    assert!(app.enabled);
    assert_eq!(app.roles, [HeldRole { id: api_access(), description: "API Access".to_owned() }]);
    assert_eq!(
        app.functions.iter().map(FunctionId::as_str).collect::<Vec<_>>(),
        ["api.attendees.read", "api.events.read"]
    );
    assert_eq!(app.event_access, EventAccess::Groups([usa()].into()));
    let key = app.key.as_ref().expect("a key");
    assert_eq!((key.key_id.clone(), key.created_at, key.age_days), (first_key(), RECORDED_AT, 3));
    assert_eq!((key.expires_at, key.last_used_at), (None, None));
    assert_eq!(app.flags, ReviewFlags::default(), "a read-only API user with a young key is flagged for nothing");
    assert_eq!(rows[1].key, None);
}

#[test]
fn a_write_function_on_an_api_role_is_flagged_and_read_functions_or_admin_roles_are_not() {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend(alice_the_editor());
    let read_only = given(&history);
    assert!(!report_row(&read_only, &booking_app()).flags.write_on_api_role);
    assert!(!report_row(&read_only, &alice()).flags.write_on_api_role, "admin functions are not API writes");
    history.push(activated(api_access(), "api.invoices.write"));
    assert!(report_row(&given(&history), &booking_app()).flags.write_on_api_role);
}

#[test]
fn a_key_is_old_after_90_days_and_unused_if_not_used_in_the_last_90_days() {
    let mut history = booking_app_with_key(key_hash(1));
    let flags = |history: &[Event], days: u64| {
        report_row(&given(history).at(seconds_after(RECORDED_AT, days * DAY + 1)), &booking_app()).flags
    };

    // Ninety days and a second: the key is young enough yet; exactly 90 days is not "older".
    let young = report_row(&given(&history).at(seconds_after(RECORDED_AT, 90 * DAY)), &booking_app()).flags;
    assert!(!young.key_older_than_90_days && !young.key_unused_90_days);
    // Never used and older than 90 days: both flags.
    let never_used = flags(&history, 90);
    assert!(never_used.key_older_than_90_days && never_used.key_unused_90_days);

    // Used 10 days after it was generated: unused once that use is more than 90 days old.
    history.push(usage_recorded(booking_app(), first_key(), 1, 0, RECORDED_AT, seconds_after(RECORDED_AT, 10 * DAY)));
    let recently_used = flags(&history, 95);
    assert!(recently_used.key_older_than_90_days && !recently_used.key_unused_90_days);
    let long_unused = flags(&history, 101);
    assert!(long_unused.key_older_than_90_days && long_unused.key_unused_90_days);
    assert_eq!(
        report_row(&given(&history).at(seconds_after(RECORDED_AT, 101 * DAY)), &booking_app()).key.map(|k| k.age_days),
        Some(101)
    );
}

#[test]
fn a_disabled_user_whose_key_still_works_is_flagged_and_one_whose_key_does_not_is_not() {
    let mut history = booking_app_with_key(key_hash(1));
    history.push(user_disabled(booking_app()));
    assert!(report_row(&given(&history), &booking_app()).flags.disabled_user_with_active_key);

    let mut revoked = history.clone();
    revoked.push(key_revoked(booking_app(), first_key()));
    assert!(!report_row(&given(&revoked), &booking_app()).flags.disabled_user_with_active_key);

    let mut expired = vec![user_created(booking_app(), "Booking app")];
    expired.push(key_generated(booking_app(), first_key(), key_hash(1), Some(seconds_after(RECORDED_AT, 60))));
    expired.push(user_disabled(booking_app()));
    assert!(!report_row(&given(&expired), &booking_app()).flags.disabled_user_with_active_key);

    let enabled = booking_app_with_key(key_hash(1));
    assert!(!report_row(&given(&enabled), &booking_app()).flags.disabled_user_with_active_key);
}

// ---------------------------------------------------------------------------------------
// Random command sequences: the invariants hold after every step, and replaying the
// decided events (through their JSON form, as the log stores them) gives the same answers.
// ---------------------------------------------------------------------------------------

const SEEDS: u64 = 200;
const STEPS_PER_SEED: usize = 80;

const FUNCTION_POOL: [&str; 6] = [
    "api.attendees.read",
    "api.events.read",
    "api.people.write",
    "security.users.read",
    "security.roles.manage",
    "security.audit.read",
];
const NAME_POOL: [&str; 4] = ["Ops", "OPS", "Sales", "Americas"];
const EVENT_POOL: [&str; 3] = [NYC, LIMA, PARIS];

fn user_pool() -> [UserId; 4] {
    [admin(), alice(), bob(), booking_app()]
}
fn role_pool() -> [RoleId; 4] {
    [administrators(), api_access(), editors(), reporting()]
}
fn group_pool() -> [GroupId; 4] {
    [americas(), usa(), emea(), online_in_emea()]
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())].clone()
}

fn random_functions(rng: &mut StdRng) -> BTreeSet<FunctionId> {
    let count = rng.random_range(1..=3);
    (0..count).map(|_| function(pick(rng, &FUNCTION_POOL))).collect()
}

fn random_groups(rng: &mut StdRng) -> BTreeSet<GroupId> {
    let count = rng.random_range(0..=2);
    (0..count).map(|_| pick(rng, &group_pool())).collect()
}

/// A random command (bootstrap aside) over small pools of ids, so that commands often
/// meet each other: many are refused, and that is part of what is exercised. A secret minted for a
/// `GenerateKey` is kept in `secrets`, to be checked later. Creating something whose id
/// is taken is not generated: ids are minted at random by callers, so they do not collide.
fn random_command(rng: &mut StdRng, state: &State, now: Timestamp, secrets: &mut Vec<KeySecret>) -> Option<Command> {
    let user = pick(rng, &user_pool());
    let role = pick(rng, &role_pool());
    let group = pick(rng, &group_pool());
    let event = event_id(pick(rng, &EVENT_POOL));
    let command = match rng.random_range(0..19) {
        0 | 2 => Command::ActivateFunctions { role_id: role, functions: random_functions(rng) },
        1 if state.role(&role).is_none() => {
            Command::CreateRole { role_id: role, description: name(pick(rng, &NAME_POOL)) }
        }
        3 => Command::DeactivateFunctions { role_id: role, functions: random_functions(rng) },
        4 if state.user(&user).is_none() => {
            Command::CreateUser { user_id: user, name: name(pick(rng, &NAME_POOL)), email: None }
        }
        5 => Command::DisableUser { user_id: user },
        6 => Command::EnableUser { user_id: user },
        7 | 8 => Command::AssignRole { user_id: user, role_id: role },
        9 => Command::UnassignRole { user_id: user, role_id: role },
        10 if state.group(&group).is_none() => {
            let parent_id = if rng.random_bool(0.5) { Some(pick(rng, &group_pool())) } else { None };
            Command::CreateEventGroup { group_id: group, name: name(pick(rng, &NAME_POOL)), parent_id }
        }
        11 if rng.random_bool(0.7) => Command::AddEventToGroup { group_id: group, event_id: event },
        11 => Command::RemoveEventFromGroup { group_id: group, event_id: event },
        12 => {
            let access =
                if rng.random_bool(0.2) { EventAccess::AllEvents } else { EventAccess::Groups(random_groups(rng)) };
            Command::SetUserEventAccess { user_id: user, access }
        }
        13 => {
            let secret = KeySecret::generate(rng);
            let expires_at = match rng.random_range(0..4) {
                0 => Some(seconds_before(now, 1)),
                1 => Some(seconds_after(now, rng.random_range(1..7200))),
                _ => None,
            };
            let grace_seconds = match rng.random_range(0..3) {
                0 => None,
                1 => Some(0),
                _ => Some(rng.random_range(1..3600)),
            };
            let command = Command::GenerateKey {
                user_id: user,
                key_id: KeyId::generate(rng),
                key_hash: secret.hash(),
                expires_at,
                grace_seconds,
            };
            secrets.push(secret);
            command
        }
        14 => Command::RevokeKey { user_id: user },
        // Records of what keys did: they must change no answer.
        15 if !secrets.is_empty() => {
            let key_hash = secrets[rng.random_range(0..secrets.len())].hash();
            let usage = if rng.random_bool(0.5) {
                KeyUsage::of_one_check_of(
                    key_hash,
                    pick(rng, &FunctionId::all().collect::<Vec<_>>()),
                    rng.random_bool(0.5),
                    now,
                )
            } else {
                KeyUsage::of_one_check(key_hash, rng.random_bool(0.5), now)
            };
            Command::RecordKeyUsage { usage: vec![usage] }
        }
        16 if !secrets.is_empty() => Command::RecordAdminAccessDenied {
            key_hash: secrets[rng.random_range(0..secrets.len())].hash(),
            operation: "createRole".to_owned(),
            function: FunctionId::ROLES_MANAGE,
            target: Some(role.to_string()),
            suppressed: rng.random_range(0..3),
        },
        17 => {
            let days = |rng: &mut StdRng| rng.random_bool(0.5).then(|| rng.random_range(1..30));
            let (lifetime, unused) = (days(rng), days(rng));
            let policy = KeyPolicy::new(lifetime, rng.random_bool(0.2), unused).expect("days from 1 to 29");
            Command::SetKeyPolicy { policy }
        }
        18 => {
            let secret = KeySecret::generate(rng);
            let command = Command::ImportKey {
                user_id: user,
                key_id: KeyId::generate(rng),
                key_hash: secret.hash(),
                expires_at: None,
                grace_seconds: rng.random_bool(0.5).then(|| rng.random_range(0..3600)),
            };
            secrets.push(secret);
            command
        }
        _ => return None,
    };
    Some(command)
}

/// The commands every sequence starts with, so that random commands mostly meet things
/// that exist: a bootstrap, then the other users and roles of the pools.
fn opening_commands(rng: &mut StdRng, secrets: &mut Vec<KeySecret>) -> Vec<Command> {
    let secret = KeySecret::generate(rng);
    let mut commands = vec![Command::Bootstrap {
        user_id: admin(),
        role_id: administrators(),
        key_id: KeyId::generate(rng),
        key_hash: secret.hash(),
    }];
    secrets.push(secret);
    for user_id in [alice(), bob(), booking_app()] {
        commands.push(Command::CreateUser { user_id, name: name(pick(rng, &NAME_POOL)), email: None });
    }
    for role_id in [api_access(), editors(), reporting()] {
        commands.push(Command::CreateRole { role_id, description: name(pick(rng, &NAME_POOL)) });
    }
    commands
}

/// Step `step` of a random sequence, at `now`: a random context, and the opening's command
/// while it lasts, then a random one (`None` when there is none to make).
fn random_step(
    rng: &mut StdRng,
    state: &State,
    now: Timestamp,
    step: usize,
    opening: &[Command],
    secrets: &mut Vec<KeySecret>,
) -> Option<(Context, Command)> {
    let context = random_context(rng, state, now, step < opening.len());
    let command = match opening.get(step) {
        Some(command) => command.clone(),
        None => random_command(rng, state, now, secrets)?,
    };
    Some((context, command))
}

/// Who asks (sometimes keyledger itself), and now and then an `If-Match` version, which
/// is mostly stale. The opening commands are the bootstrap, by keyledger itself, and the
/// administrator's first users and roles.
fn random_context(rng: &mut StdRng, state: &State, now: Timestamp, opening: bool) -> Context {
    if opening {
        let actor = if state.head() == 0 { Actor::System } else { Actor::User(admin()) };
        return Context { actor, now, expected_version: None, credential: None };
    }
    // Mostly the bootstrapped administrator, so that most commands are within authority;
    // sometimes another user of the pool, whose authority is whatever the sequence gave it.
    let actor = match rng.random_range(0..20) {
        0 => Actor::System,
        1..=12 => Actor::User(admin()),
        _ => Actor::User(pick(rng, &user_pool())),
    };
    let expected_version = rng.random_bool(0.1).then(|| rng.random_range(0..=state.head()));
    Context { actor, now, expected_version, credential: None }
}

/// The rules that no sequence of accepted commands may break.
#[track_caller]
fn assert_invariants(state: &State, seed: u64) {
    let mut descriptions = BTreeSet::new();
    for role in state.roles_after(0) {
        let functions = role.functions();
        assert!(!(functions.has_api() && functions.has_admin()), "seed {seed}: role {} mixes API and admin", role.id());
        assert!(descriptions.insert(role.description().to_lowercase()), "seed {seed}: two roles share a description");
        for holder in role.holders() {
            let user = state.user(holder).expect("a holder is a user");
            assert!(user.roles().contains(role.id()), "seed {seed}: {holder} is a holder without the role");
            if role.is_api_role() {
                assert_eq!(user.roles().len(), 1, "seed {seed}: {holder} holds API role {} beside another", role.id());
            }
        }
    }
    for user in state.users_after(0) {
        for role in user.roles() {
            assert!(
                state.role(role).is_some_and(|role| role.holders().contains(user.id())),
                "seed {seed}: {} holds {role} but is not among its holders",
                user.id()
            );
        }
        if let Some(hash) = user.current_key() {
            assert_eq!(state.key(&hash).map(Key::status), Some(KeyStatus::Active), "seed {seed}: current key");
        }
        if let Some(hash) = user.grace_key() {
            let status = state.key(&hash).map(Key::status);
            assert!(matches!(status, Some(KeyStatus::Replaced { .. })), "seed {seed}: grace key is {status:?}");
        }
    }
    let top_level: Vec<&Group> = state.groups_after(0).filter(|group| group.parent().is_none()).collect();
    let mut sibling_sets: Vec<Vec<&Group>> = vec![top_level];
    sibling_sets
        .extend(state.groups_after(0).map(|group| group.children().iter().filter_map(|id| state.group(id)).collect()));
    for siblings in sibling_sets {
        let mut names = BTreeSet::new();
        for sibling in siblings {
            assert!(names.insert(sibling.name().to_lowercase()), "seed {seed}: two sibling groups share a name");
        }
    }
}

/// Every answer the state gives: its contents, the check of every secret for every
/// function and event at two times, and the decision of a fixed set of probe commands.
/// The key check's rules, written the slow and obvious way from the roles, users and
/// groups, never from the check index that `check` reads.
fn reference_check(state: &State, request: CheckRequest<'_>, now: Timestamp) -> Reason {
    let Ok(hash) = KeyHash::of_presented(request.key) else { return Reason::MalformedKey };
    let Some(key) = state.key(&hash) else { return Reason::UnknownKey };
    match key.status() {
        KeyStatus::Revoked { .. } => return Reason::RevokedKey,
        KeyStatus::Replaced { valid_until } if now >= valid_until => return Reason::UnknownKey,
        _ => {}
    }
    if key.expires_at().is_some_and(|expiry| now >= expiry) {
        return Reason::ExpiredKey;
    }
    let Some(user) = state.user(key.user_id()) else { return Reason::UnknownKey };
    if !user.is_enabled() {
        return Reason::UserDisabled;
    }
    let Ok(function) = FunctionId::parse(request.function) else { return Reason::UnknownFunction };
    let granted = user.roles().iter().filter_map(|id| state.role(id)).any(|role| role.functions().contains(function));
    if !granted {
        return Reason::FunctionNotGranted;
    }
    match (request.event_id, user.event_access()) {
        (Some(_), EventAccess::AllEvents) => {}
        (Some(event), EventAccess::Groups(granted)) => {
            let accessible = state
                .groups_after(0)
                .filter(|group| group.events().iter().any(|e| e.as_str() == event))
                .any(|group| state.ancestry(group.id()).any(|ancestor| granted.contains(ancestor)));
            if !accessible {
                return Reason::EventNotAccessible;
            }
        }
        (None, EventAccess::AllEvents) => {}
        (None, EventAccess::Groups(_)) => {
            if function.scope() == FunctionScope::Event {
                return Reason::EventRequired;
            }
        }
    }
    Reason::Granted
}

/// The fast check agrees with the reference on every key, function and event of the pools.
fn assert_check_matches_reference(state: &State, secrets: &[KeySecret], now: Timestamp, seed: u64) {
    for secret in secrets {
        for function in FUNCTION_POOL.iter().chain(&["security.users.manage", "no.such.function"]) {
            for event in EVENT_POOL.iter().map(Some).chain([None]) {
                let request = CheckRequest { key: secret.expose(), function, event_id: event.copied() };
                let fast = check(state, request, now).reason;
                assert_eq!(fast, reference_check(state, request, now), "seed {seed}: {function} on {event:?}");
            }
        }
    }
}

fn answers(state: &State, secrets: &[KeySecret], now: Timestamp) -> Vec<String> {
    let mut answers = vec![format!("head {}", state.head())];
    answers.extend(state.users_after(0).map(|user| format!("{user:?}")));
    answers.extend(state.roles_after(0).map(|role| format!("{role:?}")));
    answers.extend(state.groups_after(0).map(|group| format!("{group:?}")));
    for at in [now, seconds_after(now, 3600)] {
        for secret in secrets {
            answers.push(format!("{:?}", state.key(&secret.hash())));
            for function in FUNCTION_POOL.iter().chain(&["api.sessions.read", "no.such.function"]) {
                for event in EVENT_POOL.iter().map(Some).chain([None]) {
                    let request = CheckRequest { key: secret.expose(), function, event_id: event.copied() };
                    answers.push(format!("{:?}", check(state, request, at)));
                }
            }
        }
    }
    let context = Context { actor: Actor::User(admin()), now, expected_version: None, credential: None };
    for command in probe_commands() {
        answers.push(format!("{command:?} -> {:?}", decide(state, &context, command.clone())));
    }
    answers
}

/// One command of every kind for every id of the pools.
fn probe_commands() -> Vec<Command> {
    let mut commands = vec![Command::Bootstrap {
        user_id: admin(),
        role_id: administrators(),
        key_id: first_key(),
        key_hash: key_hash(1),
    }];
    for user_id in user_pool() {
        commands.extend([
            Command::DisableUser { user_id: user_id.clone() },
            Command::EnableUser { user_id: user_id.clone() },
            Command::RevokeKey { user_id: user_id.clone() },
            Command::GenerateKey {
                user_id: user_id.clone(),
                key_id: second_key(),
                key_hash: key_hash(2),
                expires_at: None,
                grace_seconds: Some(600),
            },
            Command::SetUserEventAccess { user_id: user_id.clone(), access: EventAccess::AllEvents },
            Command::SetUserEventAccess { user_id: user_id.clone(), access: EventAccess::Groups(BTreeSet::new()) },
        ]);
        for role_id in role_pool() {
            commands.push(Command::AssignRole { user_id: user_id.clone(), role_id: role_id.clone() });
            commands.push(Command::UnassignRole { user_id: user_id.clone(), role_id });
        }
    }
    for role_id in role_pool() {
        for function in FUNCTION_POOL {
            commands.push(Command::ActivateFunctions { role_id: role_id.clone(), functions: functions(&[function]) });
            commands.push(Command::DeactivateFunctions { role_id: role_id.clone(), functions: functions(&[function]) });
        }
    }
    for description in NAME_POOL {
        commands
            .push(Command::CreateRole { role_id: role_id("role_00000000000000fe"), description: name(description) });
        for parent_id in group_pool().into_iter().map(Some).chain([None]) {
            commands.push(Command::CreateEventGroup { group_id: unknown_group(), name: name(description), parent_id });
        }
    }
    for group_id in group_pool() {
        for event in EVENT_POOL {
            commands.push(Command::AddEventToGroup { group_id: group_id.clone(), event_id: event_id(event) });
            commands.push(Command::RemoveEventFromGroup { group_id: group_id.clone(), event_id: event_id(event) });
        }
    }
    commands
}

#[test]
fn random_command_sequences_keep_the_rules_and_replaying_their_events_gives_the_same_answers() {
    let mut accepted_commands = 0;
    let mut deepest_nesting = 0;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut live = State::default();
        let mut log: Vec<(Position, String)> = Vec::new();
        let mut secrets = Vec::new();
        let mut now = RECORDED_AT;
        let opening = opening_commands(&mut rng, &mut secrets);
        let mut fingerprints = FingerprintCache::default();
        for step in 0..STEPS_PER_SEED {
            now = seconds_after(now, rng.random_range(0..900));
            let Some((context, command)) = random_step(&mut rng, &live, now, step, &opening, &mut secrets) else {
                continue;
            };
            let Ok(events) = decide(&live, &context, command) else {
                continue;
            };
            accepted_commands += 1;
            for event in events {
                let position = Position { seq: live.head() + 1, at: now };
                live.apply(position, &event);
                log.push((position, serde_json::to_string(&event).expect("events serialise")));
            }
            assert_invariants(&live, seed);
            assert_check_matches_reference(&live, &secrets, now, seed);
            let depth = live.groups_after(0).map(|group| live.ancestry(group.id()).count()).max().unwrap_or(0);
            deepest_nesting = deepest_nesting.max(depth);
            // Every change to what the fingerprint covers moves a version, so the cached
            // fingerprint never misses one.
            assert_eq!(live.fingerprint_cached(&mut fingerprints), live.fingerprint(), "seed {seed}, step {step}");
        }

        let mut replayed = State::default();
        for (position, json) in &log {
            let event: Event = serde_json::from_str(json).expect("recorded events deserialise");
            replayed.apply(*position, &event);
        }
        assert_eq!(answers(&replayed, &secrets, now), answers(&live, &secrets, now), "seed {seed}");
    }
    // The sequences must do something for the invariants to mean anything.
    assert!(accepted_commands > SEEDS as usize * STEPS_PER_SEED / 5, "only {accepted_commands} commands were accepted");
    // Checks must meet events reached through more than one level of nesting.
    assert!(deepest_nesting >= 3, "groups nested at most {deepest_nesting} levels deep");
}

// The point-in-time questions reuse the scenario helpers and generators above.
#[path = "view_tests.rs"]
mod view_tests;

// One judgement of a key's state, over every combination, reuses them too.
#[path = "key_state_tests.rs"]
mod key_state_tests;

// ---------------------------------------------------------------------------------------
// Event-scoped functions need an event (issue #9, item 7).
// ---------------------------------------------------------------------------------------

/// The booking app with `secret`'s key, attendees and events read, and access to the
/// "USA" group only.
fn booking_app_in_the_usa(secret: &KeySecret) -> Vec<Event> {
    let mut history = booking_app_with_key(secret.hash());
    history.extend(americas_with_usa_inside());
    history.push(access_to_groups(booking_app(), &[usa()]));
    history
}

#[test]
fn an_event_scoped_function_without_an_event_is_refused_as_event_required_for_a_user_limited_to_groups() {
    let secret = new_secret();
    let ledger = given(&booking_app_in_the_usa(&secret));
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", None), "event_required");
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", Some(NYC)), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", Some(LIMA)), "event_not_accessible");
    let booking_app = booking_app();
    let refused = ledger.checked(secret.expose(), "api.attendees.read", None);
    assert_eq!((refused.user_id, refused.key_hash), (Some(&booking_app), Some(secret.hash())));
    assert!(!Reason::EventRequired.is_authentication_failure(), "the key works; the request lacks an event");
}

#[test]
fn a_user_with_no_event_access_at_all_also_needs_an_event_for_an_event_scoped_function() {
    let secret = new_secret();
    let ledger = given(&booking_app_with_key(secret.hash()));
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", None), "event_required");
}

#[test]
fn a_user_with_access_to_every_event_needs_no_event_for_an_event_scoped_function() {
    let secret = new_secret();
    let mut history = booking_app_in_the_usa(&secret);
    history.push(access_to_all_events(booking_app()));
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", None), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.attendees.read", Some(PARIS)), "granted");
}

#[test]
fn an_account_wide_function_needs_no_event_but_an_event_it_names_is_still_tested() {
    let secret = new_secret();
    let ledger = given(&booking_app_in_the_usa(&secret));
    assert_eq!(ledger.check(secret.expose(), "api.events.read", None), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(NYC)), "granted");
    assert_eq!(ledger.check(secret.expose(), "api.events.read", Some(LIMA)), "event_not_accessible");

    let admin_key = new_secret();
    let mut history = alice_the_editor();
    history.push(key_generated(alice(), first_key(), admin_key.hash(), None));
    assert_eq!(given(&history).check(admin_key.expose(), "security.users.read", None), "granted");
}

#[test]
fn a_missing_event_is_judged_after_the_key_and_the_function() {
    let secret = new_secret();
    let mut history = booking_app_in_the_usa(&secret);
    let ledger = given(&history);
    assert_eq!(ledger.check(secret.expose(), "api.sessions.read", None), "function_not_granted");
    history.push(user_disabled(booking_app()));
    assert_eq!(given(&history).check(secret.expose(), "api.attendees.read", None), "user_disabled");
}

// ---------------------------------------------------------------------------------------
// Recovering administration (`keyledger recover-admin`, issue #9).
// ---------------------------------------------------------------------------------------

fn recovered_admin() -> UserId {
    user_id("usr_00000000000000ec")
}
fn recovered_role() -> RoleId {
    role_id("role_00000000000000ec")
}
fn recovery_key() -> KeyId {
    key_id("key_00000000000000ec")
}

fn recover(key_hash: KeyHash, reason: &str) -> Command {
    Command::RecoverAdministrator {
        user_id: recovered_admin(),
        role_id: recovered_role(),
        key_id: recovery_key(),
        key_hash,
        reason: RecoveryReason::parse(reason).expect("a valid reason"),
    }
}

/// A ledger whose only administrator was disabled: nobody can administer it.
fn locked_out(admin_secret: &KeySecret) -> Vec<Event> {
    let mut history = given_an_empty_ledger().by(Actor::System).when(bootstrap(admin_secret.hash())).events();
    history.push(user_disabled(admin()));
    history
}

#[test]
fn recovering_administration_is_one_event_that_names_a_new_user_role_and_key_and_the_reason() {
    given(&locked_out(&new_secret())).by(Actor::System).when(recover(key_hash(9), "lost the only admin key")).then(&[
        Event::AdministratorRecovered {
            user_id: recovered_admin(),
            name: "Recovered administrator".to_owned(),
            role_id: recovered_role(),
            role_description: format!("Administrator (recovered {NOW})"),
            key_id: recovery_key(),
            key_hash: key_hash(9),
            reason: "lost the only admin key".to_owned(),
        },
    ]);
}

#[test]
fn the_recovered_key_may_use_every_admin_function_and_nothing_that_existed_is_changed() {
    let (old_secret, new) = (new_secret(), new_secret());
    let mut history = locked_out(&old_secret);
    history.extend(given(&history).by(Actor::System).when(recover(new.hash(), "locked out")).events());
    let ledger = given(&history);
    for function in FunctionId::all() {
        let expected = if function.is_admin() { "granted" } else { "function_not_granted" };
        assert_eq!(ledger.check(new.expose(), function.as_str(), None), expected, "{function}");
    }
    // The old Administrator stays disabled, its role as it was.
    assert_eq!(ledger.check(old_secret.expose(), "security.users.read", None), "user_disabled");
    let old_role = ledger.state.role(&administrators()).expect("the Administrator role");
    assert_eq!(old_role.holders(), &BTreeSet::from([admin()]));
    let recovered = ledger.state.user(&recovered_admin()).expect("the recovered administrator");
    assert_eq!(recovered.recovered().map(|position| position.seq), Some(history.len() as u64));
    assert!(ledger.state.user(&admin()).is_some_and(|user| user.recovered().is_none()));
}

#[test]
fn only_the_system_may_recover_administration() {
    given(&locked_out(&new_secret()))
        .by(Actor::User(admin()))
        .when(recover(key_hash(9), "escalation attempt"))
        .then_error(DomainError::InsufficientAuthority {
            actor: Actor::User(admin()),
            shortfall: Shortfall::SystemOnly,
        });
}

#[test]
fn a_second_recovery_at_the_same_moment_gets_a_role_of_its_own() {
    let mut history = locked_out(&new_secret());
    history.extend(given(&history).by(Actor::System).when(recover(key_hash(9), "first")).events());
    let second = Command::RecoverAdministrator {
        user_id: alice(),
        role_id: editors(),
        key_id: second_key(),
        key_hash: key_hash(10),
        reason: RecoveryReason::parse("second").expect("a valid reason"),
    };
    let events = given(&history).by(Actor::System).when(second).events();
    let [Event::AdministratorRecovered { role_description, .. }] = events.as_slice() else {
        panic!("one AdministratorRecovered: {events:?}");
    };
    assert_eq!(role_description, &format!("Administrator (recovered {NOW}, {})", editors()));
    let ledger = given(&[history, events].concat());
    assert_eq!(ledger.state.role(&editors()).map(|role| role.holders().len()), Some(1));
}

#[test]
fn the_permission_diff_of_a_recovery_grants_the_new_user_every_admin_function_and_the_key() {
    let history = locked_out(&new_secret());
    let mut state = given(&history).state;
    let event = given(&history).by(Actor::System).when(recover(key_hash(9), "locked out")).events().remove(0);
    let position = Position { seq: state.head() + 1, at: NOW };
    let changes = apply_tracking_changes(&mut state, position, &event);
    assert!(changes.iter().all(|change| change.kind == ChangeKind::Grant && change.user_id == recovered_admin()));
    let facts: BTreeSet<Fact> = changes.into_iter().map(|change| change.fact).collect();
    let mut expected: BTreeSet<Fact> = FunctionSet::all_admin().iter().map(Fact::Function).collect();
    expected.extend([Fact::Enabled, Fact::Key(recovery_key())]);
    assert_eq!(facts, expected);
}

#[test]
fn the_access_report_flags_the_recovered_administrator_and_nobody_else() {
    let mut history = locked_out(&new_secret());
    history.extend(given(&history).by(Actor::System).when(recover(key_hash(9), "locked out")).events());
    let rows = access_report(&given(&history).state, NOW);
    let flagged: Vec<&UserId> =
        rows.iter().filter(|row| row.flags.recovered_administrator).map(|row| &row.user_id).collect();
    assert_eq!(flagged, vec![&recovered_admin()]);
}

// ---------------------------------------------------------------------------------------
// Names that look alike (issue #9, item 9).
// ---------------------------------------------------------------------------------------

/// "Administrator" with a Cyrillic capital A (U+0410) for the Latin one.
const CYRILLIC_ADMINISTRATOR: &str = "\u{410}dministrator";

fn lookalike(resource: Resource, name: &str, existing: &str, existing_name: &str) -> DomainError {
    DomainError::LookalikeName {
        resource,
        name: name.to_owned(),
        existing: existing.to_owned(),
        existing_name: existing_name.to_owned(),
    }
}

#[test]
fn a_role_description_confusable_with_an_existing_one_is_refused_naming_that_role() {
    given(&[role_created(administrators(), "Administrator")])
        .when(Command::CreateRole { role_id: editors(), description: name(CYRILLIC_ADMINISTRATOR) })
        .then_error(lookalike(Resource::Role, CYRILLIC_ADMINISTRATOR, &administrators().text(), "Administrator"));
}

#[test]
fn a_role_description_confusable_in_another_case_is_refused() {
    // In capitals, an l for the I reads as "ADMINISTRATOR", the same role but for case.
    given(&[role_created(administrators(), "administrator")])
        .when(Command::CreateRole { role_id: editors(), description: name("ADMlNISTRATOR") })
        .then_error(lookalike(Resource::Role, "ADMlNISTRATOR", &administrators().text(), "administrator"));
}

#[test]
fn a_role_description_equal_once_composed_is_a_duplicate() {
    given(&[role_created(api_access(), "Caf\u{e9}")])
        .when(Command::CreateRole { role_id: editors(), description: name("Cafe\u{301}") })
        .then_error(DomainError::DuplicateRoleDescription {
            description: "Caf\u{e9}".to_owned(),
            existing: api_access(),
        });
}

#[test]
fn a_description_stored_decomposed_by_an_older_build_still_blocks_its_composed_form() {
    given(&[role_created(api_access(), "Cafe\u{301}")])
        .when(Command::CreateRole { role_id: editors(), description: name("Caf\u{e9}") })
        .then_error(lookalike(Resource::Role, "Caf\u{e9}", &api_access().text(), "Cafe\u{301}"));
}

#[test]
fn descriptions_that_only_share_letters_in_one_case_are_both_accepted() {
    // "MAIL" and "MALL" do not look alike, nor do "Mail" and "Mall": no one casing of
    // both makes them look the same.
    given(&[role_created(api_access(), "Mail")])
        .when(Command::CreateRole { role_id: editors(), description: name("Mall") })
        .then(&[role_created(editors(), "Mall")]);
}

#[test]
fn a_user_name_confusable_with_an_existing_users_is_refused_naming_that_user() {
    given(&[user_created(booking_app(), "Booking app")])
        .when(Command::CreateUser { user_id: alice(), name: name("B\u{43E}\u{43E}king app"), email: None })
        .then_error(lookalike(Resource::User, "B\u{43E}\u{43E}king app", &booking_app().text(), "Booking app"));
}

#[test]
fn a_user_name_already_taken_is_refused_even_by_a_disabled_user() {
    // Two users who read the same cannot be told apart in the access review, and a
    // disabled user can be enabled again.
    given(&[user_created(booking_app(), "Booking app"), user_disabled(booking_app())])
        .when(Command::CreateUser { user_id: alice(), name: name("booking APP"), email: None })
        .then_error(lookalike(Resource::User, "booking APP", &booking_app().text(), "Booking app"));
}

#[test]
fn a_user_cannot_be_named_like_the_administrator() {
    let bootstrapped = given_an_empty_ledger().by(Actor::System).when(bootstrap(key_hash(1))).events();
    given(&bootstrapped)
        .when(Command::CreateUser { user_id: alice(), name: name("Adm\u{131}n\u{456}strator"), email: None })
        .then_error(lookalike(Resource::User, "Adm\u{131}n\u{456}strator", &admin().text(), "Administrator"));
}

#[test]
fn a_group_name_confusable_with_a_siblings_is_refused_naming_that_group() {
    // "ЕМЕА" in Cyrillic capitals.
    given(&[group_created(americas(), "Americas", None), group_created(emea(), "EMEA", Some(americas()))])
        .when(Command::CreateEventGroup {
            group_id: usa(),
            name: name("\u{415}\u{41C}\u{415}\u{410}"),
            parent_id: Some(americas()),
        })
        .then_error(lookalike(Resource::Group, "\u{415}\u{41C}\u{415}\u{410}", &emea().text(), "EMEA"));
}

#[test]
fn a_group_name_confusable_with_a_group_elsewhere_in_the_tree_is_accepted() {
    // Groups are unique among their siblings only, as before.
    given(&[group_created(americas(), "Americas", None), group_created(emea(), "EMEA", None)])
        .when(Command::CreateEventGroup { group_id: usa(), name: name("\u{415}MEA"), parent_id: Some(americas()) })
        .then(&[group_created(usa(), "\u{415}MEA", Some(americas()))]);
}

#[test]
fn a_log_that_already_holds_lookalikes_replays_and_new_ones_are_refused_naming_the_first() {
    // Logs written before this rule may hold lookalikes: replay takes them as they are.
    let history = [
        role_created(administrators(), "Administrator"),
        role_created(editors(), CYRILLIC_ADMINISTRATOR),
        user_created(booking_app(), "Booking app"),
        user_created(alice(), "Booking app"),
    ];
    let scenario = given(&history);
    assert_eq!(scenario.state.role(&editors()).map(|role| role.description()), Some(CYRILLIC_ADMINISTRATOR));
    assert_eq!(scenario.state.user(&alice()).map(|user| user.name()), Some("Booking app"));
    given(&history).when(Command::CreateRole { role_id: reporting(), description: name("ADMINISTRATOR") }).then_error(
        DomainError::DuplicateRoleDescription { description: "ADMINISTRATOR".to_owned(), existing: administrators() },
    );
    given(&history)
        .when(Command::CreateUser { user_id: bob(), name: name("Booking app"), email: None })
        .then_error(lookalike(Resource::User, "Booking app", &booking_app().text(), "Booking app"));
}

// The authority rules reuse the scenario helpers above.
#[path = "authority_tests.rs"]
mod authority_tests;

#[test]
fn a_key_lookup_is_recorded_naming_the_key_found_and_needs_audit_read() {
    let lookup = || Command::RecordKeyLookup { user_id: booking_app(), key_id: first_key() };
    given(&booking_app_with_key(key_hash(1)))
        .when(lookup())
        .then(&[Event::KeyLookedUp { user_id: booking_app(), key_id: first_key() }]);
    // The booking app holds no admin function: it may not look keys up, even its own.
    let by_the_app = given(&booking_app_with_key(key_hash(1))).by(Actor::User(booking_app())).when(lookup());
    assert!(by_the_app.events_if_accepted().is_empty());
}

#[test]
fn a_lookup_of_a_key_of_an_unknown_user_is_refused() {
    given(&[])
        .when(Command::RecordKeyLookup { user_id: booking_app(), key_id: first_key() })
        .then_error(DomainError::NotFound { resource: Resource::User, id: booking_app().to_string() });
}

// ---------------------------------------------------------------------------------------
// The key policy and imported keys (issue #14, points 2 and 8).
// ---------------------------------------------------------------------------------------

const DAY_SECONDS: u64 = 24 * 60 * 60;

fn policy_set(max_lifetime_days: Option<u32>, require_expiry: bool, max_unused_days: Option<u32>) -> Event {
    Event::KeyPolicySet { max_lifetime_days, require_expiry, max_unused_days }
}

#[test]
fn issue_14_a_key_past_the_policys_lifetime_is_too_old_and_passes_again_when_the_limit_is_raised() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.push(policy_set(Some(30), false, None));
    let thirty_days_on = seconds_after(RECORDED_AT, 30 * DAY_SECONDS);
    let scenario = given(&history);
    assert_eq!(scenario.check(secret.expose(), "api.events.read", None), "granted");
    let at_the_limit = given(&history).at(thirty_days_on);
    assert_eq!(at_the_limit.check(secret.expose(), "api.events.read", None), "key_too_old");
    let decision = at_the_limit.checked(secret.expose(), "api.events.read", None);
    assert_eq!(decision.key_id, Some(&first_key()), "a blocked key is known, not unknown");
    assert!(Reason::KeyTooOld.is_authentication_failure());
    // Blocked, not revoked: a higher limit lets it through.
    history.push(policy_set(Some(31), false, None));
    assert_eq!(given(&history).at(thirty_days_on).check(secret.expose(), "api.events.read", None), "granted");
    history.push(policy_set(None, false, None));
    assert_eq!(
        given(&history).at(seconds_after(RECORDED_AT, 3000 * DAY_SECONDS)).check(
            secret.expose(),
            "api.events.read",
            None
        ),
        "granted"
    );
}

#[test]
fn issue_14_a_key_unused_for_the_policys_idle_days_is_dormant_counted_from_its_last_use_or_creation() {
    let secret = new_secret();
    let mut history = booking_app_with_key(secret.hash());
    history.push(policy_set(None, false, Some(10)));
    let ten_days_on = seconds_after(RECORDED_AT, 10 * DAY_SECONDS);
    assert_eq!(
        given(&history).at(seconds_before(ten_days_on, 1)).check(secret.expose(), "api.events.read", None),
        "granted"
    );
    assert_eq!(given(&history).at(ten_days_on).check(secret.expose(), "api.events.read", None), "key_dormant");
    assert!(!Reason::KeyDormant.counts_as_use(), "a dormant key's refused attempts must not wake it");
    // A recorded use five days in moves the limit five days on.
    history.push(Event::KeyUsageIntervalRecorded {
        from: seconds_after(RECORDED_AT, 5 * DAY_SECONDS),
        to: seconds_after(RECORDED_AT, 5 * DAY_SECONDS),
        keys: vec![KeyUse {
            user_id: booking_app(),
            key_id: first_key(),
            allowed: 1,
            refused: 0,
            first_after: 0,
            last_after: 0,
            functions: None,
        }],
    });
    assert_eq!(given(&history).at(ten_days_on).check(secret.expose(), "api.events.read", None), "granted");
    let fifteen_days_on = seconds_after(RECORDED_AT, 15 * DAY_SECONDS);
    assert_eq!(given(&history).at(fifteen_days_on).check(secret.expose(), "api.events.read", None), "key_dormant");
    // Rotated on day 15, the new key starts its own count from its creation.
    let rotated = new_secret();
    let mut scenario = given(&history).at(seconds_after(fifteen_days_on, 9 * DAY_SECONDS));
    let position = Position { seq: scenario.state.head() + 1, at: fifteen_days_on };
    scenario.state.apply(position, &key_generated(booking_app(), second_key(), rotated.hash(), None));
    assert_eq!(scenario.check(rotated.expose(), "api.events.read", None), "granted");
    let key = scenario.state.key(&rotated.hash()).expect("the rotated key");
    let limit = seconds_after(fifteen_days_on, 10 * DAY_SECONDS);
    assert_eq!(scenario.state.key_state(key, limit), KeyState::Dormant { since: limit });
}

#[test]
fn issue_14_the_standing_administrators_key_is_exempt_from_the_policy_but_not_an_expiring_admin_key() {
    let mut history = the_administrator();
    history.push(policy_set(Some(1), false, Some(1)));
    let years_on = seconds_after(RECORDED_AT, 900 * DAY_SECONDS);
    let scenario = given(&history).at(years_on);
    let admin_key = scenario.state.key(&key_hash(0xad)).expect("the administrator's key");
    assert_eq!(scenario.state.key_state(admin_key, years_on), KeyState::Active);
    assert!(scenario.state.is_policy_exempt(admin_key));
    // The administrator can still act, so the policy can be changed: no lockout.
    scenario.when(Command::SetKeyPolicy { policy: KeyPolicy::default() }).then(&[policy_set(None, false, None)]);
    // An administrator's key that expires does not make a standing administrator, and is
    // held to the policy.
    history.push(key_generated(
        admin(),
        key_id("key_00000000000000ae"),
        key_hash(0xae),
        Some(seconds_after(RECORDED_AT, 1000 * DAY_SECONDS)),
    ));
    let scenario = given(&history).at(years_on);
    let expiring = scenario.state.key(&key_hash(0xae)).expect("the expiring key");
    assert!(!scenario.state.is_policy_exempt(expiring));
    assert!(matches!(scenario.state.key_state(expiring, years_on), KeyState::TooOld { .. }));
}

#[test]
fn issue_14_require_expiry_refuses_a_key_without_expiry_except_for_an_administrator() {
    let history = vec![user_created(booking_app(), "Booking app"), policy_set(None, true, None)];
    let generate = |user_id: UserId, expires_at| Command::GenerateKey {
        user_id,
        key_id: second_key(),
        key_hash: key_hash(2),
        expires_at,
        grace_seconds: None,
    };
    given(&history).when(generate(booking_app(), None)).then_error(DomainError::ExpiryRequired);
    let import = Command::ImportKey {
        user_id: booking_app(),
        key_id: second_key(),
        key_hash: key_hash(2),
        expires_at: None,
        grace_seconds: None,
    };
    given(&history).when(import).then_error(DomainError::ExpiryRequired);
    let expiry = seconds_after(NOW, DAY_SECONDS);
    given(&history).when(generate(booking_app(), Some(expiry))).then(&[key_generated(
        booking_app(),
        second_key(),
        key_hash(2),
        Some(expiry),
    )]);
    // The administrator's own key needs none: the lockout rule counts only keys that last.
    let replaced = Some(key_id("key_00000000000000ad"));
    given(&history).when(generate(admin(), None)).then(&[Event::KeyGenerated {
        user_id: admin(),
        key_id: second_key(),
        key_hash: key_hash(2),
        expires_at: None,
        replaced_key_id: replaced,
        replaced_key_valid_until: None,
    }]);
}

#[test]
fn issue_14_an_imported_key_is_checked_by_the_sha256_of_its_characters_and_marked_legacy() {
    let legacy = "0123456789abcdef0123456789abcdef";
    let hash = KeyHash::of_legacy_key(legacy).expect("a legacy key");
    let mut history = booking_app_with_key(new_secret().hash());
    let import = Command::ImportKey {
        user_id: booking_app(),
        key_id: second_key(),
        key_hash: hash,
        expires_at: None,
        grace_seconds: Some(60),
    };
    let events = given(&history).when(import.clone()).result.expect("imported");
    assert_eq!(
        events,
        [Event::KeyImported {
            user_id: booking_app(),
            key_id: second_key(),
            key_hash: hash,
            expires_at: None,
            replaced_key_id: Some(first_key()),
            replaced_key_valid_until: Some(seconds_after(NOW, 60)),
        }]
    );
    history.extend(events);
    let scenario = given(&history);
    assert_eq!(scenario.check(legacy, "api.events.read", None), "granted");
    assert_eq!(scenario.check(&legacy.to_uppercase(), "api.events.read", None), "unknown_key");
    assert!(scenario.state.key(&hash).expect("the imported key").is_legacy());
    // A key already known is not imported again.
    scenario.when(import).then_error(DomainError::KeyAlreadyKnown);
}

// ---------------------------------------------------------------------------------------
// One copy of the state (issue #11): batches applied in place under a journal, rolled
// back exactly, or committed and copied into the check index.
// ---------------------------------------------------------------------------------------

/// The state as a snapshot holds it: every entity and index, in key order.
fn state_bytes(state: &State) -> Vec<u8> {
    postcard::to_stdvec(state).expect("a state serialises")
}

/// The check index answers every check of every secret as the state does, for every
/// function and event of the pools, now, an hour on (past short grace periods) and a
/// year on (past expiries and the key policy's limits). Only valid when no batch is
/// under way in `state`.
fn assert_index_answers_as_the_state(
    index: &CheckIndex,
    state: &State,
    secrets: &[KeySecret],
    now: Timestamp,
    seed: u64,
) {
    for at in [now, seconds_after(now, 3600), seconds_after(now, 365 * DAY)] {
        for secret in secrets {
            for function in FUNCTION_POOL.iter().chain(&["security.users.manage", "no.such.function"]) {
                for event in EVENT_POOL.iter().copied().map(Some).chain([None, Some("no-such-event")]) {
                    let request = CheckRequest { key: secret.expose(), function, event_id: event };
                    assert_eq!(
                        check(index, request, at),
                        check(state, request, at),
                        "seed {seed}: {function} on {event:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_rolled_back_batch_leaves_the_state_exactly_as_it_was_and_the_check_index_follows_committed_ones() {
    let (mut rolled_back, mut committed) = (0, 0);
    for seed in 0..SEEDS / 4 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut live = State::default();
        let mut index = CheckIndex::of(&live);
        let mut secrets = Vec::new();
        let mut now = RECORDED_AT;
        let opening = opening_commands(&mut rng, &mut secrets);
        let mut step = 0;
        while step < STEPS_PER_SEED {
            let before = state_bytes(&live);
            live.begin_batch();
            let mut applied = 0;
            for _ in 0..rng.random_range(1..8) {
                now = seconds_after(now, rng.random_range(0..900));
                let Some((context, command)) = random_step(&mut rng, &live, now, step, &opening, &mut secrets) else {
                    continue;
                };
                step += 1;
                let Ok(events) = decide(&live, &context, command) else { continue };
                for event in events {
                    live.apply(Position { seq: live.head() + 1, at: now }, &event);
                    applied += 1;
                }
            }
            // The opening must stand for the random commands after it to mean anything.
            if step > opening.len() && rng.random_bool(0.3) {
                live.rollback_batch();
                rolled_back += usize::from(applied > 0);
                assert!(!live.in_batch());
                assert_eq!(state_bytes(&live), before, "seed {seed}, step {step}: the rollback left a trace");
            } else {
                index.update(live.commit_batch());
                committed += usize::from(applied > 0);
            }
            assert!(index.matches(&live), "seed {seed}, step {step}: the check index differs from the state");
            if step % 8 == 0 {
                assert!(CheckIndex::of(&live).matches(&live), "seed {seed}, step {step}: a fresh copy differs");
            }
            assert_index_answers_as_the_state(&index, &live, &secrets, now, seed);
        }
    }
    assert!(rolled_back > 100 && committed > 100, "rolled back {rolled_back} batches, committed {committed}");
}
