//! Who may make which change: the authority rules of the admin plane.
//!
//! keyledger sells least privilege to API users, and its own admin plane keeps it too.
//! Every rule is judged against the state at the moment the change is applied: the
//! writer decides each queued command against the state that includes every command
//! before it, so a command from an actor who has just lost a function, or been disabled,
//! is refused even if its request arrived while the actor still had it.
//!
//! 1. **Only someone who can act, acts.** The actor of a change is an enabled user with a
//!    key that works at that moment (the key it presented, when the caller says which),
//!    holding the admin function of the command (`security.roles.manage` to change
//!    roles, and so on).
//! 2. **You can only hand out what you hold.** Activating or deactivating an admin
//!    function (`security.*`) on any role needs that function. API functions (`api.*`)
//!    need only `security.roles.manage`: admins cannot hold API functions, so a subset
//!    rule there would make the workflow impossible.
//! 3. **A role is handed out whole.** Assigning or unassigning a role needs every admin
//!    function the role carries.
//! 4. **Nobody with fewer functions touches a user with more.** Acting on a user
//!    (disabling, enabling, changing event access, generating or revoking a key,
//!    assigning or unassigning a role) needs every admin function that user's roles
//!    carry, enabled or not.
//! 5. **The system acts only where no user can.** keyledger itself (`system`) initialises
//!    a ledger that has no standing administrator, recovers an administrator at the
//!    operator's request, and records what keys did; it makes no other change.
//! 6. **Somebody can always administer.** A change that would leave no standing
//!    administrator (an enabled user holding every admin function whose current key is
//!    neither revoked nor set to expire) is refused, whoever asks. A key that expires
//!    does not count, because time alone would then lock everyone out.
//!
//! Rules 1 to 5 are judged per event by [`authorise`], which `decide` runs on every
//! event it produces and `verify` runs on every record of a bundle. Rule 6 is a property
//! of the state after a command, judged by `decide` only.

use std::collections::BTreeSet;
use std::fmt;

use super::{Actor, Command, Context, DomainError, Event, FunctionId, FunctionSet, Key, KeyHash, RoleId, State};
use super::{KeyStatus, Timestamp, UserId};

/// Why an actor may not make a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// The actor is not a user of this ledger.
    UnknownActor,
    /// The actor's user is disabled.
    Disabled,
    /// The actor has no key that works now, or the key it presented no longer works.
    NoWorkingKey,
    /// The actor lacks a function the change demands.
    Lacks {
        /// The first function it lacks.
        function: FunctionId,
        /// Which rule demands it.
        because: Because,
    },
    /// The change is one only keyledger itself makes (initialising, recovering, recording).
    SystemOnly,
    /// keyledger itself makes no such change once a standing administrator exists.
    NotForTheSystem,
}

/// Which rule demands a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Because {
    /// The command's own admin function.
    Command,
    /// The function is being activated or deactivated: you can only hand out what you hold.
    HandOut,
    /// The role being assigned or unassigned carries it.
    RoleCarries(RoleId),
    /// The user acted upon holds it.
    TargetHolds(UserId),
}

impl Shortfall {
    /// The admin function the refused change needed, when one function names the
    /// shortfall: what a recorded refusal names.
    pub fn function(&self) -> Option<FunctionId> {
        match self {
            Shortfall::Lacks { function, .. } => Some(*function),
            _ => None,
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::UnknownActor => write!(f, "the actor is not a user of this ledger"),
            Shortfall::Disabled => write!(f, "the actor's user is disabled"),
            Shortfall::NoWorkingKey => write!(f, "the actor's key no longer works"),
            Shortfall::Lacks { function, because: Because::Command } => {
                write!(f, "this change needs {function}, which the actor does not hold")
            }
            Shortfall::Lacks { function, because: Because::HandOut } => write!(
                f,
                "activating or deactivating {function} needs {function}: an admin can only hand out admin functions it holds"
            ),
            Shortfall::Lacks { function, because: Because::RoleCarries(role) } => write!(
                f,
                "role {role} carries {function}, which the actor does not hold: assigning or unassigning a role needs every admin function it carries"
            ),
            Shortfall::Lacks { function, because: Because::TargetHolds(user) } => write!(
                f,
                "user {user} holds {function}, which the actor does not: acting on a user needs every admin function that user holds"
            ),
            Shortfall::SystemOnly => write!(f, "only keyledger itself makes this change"),
            Shortfall::NotForTheSystem => {
                write!(f, "keyledger itself makes no such change once the ledger has an administrator")
            }
        }
    }
}

/// The admin function a command needs of its actor, or `None` for the commands only
/// keyledger itself makes and for records of what keys did.
pub fn function_of(command: &Command) -> Option<FunctionId> {
    match command {
        Command::Bootstrap { .. }
        | Command::RecoverAdministrator { .. }
        | Command::RecordAdminAccessDenied { .. }
        | Command::RecordKeyUsage { .. } => None,
        Command::CreateRole { .. } | Command::ActivateFunctions { .. } | Command::DeactivateFunctions { .. } => {
            Some(FunctionId::ROLES_MANAGE)
        }
        Command::CreateUser { .. }
        | Command::DisableUser { .. }
        | Command::EnableUser { .. }
        | Command::AssignRole { .. }
        | Command::UnassignRole { .. } => Some(FunctionId::USERS_MANAGE),
        Command::CreateEventGroup { .. }
        | Command::AddEventToGroup { .. }
        | Command::RemoveEventFromGroup { .. }
        | Command::SetUserEventAccess { .. } => Some(FunctionId::EVENT_ACCESS_MANAGE),
        Command::GenerateKey { .. }
        | Command::RevokeKey { .. }
        | Command::ImportKey { .. }
        | Command::SetKeyPolicy { .. } => Some(FunctionId::KEYS_MANAGE),
        Command::RecordKeyLookup { .. } => Some(FunctionId::AUDIT_READ),
    }
}

/// Rule 1 for a command, before it is decided: the actor can act and holds the command's
/// function. Judged first, so that an actor without authority learns nothing about what
/// the command names.
pub(super) fn admit(state: &State, context: &Context, command: &Command) -> Result<(), DomainError> {
    let refuse = |shortfall| Err(DomainError::InsufficientAuthority { actor: context.actor.clone(), shortfall });
    let user_id = match (&context.actor, function_of(command)) {
        // Records of what keys did: the refused user records its own refusal, the system
        // its usage counts.
        (Actor::User(_), None) if matches!(command, Command::RecordAdminAccessDenied { .. }) => return Ok(()),
        (Actor::System, None) => return Ok(()),
        (Actor::User(_), None) => return refuse(Shortfall::SystemOnly),
        // The system's other changes are judged per event (rule 5).
        (Actor::System, Some(_)) => return Ok(()),
        (Actor::User(user_id), Some(_)) => user_id,
    };
    let held = match able_to_act(state, user_id, context.now, context.credential.as_ref()) {
        Ok(held) => held,
        Err(shortfall) => return refuse(shortfall),
    };
    match function_of(command) {
        Some(function) if !held.contains(function) => refuse(Shortfall::Lacks { function, because: Because::Command }),
        _ => Ok(()),
    }
}

/// Rules 1 to 5 for one event: may `actor` make it, at `at`, in `state` (the state just
/// before it)? `decide` asks this of every event a command produces; `verify` of every
/// record of a bundle, so a verified bundle proves that every change was authorised.
pub fn authorise(state: &State, actor: &Actor, at: Timestamp, event: &Event) -> Result<(), Shortfall> {
    authorise_with(state, actor, at, None, event)
}

fn authorise_with(
    state: &State,
    actor: &Actor,
    at: Timestamp,
    credential: Option<&KeyHash>,
    event: &Event,
) -> Result<(), Shortfall> {
    let demand = demand_of(state, event);
    match (actor, demand) {
        (Actor::System, Demand::Record | Demand::SystemOnly) => Ok(()),
        (Actor::System, Demand::OwnRecord(_)) => Err(Shortfall::NotForTheSystem),
        (Actor::System, Demand::Functions(_)) => {
            if has_standing_administrator(state) {
                Err(Shortfall::NotForTheSystem)
            } else {
                Ok(())
            }
        }
        (Actor::User(_), Demand::Record | Demand::SystemOnly) => Err(Shortfall::SystemOnly),
        (Actor::User(user_id), Demand::OwnRecord(subject)) => {
            if *user_id == subject {
                Ok(())
            } else {
                Err(Shortfall::SystemOnly)
            }
        }
        (Actor::User(user_id), Demand::Functions(needed)) => {
            let held = able_to_act(state, user_id, at, credential)?;
            for (functions, because) in needed {
                if let Some(function) = functions.iter().find(|function| !held.contains(*function)) {
                    return Err(Shortfall::Lacks { function, because });
                }
            }
            Ok(())
        }
    }
}

/// Rules 1 to 5 for every event of a command, each judged against the state before the
/// command. Commands never reduce their own actor's authority part-way (the self-lockout
/// rules see to that), so this equals judging each event against the state just before it.
pub(super) fn authorise_events(state: &State, context: &Context, events: &[Event]) -> Result<(), DomainError> {
    for event in events {
        authorise_with(state, &context.actor, context.now, context.credential.as_ref(), event)
            .map_err(|shortfall| DomainError::InsufficientAuthority { actor: context.actor.clone(), shortfall })?;
    }
    Ok(())
}

/// What an event demands of its actor.
enum Demand {
    /// Functions, each set with the rule that demands it.
    Functions(Vec<(FunctionSet, Because)>),
    /// A record only keyledger itself makes (key usage).
    Record,
    /// A record the named user makes of its own refusal.
    OwnRecord(UserId),
    /// A change only keyledger itself makes, at the operator's request: recovering an
    /// administrator.
    SystemOnly,
}

fn demand_of(state: &State, event: &Event) -> Demand {
    let one = |function: FunctionId| {
        let mut set = FunctionSet::EMPTY;
        set.insert(function);
        set
    };
    let command = |function| (one(function), Because::Command);
    let target = |user_id: &UserId| (admin_functions_of_user(state, user_id), Because::TargetHolds(user_id.clone()));
    let role = |role_id: &RoleId| {
        let carried = state.role(role_id).map_or(FunctionSet::EMPTY, |role| admin_only(role.functions()));
        (carried, Because::RoleCarries(role_id.clone()))
    };
    let handed_out = |function: &FunctionId| {
        let set = if function.is_admin() { one(*function) } else { FunctionSet::EMPTY };
        (set, Because::HandOut)
    };
    let functions = match event {
        Event::RoleCreated { .. } => vec![command(FunctionId::ROLES_MANAGE)],
        Event::FunctionActivated { function, .. } | Event::FunctionDeactivated { function, .. } => {
            vec![command(FunctionId::ROLES_MANAGE), handed_out(function)]
        }
        Event::UserCreated { .. } => vec![command(FunctionId::USERS_MANAGE)],
        Event::UserDisabled { user_id } | Event::UserEnabled { user_id } => {
            vec![command(FunctionId::USERS_MANAGE), target(user_id)]
        }
        Event::RoleAssigned { user_id, role_id } | Event::RoleUnassigned { user_id, role_id } => {
            vec![command(FunctionId::USERS_MANAGE), role(role_id), target(user_id)]
        }
        Event::EventGroupCreated { .. } | Event::EventAddedToGroup { .. } | Event::EventRemovedFromGroup { .. } => {
            vec![command(FunctionId::EVENT_ACCESS_MANAGE)]
        }
        Event::EventAccessSet { user_id, .. } => vec![command(FunctionId::EVENT_ACCESS_MANAGE), target(user_id)],
        Event::KeyGenerated { user_id, .. }
        | Event::KeyRevoked { user_id, .. }
        | Event::KeyImported { user_id, .. } => {
            vec![command(FunctionId::KEYS_MANAGE), target(user_id)]
        }
        Event::KeyPolicySet { .. } => vec![command(FunctionId::KEYS_MANAGE)],
        Event::AdminAccessDenied { user_id, .. } => return Demand::OwnRecord(user_id.clone()),
        Event::KeyLookedUp { .. } => vec![command(FunctionId::AUDIT_READ)],
        Event::KeyUsageRecorded { .. } | Event::KeyUsageIntervalRecorded { .. } => return Demand::Record,
        Event::AdministratorRecovered { .. } => return Demand::SystemOnly,
    };
    Demand::Functions(functions)
}

/// Rule 1: the functions of a user who can act at `at` (enabled, with a working key: the
/// one presented, when known), or why it cannot.
fn able_to_act(
    state: &State,
    user_id: &UserId,
    at: Timestamp,
    credential: Option<&KeyHash>,
) -> Result<FunctionSet, Shortfall> {
    let user = state.user(user_id).ok_or(Shortfall::UnknownActor)?;
    if !user.is_enabled() {
        return Err(Shortfall::Disabled);
    }
    let works =
        |hash: &KeyHash| state.key(hash).is_some_and(|key| key.user_id() == user_id && works_at(state, key, at));
    let has_working_key = match credential {
        Some(presented) => works(presented),
        None => [user.current_key(), user.grace_key()].into_iter().flatten().any(|hash| works(&hash)),
    };
    if !has_working_key {
        return Err(Shortfall::NoWorkingKey);
    }
    Ok(state.functions_of(user))
}

/// Whether the key passes checks at `at`, judged as the check judges it.
fn works_at(state: &State, key: &Key, at: Timestamp) -> bool {
    state.key_state(key, at).is_usable()
}

fn admin_only(functions: FunctionSet) -> FunctionSet {
    functions.iter().filter(|function| function.is_admin()).collect()
}

fn admin_functions_of_user(state: &State, user_id: &UserId) -> FunctionSet {
    state.user(user_id).map_or(FunctionSet::EMPTY, |user| admin_only(state.functions_of(user)))
}

fn holds_every_admin_function(functions: FunctionSet) -> bool {
    FunctionSet::all_admin().iter().all(|function| functions.contains(function))
}

/// Whether a key keeps working with nobody acting: current, not revoked, no expiry. This
/// asks about every time to come, not one: such a key is active at any time
/// ([`Key::state_at`]).
fn lasts(key: &Key) -> bool {
    key.status() == KeyStatus::Active && key.expires_at().is_none()
}

/// A standing administrator: an enabled user holding every admin function whose current
/// key is neither revoked nor set to expire.
pub fn is_standing_administrator(state: &State, user_id: &UserId) -> bool {
    state.user(user_id).is_some_and(|user| {
        user.is_enabled()
            && holds_every_admin_function(state.functions_of(user))
            && user.current_key().and_then(|hash| state.key(&hash)).is_some_and(lasts)
    })
}

/// The users who could be standing administrators: the holders of roles that carry an
/// admin function.
fn administrator_candidates(state: &State) -> BTreeSet<&UserId> {
    state.roles_after(0).filter(|role| role.functions().has_admin()).flat_map(|role| role.holders()).collect()
}

/// Whether the ledger has a standing administrator.
pub fn has_standing_administrator(state: &State) -> bool {
    administrator_candidates(state).into_iter().any(|user| is_standing_administrator(state, user))
}

/// Rule 6: refuses a command whose events would leave no standing administrator where
/// there was one.
pub(super) fn keeps_an_administrator(state: &State, events: &[Event]) -> Result<(), DomainError> {
    if !events.iter().any(could_end_a_standing) {
        return Ok(());
    }
    let standing: Vec<&UserId> =
        administrator_candidates(state).into_iter().filter(|user| is_standing_administrator(state, user)).collect();
    if standing.is_empty() || standing.iter().any(|user| stands_after(state, user, events)) {
        Ok(())
    } else {
        Err(DomainError::LastAdministrator)
    }
}

fn could_end_a_standing(event: &Event) -> bool {
    match event {
        Event::UserDisabled { .. }
        | Event::RoleUnassigned { .. }
        | Event::FunctionDeactivated { .. }
        | Event::KeyRevoked { .. } => true,
        Event::KeyGenerated { expires_at, .. } | Event::KeyImported { expires_at, .. } => expires_at.is_some(),
        _ => false,
    }
}

/// Whether `user_id` is a standing administrator once `events` are applied to `state`.
fn stands_after(state: &State, user_id: &UserId, events: &[Event]) -> bool {
    let Some(user) = state.user(user_id) else { return false };
    let mut enabled = user.is_enabled();
    let mut roles = user.roles().clone();
    let mut key = user.current_key().and_then(|hash| state.key(&hash)).map(|key| (key.id().clone(), lasts(key)));
    for event in events {
        match event {
            Event::UserDisabled { user_id: subject } if subject == user_id => enabled = false,
            Event::UserEnabled { user_id: subject } if subject == user_id => enabled = true,
            Event::RoleAssigned { user_id: subject, role_id } if subject == user_id => {
                roles.insert(role_id.clone());
            }
            Event::RoleUnassigned { user_id: subject, role_id } if subject == user_id => {
                roles.remove(role_id);
            }
            Event::KeyGenerated { user_id: subject, key_id, expires_at, .. }
            | Event::KeyImported { user_id: subject, key_id, expires_at, .. }
                if subject == user_id =>
            {
                key = Some((key_id.clone(), expires_at.is_none()));
            }
            Event::KeyRevoked { user_id: subject, key_id }
                if subject == user_id && key.as_ref().is_some_and(|(current, _)| current == key_id) =>
            {
                key = None;
            }
            _ => {}
        }
    }
    let functions =
        roles.iter().fold(FunctionSet::EMPTY, |held, role_id| held.union(functions_after(state, role_id, events)));
    enabled && key.is_some_and(|(_, lasting)| lasting) && holds_every_admin_function(functions)
}

fn functions_after(state: &State, role_id: &RoleId, events: &[Event]) -> FunctionSet {
    let mut functions = state.role(role_id).map_or(FunctionSet::EMPTY, |role| role.functions());
    for event in events {
        match event {
            Event::FunctionActivated { role_id: subject, function } if subject == role_id => {
                functions.insert(*function)
            }
            Event::FunctionDeactivated { role_id: subject, function } if subject == role_id => {
                functions.remove(*function)
            }
            _ => {}
        }
    }
    functions
}
