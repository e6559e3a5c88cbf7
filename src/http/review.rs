//! Point-in-time questions for compliance reviewers: the whole permission view at a log
//! position or time (`getPermissionsAt`), who could do a function (`whoCan`), and what
//! changed between two points (`diffPermissions`).
//!
//! Each answer replays the log from the nearest retained snapshot at or before the point
//! asked, or from the first record when there is none (see `crate::history`), off the event
//! loop. Key states are judged at the time the answer is for: the given `at`, the time of
//! the record at the given `position`, or now.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded};
use super::{Page, Shared, paginate, query};
use crate::domain::{self, ChangeKind, EventAccessReason, EventId, Fact, FunctionId, Timestamp};
use crate::history::{self, At, Cause, CausedChange, Replayed};
use crate::provenance::{self, Grants};
use crate::wire::review::strings;
pub use crate::wire::review::{
    GroupAtTimeView, HeldRoleView, KeyAtTimeView, PermissionsAt, RoleAtTimeView, UserPermissionsView,
};

/// Turns a `position` / time pair of query parameters into a point of the history.
/// Neither means the head of the log; both is refused.
fn point(
    position: Option<u64>,
    at: Option<&str>,
    names: (&str, &str),
    now: Timestamp,
    neither: At,
) -> Result<At, ApiError> {
    match (position, at) {
        (Some(_), Some(_)) => {
            Err(ApiError::ConflictingParameters(format!("give `{}` or `{}`, not both", names.0, names.1)))
        }
        (Some(position), None) if position > i64::MAX as u64 => {
            Err(ApiError::InvalidQuery(format!("{} must be between 0 and {}", names.0, i64::MAX)))
        }
        (Some(position), None) => Ok(At::Position(position)),
        (None, Some(at)) => {
            let at = Timestamp::parse(at).map_err(|error| ApiError::InvalidQuery(format!("{}: {error}", names.1)))?;
            if at > now {
                return Err(ApiError::TimeInTheFuture(at.to_string()));
            }
            Ok(At::Time(at))
        }
        (None, None) => Ok(neither),
    }
}

/// Validates the paging parameters as every list does: `limit` 1 to 1000 (default 100),
/// `after` a cursor from a previous page's `next`.
fn page(limit: Option<u32>, after: Option<u64>) -> Result<(usize, u64), ApiError> {
    let page = Page::new(limit, after)?;
    Ok((page.limit()?, page.after()))
}

/// Replays the log to `at` on a blocking thread, then answers with `answer`. The head (no
/// position or time asked) needs no replay: it is the view the service serves, copied
/// under its read lock.
async fn replay_then<T: Send + 'static>(
    state: &Shared,
    at: At,
    answer: impl FnOnce(Replayed) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let reader = state.clone();
    web::block(move || {
        let replayed = match at {
            At::Head => {
                let view = reader.ledger.view().clone();
                history::current(view, reader.ledger.log())
            }
            at => history::state_at(reader.ledger.history(), at),
        };
        replayed.map(answer)
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(ApiError::from)
}

/// Where in the log a point-in-time question is asked: a position or a time; neither
/// means now.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PermissionsQuery {
    /// Just after the record with this sequence number (0: before the first record).
    /// Key states are judged at that record's time. Not with `at`.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 42)]
    pub position: Option<u64>,
    /// At this time (RFC 3339, not in the future): just after the last record written at
    /// or before it. Key states are judged at this time. Not with `position`.
    #[param(example = "2027-01-31T17:00:00Z", format = DateTime)]
    pub at: Option<String>,
    /// How many users, roles and groups to return, together, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page; omit for the first page. Ask every page at
    /// the first page's `position`, so that all of them show the same point.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
}

/// The whole permission view as it was at a log position or a time: users, their roles,
/// functions, event access, keys and key states; roles; event groups. Without `position`
/// or `at`, the view now. A position or a time replays the log from the nearest retained
/// snapshot before it (at most two snapshot intervals of records), or from its start when
/// none is kept; now is answered from the live view. Paged: up to
/// `limit` users, roles and groups together, in creation order; follow `next` with `after`
/// at the first page's `position`.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "getPermissionsAt",
    tag = "audit",
    params(PermissionsQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The view", body = PermissionsAt),
        (status = 400, description = "Malformed query or paging parameters, or both `position` and `at` (`conflicting_parameters`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A position past the head (`position_beyond_head`), a time before the first record (`before_first_record`) or in the future (`time_in_the_future`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/permissions")]
pub async fn get_permissions_at(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: PermissionsQuery = query(&request)?;
    let (limit, after) = page(query.limit, query.after)?;
    let now = Timestamp::now();
    let at = point(query.position, query.at.as_deref(), ("position", "at"), now, At::Head)?;
    let answer =
        replay_then(&state, at, move |replayed| PermissionsAt::page(&replayed, at.as_of(&replayed, now), after, limit))
            .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Who could do a function (on an event), at a position or a time.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WhoCanQuery {
    /// The function, such as `api.attendees.read`.
    #[param(example = "api.attendees.read")]
    pub function: String,
    /// The platform event. Without it, as in `checkKey`, event access is not considered for
    /// an account-wide function, and an event-scoped one lists only users with access to
    /// every event.
    #[param(example = "summit-nyc")]
    pub event_id: Option<String>,
    /// Just after the record with this sequence number. Not with `at`.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 42)]
    pub position: Option<u64>,
    /// At this time (RFC 3339, not in the future). Not with `position`.
    #[param(example = "2027-01-31T17:00:00Z", format = DateTime)]
    pub at: Option<String>,
    /// How many users to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page; omit for the first page. Ask every page at
    /// the first page's `position`, so that all of them show the same point.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
}

/// How a user reached the event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"all_events": false, "group_chains": [["grp_1a2b3c4d5e6f7a8b", "grp_0a1b2c3d4e5f6a7b"]]}))]
pub struct EventAccessExplanation {
    /// The user could access every event.
    pub all_events: bool,
    /// Each chain runs from a group holding the event, up through its ancestors, to the
    /// group the user was granted. Empty when `all_events` is true.
    pub group_chains: Vec<Vec<String>>,
}

/// A user whose keys could do the function, and why.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "usr_5f0c2a9e1b7d4c3a",
    "name": "Attendance app",
    "key_ids": ["key_0f1e2d3c4b5a6978"],
    "via_roles": [{"id": "role_9d8e7f6a5b4c3d2e", "description": "API Access"}],
    "event_access": {"all_events": false, "group_chains": [["grp_1a2b3c4d5e6f7a8b"]]},
    "granted_by": [{
        "grants": "role role_9d8e7f6a5b4c3d2e to usr_5f0c2a9e1b7d4c3a",
        "explanation": "granted by usr_00aa11bb22cc33dd at 2027-01-31T17:00:00.000Z: OPS-1234",
        "cause": {"seq": 41, "type": "RoleAssigned", "id": "5b3c3f0e-8a57-4b7b-9d43-2f0f8cbd4a61", "at": "2027-01-31T17:00:00.000Z", "actor": "usr_00aa11bb22cc33dd", "justification": "OPS-1234"}
    }]
}))]
pub struct WhoCanUser {
    /// The user.
    pub user_id: String,
    /// The display name.
    pub name: String,
    /// The user's keys that passed checks then.
    pub key_ids: Vec<String>,
    /// The user's roles that had the function active.
    pub via_roles: Vec<HeldRoleView>,
    /// How the user reached the event; null when no event was asked about.
    pub event_access: Option<EventAccessExplanation>,
    /// The records that made each part of the answer as it stood (the function active on
    /// each role, each role assignment, the user enabled again, its event access and the
    /// event in the groups that hold it, each key), in log order: who, when and why.
    pub granted_by: Vec<GrantedBy>,
}

/// One record a whoCan answer rests on.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantedBy {
    /// What it granted, such as `role role_… to usr_…` or `api.attendees.read on role_…`.
    pub grants: String,
    /// "granted by ACTOR at TIME: JUSTIFICATION" (without the colon when no justification
    /// was given).
    pub explanation: String,
    /// The record.
    pub cause: ChangeCause,
}

impl From<&Cause> for ChangeCause {
    fn from(cause: &Cause) -> Self {
        ChangeCause {
            seq: cause.seq,
            kind: cause.kind.to_owned(),
            id: cause.id.clone(),
            at: cause.at.to_string(),
            actor: cause.actor.to_string(),
            justification: cause.justification.as_ref().map(ToString::to_string),
        }
    }
}

/// The records behind `answer` (see [`WhoCanUser::granted_by`]).
fn granted_by(
    grants: &Grants,
    answer: &domain::WhoCanAnswer,
    function: FunctionId,
    event: Option<&EventId>,
) -> Vec<GrantedBy> {
    let user = &answer.user_id;
    let mut found: Vec<(String, &Cause)> = Vec::new();
    for role in &answer.via_roles {
        found.extend(grants.activation(&role.id, function).map(|cause| (format!("{function} on {}", role.id), cause)));
        found.extend(grants.assignment(user, &role.id).map(|cause| (format!("role {} to {user}", role.id), cause)));
    }
    found.extend(grants.enabling(user).map(|cause| (format!("{user} enabled"), cause)));
    if let (Some(event), Some(reason)) = (event, &answer.event_access) {
        found.extend(grants.event_access(user).map(|cause| (format!("event access of {user}"), cause)));
        if let EventAccessReason::Groups(chains) = reason {
            for holder in chains.iter().filter_map(|chain| chain.first()) {
                found.extend(grants.event_in_group(holder, event).map(|cause| (format!("{event} in {holder}"), cause)));
            }
        }
    }
    for key in &answer.key_ids {
        found.extend(grants.key(key).map(|cause| (format!("key {key}"), cause)));
    }
    found.sort_by_key(|(_, cause)| cause.seq);
    found
        .into_iter()
        .map(|(grants, cause)| GrantedBy { grants, explanation: provenance::explanation(cause), cause: cause.into() })
        .collect()
}

/// The users whose keys could do a function (on an event).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "position": 42,
    "recorded_at": "2027-01-31T17:00:00.000Z",
    "as_of": "2027-01-31T17:00:00.000Z",
    "function": "api.attendees.read",
    "event_id": "summit-nyc",
    "users": [],
    "next": null
}))]
pub struct WhoCanAnswer {
    /// The last record the answer reflects.
    pub position: u64,
    /// When that record was written; null at position 0.
    pub recorded_at: Option<String>,
    /// The time key states were judged at.
    pub as_of: String,
    /// The function asked about.
    pub function: String,
    /// The event asked about, if any.
    pub event_id: Option<String>,
    /// The users, in creation order.
    pub users: Vec<WhoCanUser>,
    /// The `after` of the next page (at the same `position`), or null when this page is
    /// the last.
    pub next: Option<u64>,
}

impl From<&domain::WhoCanAnswer> for WhoCanUser {
    fn from(answer: &domain::WhoCanAnswer) -> Self {
        WhoCanUser {
            user_id: answer.user_id.to_string(),
            name: answer.name.clone(),
            key_ids: strings(&answer.key_ids),
            via_roles: answer.via_roles.iter().map(HeldRoleView::from).collect(),
            granted_by: Vec::new(),
            event_access: answer.event_access.as_ref().map(|reason| match reason {
                EventAccessReason::AllEvents => EventAccessExplanation { all_events: true, group_chains: vec![] },
                EventAccessReason::Groups(chains) => EventAccessExplanation {
                    all_events: false,
                    group_chains: chains.iter().map(|chain| strings(chain)).collect(),
                },
            }),
        }
    }
}

/// Which users and keys could do a function (on an event) at a log position or a time
/// (default now), each with its explanation: the roles that carried the function and the
/// chain of groups that gave access to the event. A key is listed exactly when `checkKey`
/// would have allowed it then. A position or a time replays the log from the nearest
/// retained snapshot before it, or from its start when none is kept; now is answered from
/// the live view. Paged: follow `next` with `after` at the first page's
/// `position`.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "whoCan",
    tag = "audit",
    params(WhoCanQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The users who could", body = WhoCanAnswer),
        (status = 400, description = "Malformed query or paging parameters, or both `position` and `at` (`conflicting_parameters`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A function not in the catalogue (`unknown_function`), a position past the head (`position_beyond_head`), a time before the first record (`before_first_record`) or in the future (`time_in_the_future`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/who-can")]
pub async fn who_can(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: WhoCanQuery = query(&request)?;
    let function = FunctionId::parse(&query.function).map_err(|error| ApiError::UnknownFunction(error.to_string()))?;
    let event = query
        .event_id
        .as_deref()
        .map(EventId::parse)
        .transpose()
        .map_err(|error| ApiError::InvalidQuery(format!("event_id: {error}")))?;
    let (limit, after) = page(query.limit, query.after)?;
    let now = Timestamp::now();
    let at = point(query.position, query.at.as_deref(), ("position", "at"), now, At::Head)?;
    let reader = state.clone();
    let answer = replay_then(&state, at, move |replayed| {
        let as_of = at.as_of(&replayed, now);
        let users = domain::who_can(&replayed.state, function, event.as_ref().map(EventId::as_str), as_of);
        let created =
            |answer: &&domain::WhoCanAnswer| replayed.state.user(&answer.user_id).map_or(0, |user| user.created().seq);
        let (page, next) = paginate(users.iter().filter(|answer| created(answer) > after), limit, created, |a| a);
        // Who granted what: one read of the log up to the answer's position, only when
        // someone is listed.
        let grants =
            if page.is_empty() { Ok(Grants::default()) } else { Grants::scan(reader.ledger.log(), replayed.position) };
        let grants = match grants {
            Ok(grants) => grants,
            Err(error) => return Err(ApiError::StorageUnavailable(error.to_string())),
        };
        let users = page
            .into_iter()
            .map(|answer| WhoCanUser {
                granted_by: granted_by(&grants, answer, function, event.as_ref()),
                ..WhoCanUser::from(answer)
            })
            .collect();
        Ok(WhoCanAnswer {
            position: replayed.position,
            recorded_at: replayed.recorded_at.map(|at| at.to_string()),
            as_of: as_of.to_string(),
            function: function.as_str().to_owned(),
            event_id: event.as_ref().map(ToString::to_string),
            users,
            next,
        })
    })
    .await??;
    Ok(HttpResponse::Ok().json(answer))
}

/// The two ends of a diff: each a position or a time.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Start just after the record with this sequence number (0: the beginning). One of
    /// `from_position` and `from` is required.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 40)]
    pub from_position: Option<u64>,
    /// Start just after the last record written at or before this time (RFC 3339).
    #[param(example = "2027-01-31T17:00:00Z", format = DateTime)]
    pub from: Option<String>,
    /// End with the record with this sequence number. Default: the head of the log.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 42)]
    pub to_position: Option<u64>,
    /// End with the last record written at or before this time (RFC 3339). Default: the
    /// head of the log.
    #[param(example = "2027-02-01T17:00:00Z", format = DateTime)]
    pub to: Option<String>,
}

/// One end of a diff.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"position": 42, "recorded_at": "2027-01-31T17:00:00.000Z"}))]
pub struct LogPoint {
    /// The last record before the range starts, or the last record of the range.
    pub position: u64,
    /// When that record was written; null at position 0.
    pub recorded_at: Option<String>,
}

/// Whether a permission was given or taken away.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeDirection {
    /// Given.
    Grant,
    /// Taken away.
    Revoke,
}

/// What kind of permission changed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionKind {
    /// The user being enabled: their keys may pass checks at all.
    Enabled,
    /// A function, through one of the user's roles (`function`).
    Function,
    /// Access to every event.
    AllEvents,
    /// An event group granted to the user (`group_id`).
    EventGroup,
    /// An event reached through the granted groups (`event_id`).
    Event,
    /// A key that passes checks (`key_id`).
    Key,
}

/// What changed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "function", "function": "api.attendees.write"}))]
pub struct ChangedPermission {
    /// The kind of permission; the member named after it says which one.
    pub kind: PermissionKind,
    /// For `function`: the function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// For `event_group`: the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// For `event`: the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// For `key`: the key's public id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl From<&Fact> for ChangedPermission {
    fn from(fact: &Fact) -> Self {
        let bare = |kind| ChangedPermission { kind, function: None, group_id: None, event_id: None, key_id: None };
        match fact {
            Fact::Enabled => bare(PermissionKind::Enabled),
            Fact::Function(function) => {
                ChangedPermission { function: Some(function.as_str().to_owned()), ..bare(PermissionKind::Function) }
            }
            Fact::AllEvents => bare(PermissionKind::AllEvents),
            Fact::EventGroup(group) => {
                ChangedPermission { group_id: Some(group.to_string()), ..bare(PermissionKind::EventGroup) }
            }
            Fact::Event(event) => {
                ChangedPermission { event_id: Some(event.to_string()), ..bare(PermissionKind::Event) }
            }
            Fact::Key(key) => ChangedPermission { key_id: Some(key.to_string()), ..bare(PermissionKind::Key) },
        }
    }
}

/// The record that caused a change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 41, "type": "FunctionActivated", "id": "5b3c3f0e-8a57-4b7b-9d43-2f0f8cbd4a61", "at": "2027-01-31T17:00:00.000Z", "actor": "usr_00aa11bb22cc33dd", "justification": "OPS-1234"}))]
pub struct ChangeCause {
    /// The record's sequence number.
    pub seq: u64,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's unique id.
    pub id: String,
    /// When it was recorded.
    pub at: String,
    /// Who made the change: a user id, or `system`.
    pub actor: String,
    /// Why, as the admin said in `Keyledger-Justification`; null when it did not.
    pub justification: Option<String>,
}

/// One permission given or taken away from one user, and the record that did it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "change": "revoke",
    "user_id": "usr_5f0c2a9e1b7d4c3a",
    "what": {"kind": "key", "key_id": "key_0f1e2d3c4b5a6978"},
    "until": "2027-01-31T18:00:00.000Z",
    "cause": {"seq": 42, "type": "KeyGenerated", "id": "5b3c3f0e-8a57-4b7b-9d43-2f0f8cbd4a61", "at": "2027-01-31T17:00:00.000Z", "actor": "usr_00aa11bb22cc33dd"}
}))]
pub struct PermissionChange {
    /// Given or taken away.
    pub change: ChangeDirection,
    /// The user whose permissions changed.
    pub user_id: String,
    /// What changed.
    pub what: ChangedPermission,
    /// For a granted key, when it expires. For a revoked key that keeps a grace period
    /// (a rotation with `grace_seconds`), when it stops working. Otherwise null: at once,
    /// and for good.
    pub until: Option<String>,
    /// The record that did it.
    pub cause: ChangeCause,
}

impl From<&CausedChange> for PermissionChange {
    fn from(caused: &CausedChange) -> Self {
        let (change, cause) = (&caused.change, &caused.cause);
        PermissionChange {
            change: match change.kind {
                ChangeKind::Grant => ChangeDirection::Grant,
                ChangeKind::Revoke => ChangeDirection::Revoke,
            },
            user_id: change.user_id.to_string(),
            what: (&change.fact).into(),
            until: change.until.map(|at| at.to_string()),
            cause: cause.into(),
        }
    }
}

/// What changed between two points of the log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "from": {"position": 40, "recorded_at": "2027-01-31T16:00:00.000Z"},
    "to": {"position": 42, "recorded_at": "2027-01-31T17:00:00.000Z"},
    "changes": [{
        "change": "grant",
        "user_id": "usr_5f0c2a9e1b7d4c3a",
        "what": {"kind": "function", "function": "api.attendees.write"},
        "until": null,
        "cause": {"seq": 41, "type": "FunctionActivated", "id": "5b3c3f0e-8a57-4b7b-9d43-2f0f8cbd4a61", "at": "2027-01-31T16:30:00.000Z", "actor": "usr_00aa11bb22cc33dd"}
    }]
}))]
pub struct PermissionDiff {
    /// The range starts just after this record.
    pub from: LogPoint,
    /// The range ends with this record.
    pub to: LogPoint,
    /// The changes, in log order, and by user id within one record.
    pub changes: Vec<PermissionChange>,
}

/// What changed between two log positions or times, as grants and revocations of
/// permissions (being enabled, functions, event access, events reached, keys), each with
/// the record that caused it. A key rotation is a grant of the new key and a revocation of
/// the old one, with `until` when the old key keeps a grace period. Replays the log from
/// the nearest retained snapshot before `from`, or from its start when none is kept.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "diffPermissions",
    tag = "audit",
    params(DiffQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The changes", body = PermissionDiff),
        (status = 400, description = "Malformed query, no start, or both a position and a time for one end (`conflicting_parameters`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A position past the head (`position_beyond_head`), a time before the first record (`before_first_record`) or in the future (`time_in_the_future`), or an end before the start (`reversed_range`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/diff")]
pub async fn diff_permissions(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: DiffQuery = query(&request)?;
    let now = Timestamp::now();
    if query.from_position.is_none() && query.from.is_none() {
        return Err(ApiError::InvalidQuery("give the start as `from_position` or `from`".to_owned()));
    }
    let from = point(query.from_position, query.from.as_deref(), ("from_position", "from"), now, At::Position(0))?;
    let to = point(query.to_position, query.to.as_deref(), ("to_position", "to"), now, At::Head)?;
    let reader = state.clone();
    let diff = web::block(move || history::diff(reader.ledger.history(), from, to))
        .await
        .map_err(|_| ApiError::Internal)??;
    let point = |position, recorded_at: Option<Timestamp>| LogPoint {
        position,
        recorded_at: recorded_at.map(|at| at.to_string()),
    };
    Ok(HttpResponse::Ok().json(PermissionDiff {
        from: point(diff.from, diff.from_recorded_at),
        to: point(diff.to, diff.to_recorded_at),
        changes: diff.changes.iter().map(PermissionChange::from).collect(),
    }))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(get_permissions_at).service(who_can).service(diff_permissions);
}
