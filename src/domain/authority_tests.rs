//! The authority rules of the admin plane (issue #9), as scenarios: given these events,
//! when this actor sends this command, then these events or this refusal. A property test
//! runs random commands from actors holding random admin functions and checks, after every
//! step, that nobody gained an admin function from someone who did not hold it, and that a
//! standing administrator always exists.

use super::*;

/// A user holding `role`, which carries exactly `functions`, with a key that does not
/// expire (its hash is `key_hash(key)`).
fn holding(user: UserId, name: &str, role: RoleId, functions: &[&str], key: u8) -> Vec<Event> {
    let mut events = vec![user_created(user.clone(), name), role_created(role.clone(), &format!("{name}'s role"))];
    events.extend(functions.iter().map(|function| activated(role.clone(), function)));
    events.push(assigned(user.clone(), role));
    events.push(key_generated(user, key_id(&format!("key_00000000000000{key:02x}")), key_hash(key), None));
    events
}

/// Alice, who may manage roles and nothing else.
fn alice_the_role_manager() -> Vec<Event> {
    holding(alice(), "Alice", editors(), &["security.roles.manage"], 0xa1)
}

/// Alice, who may manage users and nothing else.
fn alice_the_user_manager() -> Vec<Event> {
    holding(alice(), "Alice", editors(), &["security.users.manage"], 0xa1)
}

/// Alice, who may manage keys and nothing else.
fn alice_the_key_manager() -> Vec<Event> {
    holding(alice(), "Alice", editors(), &["security.keys.manage"], 0xa1)
}

fn by_alice(history: &[Event]) -> Scenario {
    given(history).by(Actor::User(alice()))
}

fn lacks(actor: UserId, function: &str, because: Because) -> DomainError {
    DomainError::InsufficientAuthority {
        actor: Actor::User(actor),
        shortfall: Shortfall::Lacks { function: super::function(function), because },
    }
}

fn cannot_act(actor: UserId, shortfall: Shortfall) -> DomainError {
    DomainError::InsufficientAuthority { actor: Actor::User(actor), shortfall }
}

/// Alice's refusal for a change that needs the administrator's functions: the first she
/// lacks is `security.functions.read`.
fn alice_lacks_root(because: Because) -> DomainError {
    lacks(alice(), "security.functions.read", because)
}

/// The command rule 1's scenarios send: any admin command would do.
fn create_reporting() -> Command {
    Command::CreateRole { role_id: reporting(), description: name("Reporting") }
}

// ---------------------------------------------------------------------------------------
// Rule 1: the actor can act, and holds the command's function.
// ---------------------------------------------------------------------------------------

#[test]
fn a_command_needs_its_admin_function_even_when_it_would_change_nothing() {
    by_alice(&alice_the_role_manager())
        .when(Command::CreateUser { user_id: bob(), name: name("Bob"), email: None })
        .then_error(lacks(alice(), "security.users.manage", Because::Command));
}

#[test]
fn a_disabled_actor_is_refused_even_if_its_request_arrived_before_it_was_disabled() {
    let mut history = two_administrators();
    history.push(user_disabled(alice()));
    by_alice(&history).when(create_reporting()).then_error(cannot_act(alice(), Shortfall::Disabled));
}

#[test]
fn an_actor_whose_presented_key_was_replaced_is_refused_though_its_new_key_works() {
    let mut history = two_administrators();
    history.push(key_replaced(alice(), second_key(), key_hash(2), key_id("key_00000000000000a1"), None));
    let mut scenario = by_alice(&history);
    scenario.context.credential = Some(key_hash(0xa1));
    scenario.when(create_reporting()).then_error(cannot_act(alice(), Shortfall::NoWorkingKey));
    let mut scenario = by_alice(&history);
    scenario.context.credential = Some(key_hash(2));
    scenario.when(create_reporting()).then(&[role_created(reporting(), "Reporting")]);
}

#[test]
fn an_actor_whose_only_key_expired_is_refused() {
    let mut history = vec![user_created(alice(), "Alice"), assigned(alice(), root())];
    history.push(key_generated(alice(), first_key(), key_hash(3), Some(seconds_after(RECORDED_AT, 60))));
    let mut history_with_root = the_administrator();
    history_with_root.extend(history);
    by_alice(&history_with_root).when(create_reporting()).then_error(cannot_act(alice(), Shortfall::NoWorkingKey));
}

#[test]
fn of_two_administrators_disabling_each_other_the_second_command_is_refused() {
    let history = two_administrators();
    let mut state = given(&history).state;
    let context =
        |actor: UserId| Context { actor: Actor::User(actor), now: NOW, expected_version: None, credential: None };
    // The writer decides the two in the order it took them, each against the state that
    // includes the one before.
    let first = decide(&state, &context(admin()), Command::DisableUser { user_id: alice() });
    assert_eq!(first, Ok(vec![user_disabled(alice())]));
    state.apply(Position { seq: state.head() + 1, at: NOW }, &user_disabled(alice()));
    let second = decide(&state, &context(alice()), Command::DisableUser { user_id: admin() });
    assert_eq!(second, Err(cannot_act(alice(), Shortfall::Disabled)));
}

// ---------------------------------------------------------------------------------------
// Rule 2: you can only hand out what you hold.
// ---------------------------------------------------------------------------------------

#[test]
fn a_role_manager_cannot_activate_admin_functions_it_does_not_hold_even_on_its_own_role() {
    for function in ["security.users.manage", "security.keys.manage", "security.audit.read"] {
        by_alice(&alice_the_role_manager())
            .when(Command::ActivateFunctions { role_id: editors(), functions: functions(&[function]) })
            .then_error(lacks(alice(), function, Because::HandOut));
    }
}

#[test]
fn a_role_manager_may_activate_api_functions_it_cannot_hold() {
    let mut history = alice_the_role_manager();
    history.push(role_created(api_access(), "API Access"));
    by_alice(&history)
        .when(Command::ActivateFunctions { role_id: api_access(), functions: functions(&["api.attendees.read"]) })
        .then(&[activated(api_access(), "api.attendees.read")]);
}

#[test]
fn an_admin_may_hand_out_the_admin_functions_it_holds() {
    let mut history = holding(alice(), "Alice", editors(), &["security.roles.manage", "security.users.read"], 0xa1);
    history.push(role_created(reporting(), "Reporting"));
    by_alice(&history)
        .when(Command::ActivateFunctions { role_id: reporting(), functions: functions(&["security.users.read"]) })
        .then(&[activated(reporting(), "security.users.read")]);
}

#[test]
fn a_role_manager_cannot_take_an_admin_function_it_does_not_hold_away_from_another_role() {
    by_alice(&alice_the_role_manager())
        .when(Command::DeactivateFunctions { role_id: root(), functions: functions(&["security.audit.read"]) })
        .then_error(lacks(alice(), "security.audit.read", Because::HandOut));
}

// ---------------------------------------------------------------------------------------
// Rule 3: a role is handed out whole.
// ---------------------------------------------------------------------------------------

#[test]
fn a_user_manager_cannot_assign_itself_the_administrator_role() {
    by_alice(&alice_the_user_manager())
        .when(Command::AssignRole { user_id: alice(), role_id: root() })
        .then_error(alice_lacks_root(Because::RoleCarries(root())));
}

#[test]
fn a_user_manager_cannot_unassign_a_role_carrying_functions_it_lacks() {
    let mut history = the_administrator();
    history.extend(alice_the_user_manager());
    history.extend([user_created(bob(), "Bob"), assigned(bob(), root())]);
    by_alice(&history)
        .when(Command::UnassignRole { user_id: bob(), role_id: root() })
        .then_error(alice_lacks_root(Because::RoleCarries(root())));
}

#[test]
fn a_user_manager_may_assign_an_api_role_to_an_api_user() {
    let mut history = alice_the_user_manager();
    history.extend([user_created(booking_app(), "Booking app"), role_created(api_access(), "API Access")]);
    history.push(activated(api_access(), "api.attendees.read"));
    by_alice(&history)
        .when(Command::AssignRole { user_id: booking_app(), role_id: api_access() })
        .then(&[assigned(booking_app(), api_access())]);
}

// ---------------------------------------------------------------------------------------
// Rule 4: nobody with fewer functions touches a user with more.
// ---------------------------------------------------------------------------------------

#[test]
fn a_user_manager_cannot_disable_or_strip_the_administrator() {
    by_alice(&alice_the_user_manager())
        .when(Command::DisableUser { user_id: admin() })
        .then_error(alice_lacks_root(Because::TargetHolds(admin())));
}

#[test]
fn a_key_manager_cannot_generate_or_revoke_the_administrators_key() {
    by_alice(&alice_the_key_manager())
        .when(Command::GenerateKey {
            user_id: admin(),
            key_id: second_key(),
            key_hash: key_hash(2),
            expires_at: None,
            grace_seconds: None,
        })
        .then_error(alice_lacks_root(Because::TargetHolds(admin())));
    by_alice(&alice_the_key_manager())
        .when(Command::RevokeKey { user_id: admin() })
        .then_error(alice_lacks_root(Because::TargetHolds(admin())));
}

#[test]
fn a_disabled_administrator_still_counts_as_holding_its_functions() {
    let mut history = the_administrator();
    history.extend(alice_the_user_manager());
    history.extend([user_created(bob(), "Bob"), assigned(bob(), root()), user_disabled(bob())]);
    by_alice(&history)
        .when(Command::EnableUser { user_id: bob() })
        .then_error(alice_lacks_root(Because::TargetHolds(bob())));
}

#[test]
fn an_event_access_manager_cannot_change_the_event_access_of_an_administrator() {
    let history = holding(alice(), "Alice", editors(), &["security.event_access.manage"], 0xa1);
    by_alice(&history)
        .when(Command::SetUserEventAccess { user_id: admin(), access: EventAccess::AllEvents })
        .then_error(alice_lacks_root(Because::TargetHolds(admin())));
}

#[test]
fn a_partial_admin_may_act_on_api_users_and_on_users_holding_no_more_than_itself() {
    let mut history = alice_the_key_manager();
    history.extend(booking_app_with_key(key_hash(1)));
    by_alice(&history)
        .when(Command::RevokeKey { user_id: booking_app() })
        .then(&[key_revoked(booking_app(), first_key())]);
}

// ---------------------------------------------------------------------------------------
// Rule 5: the system acts only where no user can.
// ---------------------------------------------------------------------------------------

#[test]
fn the_system_makes_no_change_once_there_is_an_administrator() {
    given(&[])
        .by(Actor::System)
        .when(Command::CreateUser { user_id: bob(), name: name("Bob"), email: None })
        .then_error(DomainError::InsufficientAuthority { actor: Actor::System, shortfall: Shortfall::NotForTheSystem });
}

#[test]
fn a_user_cannot_record_key_usage_or_bootstrap() {
    given(&booking_app_with_key(key_hash(1)))
        .when(Command::RecordKeyUsage { usage: vec![usage(key_hash(1), 1, 0, NOW, NOW)] })
        .then_error(cannot_act(admin(), Shortfall::SystemOnly));
    given_an_empty_ledger()
        .by(Actor::User(admin()))
        .when(Command::Bootstrap { user_id: admin(), role_id: root(), key_id: first_key(), key_hash: key_hash(1) })
        .then_error(cannot_act(admin(), Shortfall::SystemOnly));
}

// ---------------------------------------------------------------------------------------
// Rule 6: somebody can always administer.
// ---------------------------------------------------------------------------------------

/// Alice holds every admin function through a role of her own, but her key expires in a
/// day: she does not stand.
fn alice_an_administrator_with_an_expiring_key() -> Vec<Event> {
    let every: Vec<&str> = FunctionSet::all_admin().iter().map(FunctionId::as_str).collect();
    let mut events = holding(alice(), "Alice", editors(), &every, 0xa1);
    events.push(key_replaced(
        alice(),
        key_id("key_00000000000000a2"),
        key_hash(0xa2),
        key_id("key_00000000000000a1"),
        None,
    ));
    let Some(Event::KeyGenerated { expires_at, .. }) = events.last_mut() else { unreachable!() };
    *expires_at = Some(seconds_after(NOW, 86_400));
    events
}

#[test]
fn the_last_standing_administrator_cannot_be_disabled_stripped_or_keyless() {
    let mut history = the_administrator();
    history.extend(alice_an_administrator_with_an_expiring_key());
    let commands = [
        Command::DisableUser { user_id: admin() },
        Command::UnassignRole { user_id: admin(), role_id: root() },
        Command::RevokeKey { user_id: admin() },
        Command::DeactivateFunctions { role_id: root(), functions: functions(&["security.audit.read"]) },
    ];
    for command in commands {
        by_alice(&history).when(command).then_error(DomainError::LastAdministrator);
    }
}

#[test]
fn the_last_standing_administrator_cannot_give_itself_a_key_that_expires() {
    given(&[])
        .when(Command::GenerateKey {
            user_id: admin(),
            key_id: second_key(),
            key_hash: key_hash(2),
            expires_at: Some(seconds_after(NOW, 3600)),
            grace_seconds: None,
        })
        .then_error(DomainError::LastAdministrator);
}

#[test]
fn an_administrator_may_be_disabled_while_another_stands() {
    let history = two_administrators();
    by_alice(&history)
        .when(Command::RevokeKey { user_id: admin() })
        .then(&[key_revoked(admin(), key_id("key_00000000000000ad"))]);
}

// ---------------------------------------------------------------------------------------
// Records judged one by one, as `verify` judges a bundle.
// ---------------------------------------------------------------------------------------

#[test]
fn a_forged_record_of_a_partial_admin_assigning_itself_the_administrator_role_is_not_authorised() {
    let state = given(&alice_the_user_manager()).state;
    let forged = assigned(alice(), root());
    assert_eq!(
        authorise(&state, &Actor::User(alice()), NOW, &forged),
        Err(Shortfall::Lacks { function: function("security.functions.read"), because: Because::RoleCarries(root()) })
    );
    assert_eq!(authorise(&state, &Actor::User(admin()), NOW, &forged), Ok(()));
}

// ---------------------------------------------------------------------------------------
// The property: random commands from actors with random admin functions.
// ---------------------------------------------------------------------------------------

const ACTORS: usize = 4;

fn actor_pool() -> [UserId; ACTORS] {
    [admin(), alice(), bob(), booking_app()]
}

fn partial_roles() -> [RoleId; 3] {
    [editors(), reporting(), api_access()]
}

/// The admin functions each user holds, through any role, enabled or not: written from
/// the roles, never from the check index.
fn admin_functions_by_user(state: &State) -> BTreeMap<UserId, BTreeSet<FunctionId>> {
    state
        .users_after(0)
        .map(|user| {
            let held = user
                .roles()
                .iter()
                .filter_map(|role| state.role(role))
                .flat_map(|role| role.functions().iter())
                .filter(|function| function.is_admin())
                .collect();
            (user.id().clone(), held)
        })
        .collect()
}

/// A standing administrator, written the slow and obvious way.
fn reference_standing_administrator(state: &State) -> bool {
    let every: BTreeSet<FunctionId> = FunctionSet::all_admin().iter().collect();
    let by_user = admin_functions_by_user(state);
    state.users_after(0).any(|user| {
        let key = user.current_key().and_then(|hash| state.key(&hash));
        user.is_enabled()
            && by_user.get(user.id()).is_some_and(|held| held.is_superset(&every))
            && key.is_some_and(|key| key.status() == KeyStatus::Active && key.expires_at().is_none())
    })
}

fn random_admin_command(rng: &mut StdRng, next_key: &mut u8) -> Command {
    let admin_functions: Vec<FunctionId> = FunctionSet::all_admin().iter().collect();
    let user = pick(rng, &actor_pool());
    let role = pick(rng, &[root(), editors(), reporting(), api_access()]);
    let some_functions =
        || -> BTreeSet<FunctionId> { (0..2).map(|n| admin_functions[(n * 5 + 3) % admin_functions.len()]).collect() };
    match rng.random_range(0..9) {
        0 => Command::ActivateFunctions { role_id: role, functions: [pick(rng, &admin_functions)].into() },
        1 => Command::ActivateFunctions { role_id: role, functions: some_functions() },
        2 => Command::DeactivateFunctions { role_id: role, functions: [pick(rng, &admin_functions)].into() },
        3 => Command::AssignRole { user_id: user, role_id: role },
        4 => Command::UnassignRole { user_id: user, role_id: role },
        5 => Command::DisableUser { user_id: user },
        6 => Command::EnableUser { user_id: user },
        7 => Command::RevokeKey { user_id: user },
        _ => {
            // Every generated key is new: hashes never collide.
            let n = *next_key;
            *next_key += 1;
            let expires_at = rng.random_bool(0.3).then(|| seconds_after(NOW, 86_400));
            Command::GenerateKey {
                user_id: user,
                key_id: key_id(&format!("key_00000000000000{n:02x}")),
                key_hash: key_hash(n),
                expires_at,
                grace_seconds: None,
            }
        }
    }
}

#[test]
fn nobody_gains_an_admin_function_from_someone_who_lacks_it_and_somebody_can_always_administer() {
    let admin_functions: Vec<&str> = FunctionSet::all_admin().iter().map(FunctionId::as_str).collect();
    let (mut accepted, mut refused_for_authority, mut refused_for_lockout) = (0, 0, 0);
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        // Three partial admins, each holding a random handful of admin functions.
        let mut history = the_administrator();
        for ((user, role), n) in actor_pool()[1..].iter().zip(partial_roles()).zip(1_u8..) {
            let held: Vec<&str> = admin_functions.iter().copied().filter(|_| rng.random_bool(0.4)).collect();
            history.extend(holding(user.clone(), &format!("User {n}"), role, &held, n));
        }
        let mut state = given(&history).state;
        let mut next_key = 0x10;
        for _ in 0..STEPS_PER_SEED {
            let actor = pick(&mut rng, &actor_pool());
            let context =
                Context { actor: Actor::User(actor.clone()), now: NOW, expected_version: None, credential: None };
            let before = admin_functions_by_user(&state);
            let outcome = decide(&state, &context, random_admin_command(&mut rng, &mut next_key));
            let events = match outcome {
                Ok(events) => events,
                Err(DomainError::InsufficientAuthority { .. }) => {
                    refused_for_authority += 1;
                    continue;
                }
                Err(DomainError::LastAdministrator) => {
                    refused_for_lockout += 1;
                    continue;
                }
                Err(_) => continue,
            };
            accepted += 1;
            for event in &events {
                state.apply(Position { seq: state.head() + 1, at: NOW }, event);
            }
            let actor_held = before.get(&actor).cloned().unwrap_or_default();
            for (user, held) in admin_functions_by_user(&state) {
                let had = before.get(&user).cloned().unwrap_or_default();
                for gained in held.difference(&had) {
                    assert!(
                        actor_held.contains(gained),
                        "seed {seed}: {user} gained {gained} from {actor}, who did not hold it: {events:?}"
                    );
                }
            }
            assert!(reference_standing_administrator(&state), "seed {seed}: nobody can administer after {events:?}");
        }
    }
    // The sequences must exercise all three outcomes for the property to mean anything.
    assert!(accepted > 1000, "only {accepted} commands were accepted");
    assert!(refused_for_authority > 1000, "only {refused_for_authority} commands were refused for authority");
    assert!(refused_for_lockout > 10, "only {refused_for_lockout} commands were refused as lockouts");
}
