//! The point-in-time questions of `view`, as scenarios: given these events, the view, the
//! answer to "who can", or the changes one more event makes. Two properties tie them to
//! the rest of the domain: `who_can` lists a key exactly when `check` lets it through, and
//! the changes tracked for one event are the changes of every user's facts.

use super::*;

/// The changes `event` makes, recorded at [`NOW`], after `history`.
fn changes_of(history: &[Event], event: Event) -> Vec<Change> {
    let mut state = given(history).state;
    let position = Position { seq: state.head() + 1, at: NOW };
    let before = state.clone();
    let tracked = apply_tracking_changes(&mut state, position, &event);
    assert_eq!(changes(&before, &state, &event, NOW), tracked, "both ways of computing changes agree");
    tracked
}

fn grant(user_id: UserId, fact: Fact) -> Change {
    Change { kind: ChangeKind::Grant, user_id, fact, until: None }
}

fn revoke(user_id: UserId, fact: Fact) -> Change {
    Change { kind: ChangeKind::Revoke, user_id, fact, until: None }
}

fn held(role_id: RoleId, description: &str) -> HeldRole {
    HeldRole { id: role_id, description: description.to_owned() }
}

/// The booking app with its key, access to "Americas" and the Americas groups.
fn booking_app_in_the_americas() -> Vec<Event> {
    let mut history = booking_app_with_key(key_hash(1));
    history.extend(americas_with_usa_inside());
    history.push(access_to_groups(booking_app(), &[americas()]));
    history
}

// ---------------------------------------------------------------------------------------
// The whole view.
// ---------------------------------------------------------------------------------------

#[test]
fn the_view_lists_users_roles_and_groups_in_creation_order_with_their_permissions() {
    let view = PermissionView::of(&given(&booking_app_in_the_americas()).state, NOW);
    // The scenario's administrator comes after the history.
    assert_eq!(view.users.iter().map(|user| user.id.clone()).collect::<Vec<_>>(), [booking_app(), admin()]);
    let user = &view.users[0];
    assert_eq!(user.id, booking_app());
    assert!(user.enabled);
    assert_eq!(user.roles, [held(api_access(), "API Access")]);
    assert_eq!(user.functions, [function("api.attendees.read"), function("api.events.read")]);
    assert_eq!(user.event_access, EventAccess::Groups(BTreeSet::from([americas()])));
    assert_eq!(
        user.keys,
        [KeyAtTime { key_id: first_key(), created_at: RECORDED_AT, expires_at: None, state: KeyState::Active }]
    );
    assert_eq!(view.roles.iter().map(|role| role.id.clone()).collect::<Vec<_>>(), [api_access(), root()]);
    assert_eq!(view.roles[0].holders, [booking_app()]);
    let groups: Vec<(&GroupId, Option<&GroupId>, &[EventId])> =
        view.groups.iter().map(|g| (&g.id, g.parent.as_ref(), g.events.as_slice())).collect();
    assert_eq!(groups, [(&americas(), None, &[event_id(LIMA)][..]), (&usa(), Some(&americas()), &[event_id(NYC)][..])]);
}

/// The booking app after a rotation of its key that keeps the first key working until
/// `valid_until`, 600 seconds after [`NOW`].
fn booking_app_mid_rotation() -> (Vec<Event>, Timestamp) {
    let valid_until = seconds_after(NOW, 600);
    let mut history = booking_app_with_key(key_hash(1));
    history.push(key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(valid_until)));
    (history, valid_until)
}

#[test]
fn the_view_judges_key_states_at_its_time() {
    let (history, valid_until) = booking_app_mid_rotation();
    let state = given(&history).state;
    let states = |at| -> Vec<(KeyId, KeyState)> {
        PermissionView::of(&state, at).users[0].keys.iter().map(|key| (key.key_id.clone(), key.state)).collect()
    };
    assert_eq!(states(NOW), [(first_key(), KeyState::InGrace { valid_until }), (second_key(), KeyState::Active)]);
    assert_eq!(
        states(valid_until),
        [(first_key(), KeyState::Replaced { valid_until }), (second_key(), KeyState::Active)]
    );

    let mut revoked = history.clone();
    revoked.push(key_revoked(booking_app(), second_key()));
    let state = given(&revoked).state;
    let keys = &PermissionView::of(&state, NOW).users[0].keys;
    assert_eq!(keys[1].state, KeyState::Revoked { at: RECORDED_AT });

    let expiring =
        [user_created(booking_app(), "Booking app"), key_generated(booking_app(), first_key(), key_hash(1), Some(NOW))];
    let state = given(&expiring).state;
    assert_eq!(PermissionView::of(&state, NOW).users[0].keys[0].state, KeyState::Expired { at: NOW });
    assert_eq!(PermissionView::of(&state, RECORDED_AT).users[0].keys[0].state, KeyState::Active);
}

// ---------------------------------------------------------------------------------------
// Who can.
// ---------------------------------------------------------------------------------------

#[test]
fn who_can_names_the_user_its_keys_the_role_and_the_chain_of_groups_to_the_granted_one() {
    let state = given(&booking_app_in_the_americas()).state;
    let answers = who_can(&state, function("api.attendees.read"), Some(NYC), NOW);
    assert_eq!(
        answers,
        [WhoCanAnswer {
            user_id: booking_app(),
            name: "Booking app".to_owned(),
            key_ids: vec![first_key()],
            via_roles: vec![held(api_access(), "API Access")],
            event_access: Some(EventAccessReason::Groups(vec![vec![usa(), americas()]])),
        }]
    );
    let lima = who_can(&state, function("api.attendees.read"), Some(LIMA), NOW);
    assert_eq!(lima[0].event_access, Some(EventAccessReason::Groups(vec![vec![americas()]])));
    // Without an event, event access is not considered for an account-wide function.
    assert_eq!(who_can(&state, function("api.events.read"), None, NOW)[0].event_access, None);
}

#[test]
fn who_can_leaves_out_users_without_the_function_the_event_a_working_key_or_enabled() {
    let history = booking_app_in_the_americas();
    let state = given(&history).state;
    assert!(who_can(&state, function("api.people.read"), None, NOW).is_empty());
    assert!(who_can(&state, function("api.attendees.read"), Some(PARIS), NOW).is_empty());

    let mut disabled = history.clone();
    disabled.push(user_disabled(booking_app()));
    assert!(who_can(&given(&disabled).state, function("api.events.read"), None, NOW).is_empty());

    let mut revoked = history.clone();
    revoked.push(key_revoked(booking_app(), first_key()));
    assert!(who_can(&given(&revoked).state, function("api.events.read"), None, NOW).is_empty());
}

#[test]
fn who_can_lists_a_key_in_its_grace_period_until_the_period_ends() {
    let (history, valid_until) = booking_app_mid_rotation();
    let state = given(&history).state;
    let keys = |at| who_can(&state, function("api.events.read"), None, at)[0].key_ids.clone();
    assert_eq!(keys(NOW), [second_key(), first_key()]);
    assert_eq!(keys(valid_until), [second_key()]);
}

#[test]
fn who_can_lists_only_users_with_every_event_for_an_event_scoped_function_without_an_event() {
    let history = booking_app_in_the_americas();
    let state = given(&history).state;
    assert!(who_can(&state, function("api.attendees.read"), None, NOW).is_empty());
    assert_eq!(who_can(&state, function("api.attendees.read"), Some(NYC), NOW).len(), 1);

    let mut everywhere = history.clone();
    everywhere.push(access_to_all_events(booking_app()));
    let answers = who_can(&given(&everywhere).state, function("api.attendees.read"), None, NOW);
    assert_eq!(answers.iter().map(|answer| &answer.user_id).collect::<Vec<_>>(), [&booking_app()]);
    assert_eq!(answers[0].event_access, None);
}

#[test]
fn who_can_explains_access_to_every_event() {
    let mut history = booking_app_with_key(key_hash(1));
    history.push(access_to_all_events(booking_app()));
    let answers = who_can(&given(&history).state, function("api.events.read"), Some(PARIS), NOW);
    assert_eq!(answers[0].event_access, Some(EventAccessReason::AllEvents));
}

// ---------------------------------------------------------------------------------------
// What one event changes.
// ---------------------------------------------------------------------------------------

#[test]
fn activating_a_function_grants_it_to_every_holder_of_the_role_and_nothing_else() {
    let changes = changes_of(&booking_app_in_the_americas(), activated(api_access(), "api.people.read"));
    assert_eq!(changes, [grant(booking_app(), Fact::Function(function("api.people.read")))]);
}

#[test]
fn deactivating_a_function_revokes_it() {
    let event = Event::FunctionDeactivated { role_id: api_access(), function: function("api.events.read") };
    let changes = changes_of(&booking_app_in_the_americas(), event);
    assert_eq!(changes, [revoke(booking_app(), Fact::Function(function("api.events.read")))]);
}

#[test]
fn a_function_still_held_through_another_role_is_not_revoked() {
    let mut history = alice_the_editor();
    history.push(role_created(reporting(), "Reporting"));
    history.push(activated(reporting(), "security.users.read"));
    history.push(assigned(alice(), reporting()));
    let event = Event::FunctionDeactivated { role_id: editors(), function: function("security.users.read") };
    assert_eq!(changes_of(&history, event), []);
}

#[test]
fn rotating_a_key_without_grace_grants_the_new_key_and_revokes_the_old_one_at_once() {
    let event = key_replaced(booking_app(), second_key(), key_hash(2), first_key(), None);
    let changes = changes_of(&booking_app_in_the_americas(), event);
    assert_eq!(changes, [revoke(booking_app(), Fact::Key(first_key())), grant(booking_app(), Fact::Key(second_key()))]);
}

#[test]
fn rotating_a_key_with_grace_revokes_the_old_one_as_of_the_end_of_its_grace_period() {
    let valid_until = seconds_after(NOW, 600);
    let event = key_replaced(booking_app(), second_key(), key_hash(2), first_key(), Some(valid_until));
    let changes = changes_of(&booking_app_in_the_americas(), event);
    let old = Change { until: Some(valid_until), ..revoke(booking_app(), Fact::Key(first_key())) };
    assert_eq!(changes, [old, grant(booking_app(), Fact::Key(second_key()))]);
}

#[test]
fn a_key_with_an_expiry_is_granted_until_then() {
    let expires_at = seconds_after(NOW, 3600);
    let event = Event::KeyGenerated {
        user_id: booking_app(),
        key_id: second_key(),
        key_hash: key_hash(2),
        expires_at: Some(expires_at),
        replaced_key_id: Some(first_key()),
        replaced_key_valid_until: None,
    };
    let changes = changes_of(&booking_app_in_the_americas(), event);
    let new = Change { until: Some(expires_at), ..grant(booking_app(), Fact::Key(second_key())) };
    assert_eq!(changes, [revoke(booking_app(), Fact::Key(first_key())), new]);
}

#[test]
fn changing_event_access_grants_and_revokes_the_groups_and_the_events_they_reach() {
    let mut history = booking_app_in_the_americas();
    history.push(group_created(emea(), "EMEA", None));
    history.push(event_added(emea(), PARIS));
    let changes = changes_of(&history, access_to_groups(booking_app(), &[usa(), emea()]));
    assert_eq!(
        changes,
        [
            revoke(booking_app(), Fact::EventGroup(americas())),
            grant(booking_app(), Fact::EventGroup(usa())),
            grant(booking_app(), Fact::EventGroup(emea())),
            revoke(booking_app(), Fact::Event(event_id(LIMA))),
            grant(booking_app(), Fact::Event(event_id(PARIS))),
        ]
    );
}

#[test]
fn access_to_every_event_subsumes_the_events_reached_through_groups() {
    let changes = changes_of(&booking_app_in_the_americas(), access_to_all_events(booking_app()));
    assert_eq!(changes, [grant(booking_app(), Fact::AllEvents), revoke(booking_app(), Fact::EventGroup(americas()))]);
}

#[test]
fn adding_an_event_to_a_nested_group_grants_it_to_the_users_of_its_ancestors() {
    let changes = changes_of(&booking_app_in_the_americas(), event_added(usa(), PARIS));
    assert_eq!(changes, [grant(booking_app(), Fact::Event(event_id(PARIS)))]);
    let removed = Event::EventRemovedFromGroup { group_id: usa(), event_id: event_id(NYC) };
    assert_eq!(
        changes_of(&booking_app_in_the_americas(), removed),
        [revoke(booking_app(), Fact::Event(event_id(NYC)))]
    );
}

#[test]
fn an_event_already_reached_through_another_group_is_not_granted_again() {
    let changes = changes_of(&booking_app_in_the_americas(), event_added(americas(), NYC));
    assert_eq!(changes, []);
}

#[test]
fn disabling_revokes_being_enabled_only_and_creating_a_role_or_group_changes_nothing() {
    assert_eq!(
        changes_of(&booking_app_in_the_americas(), user_disabled(booking_app())),
        [revoke(booking_app(), Fact::Enabled)]
    );
    assert_eq!(changes_of(&booking_app_in_the_americas(), role_created(reporting(), "Reporting")), []);
    assert_eq!(changes_of(&booking_app_in_the_americas(), group_created(emea(), "Brazil", Some(americas()))), []);
}

// ---------------------------------------------------------------------------------------
// Properties over random command sequences.
// ---------------------------------------------------------------------------------------

/// Runs random command sequences and hands every accepted event to `visit`, with the
/// state before it, its position, and the secrets minted so far.
fn random_histories(seeds: u64, mut visit: impl FnMut(u64, &State, Position, &Event, &[KeySecret])) {
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state = State::default();
        let mut secrets = Vec::new();
        let mut now = RECORDED_AT;
        let opening = opening_commands(&mut rng, &mut secrets);
        for step in 0..STEPS_PER_SEED {
            now = seconds_after(now, rng.random_range(0..900));
            let Some((context, command)) = random_step(&mut rng, &state, now, step, &opening, &mut secrets) else {
                continue;
            };
            let Ok(events) = decide(&state, &context, command) else { continue };
            for event in events {
                let position = Position { seq: state.head() + 1, at: now };
                visit(seed, &state, position, &event, &secrets);
                state.apply(position, &event);
            }
        }
    }
}

#[test]
fn who_can_lists_a_key_exactly_when_check_lets_it_through() {
    let mut granted = 0;
    random_histories(100, |seed, before, position, event, secrets| {
        let mut state = before.clone();
        state.apply(position, event);
        for at in [position.at, seconds_after(position.at, 1800)] {
            for name in FUNCTION_POOL.iter().chain(&["security.users.manage"]) {
                let function = function(name);
                for event_id in EVENT_POOL.iter().copied().map(Some).chain([None]) {
                    let answers = who_can(&state, function, event_id, at);
                    for secret in secrets {
                        let request = CheckRequest { key: secret.expose(), function: name, event_id };
                        let allowed = check(&state, request, at).allowed();
                        let listed = state.key(&secret.hash()).is_some_and(|key| {
                            answers
                                .iter()
                                .any(|answer| &answer.user_id == key.user_id() && answer.key_ids.contains(key.id()))
                        });
                        assert_eq!(
                            listed, allowed,
                            "seed {seed}, seq {}: {name} on {event_id:?} at {at}",
                            position.seq
                        );
                        granted += usize::from(allowed);
                    }
                }
            }
        }
    });
    assert!(granted > 1000, "only {granted} checks were granted: the property says little");
}

#[test]
fn the_changes_tracked_for_an_event_are_the_changes_of_every_users_facts() {
    let mut changed = 0;
    random_histories(100, |seed, before, position, event, _| {
        let mut after = before.clone();
        let tracked = apply_tracking_changes(&mut after, position, event);
        let expected: Vec<Change> = after
            .users_after(0)
            .map(User::id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .flat_map(|user| {
                compare(
                    user,
                    &permission_facts(before, user, position.at),
                    &permission_facts(&after, user, position.at),
                )
            })
            .collect();
        assert_eq!(tracked, expected, "seed {seed}, seq {}: {event:?}", position.seq);
        changed += tracked.len();
    });
    assert!(changed > 1000, "only {changed} changes: the property says little");
}
