//! `whoAmI`: what the presented key may do, for the key holder itself (issue #14, point 6).
//!
//! Any working key may ask; no admin function is needed, since the answer shows only what
//! the key's own checks would say. It is built from the same view as `checkKey`, so a
//! function listed here is one `checkKey` grants, and an event listed here (or every event,
//! with `all_events`) is one it lets through. A key that would be refused gets the same 401
//! as an admin operation, and counts against the client address as a wrong key does.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::presented_key;
use super::policy::KeyPolicyLimits;
use super::problem::{ApiError, Problem};
use super::refusals::RefusalView;
use super::{Page, Shared, paginate};
use crate::domain::{self, KeyHash, Reason, Timestamp};
use crate::wire::{EventAccessView, KeyState};

/// What `whoAmI` takes: the paging of the accessible events, and whether to show the
/// key's refused checks.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WhoAmIQuery {
    /// How many events to list, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// The `events.next` value of the previous answer; omit for the first page of events.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
    /// `true` to add `refusals`: this key's most recent refused checks (at most 100).
    pub refusals: Option<bool>,
}

list_page! {
    /// A page of platform event ids.
    EventIdList of String, "The events the key may act on through its user's event groups (and the groups nested below them), sorted."
}

/// What the presented key is and may do now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "usr_5f0c2a9e1b7d4c3a",
    "name": "Attendance app",
    "key_id": "key_0f1e2d3c4b5a6978",
    "state": "active",
    "created_at": "2027-01-31T17:00:00.000Z",
    "expires_at": null,
    "valid_until": null,
    "functions": ["api.attendees.read", "api.events.read"],
    "event_access": {"all_events": false, "groups": ["grp_1a2b3c4d5e6f7a8b"]},
    "events": {"items": ["summit-2027-nyc"]},
    "legacy": false,
    "policy": {"exempt": false, "max_lifetime_days": 365, "too_old_from": "2028-01-31T17:00:00.000Z", "max_unused_days": null, "dormant_from": null, "blocked_from": "2028-01-31T17:00:00.000Z", "blocked_reason": "key_too_old"}
}))]
pub struct WhoAmI {
    /// The key's user.
    pub user_id: String,
    /// The user's display name.
    pub name: String,
    /// The key's public id.
    pub key_id: String,
    /// `active`, or `grace` for a replaced key still in its grace period (see
    /// `valid_until`). A key in any other state gets 401 instead of this answer.
    pub state: KeyState,
    /// When the key was generated.
    pub created_at: String,
    /// When the key expires, if it does.
    pub expires_at: Option<String>,
    /// For a key in its grace period, when the grace period ends and the key stops working.
    pub valid_until: Option<String>,
    /// Every function `checkKey` grants this key, in catalogue order. An event-scoped one
    /// (`scope: "event"` in `listFunctions`) passes only for the events below, unless
    /// `event_access.all_events`.
    pub functions: Vec<String>,
    /// The event access the user was given.
    pub event_access: EventAccessView,
    /// The events reached through `event_access.groups`, paged with `limit` and `after`;
    /// empty when `event_access.all_events` (every event passes).
    pub events: EventIdList,
    /// Whether the key was imported (`importKey`: an existing platform key) rather than
    /// issued by keyledger; ask an admin to rotate it.
    pub legacy: bool,
    /// Which key policy limits (`getKeyPolicy`) apply to this key and when they would
    /// start refusing it.
    pub policy: KeyPolicyLimits,
    /// With `refusals=true`: this key's most recent refused checks since the service
    /// started, most recent first (at most 100), as `listKeyRefusals` shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusals: Option<Vec<RefusalView>>,
}

/// What the presented key is and may do: its user, key id and state (with the end of its
/// grace period, if replaced), its expiry, the functions `checkKey` grants it and the events
/// it may act on (event groups resolved to event ids, paged). Any working key may ask;
/// the first call to make when a check is refused.
#[utoipa::path(
    operation_id = "whoAmI",
    tag = "checks",
    params(WhoAmIQuery),
    responses(
        (status = 200, description = "The key's identity and permissions", body = WhoAmI),
        (status = 400, description = "Bad paging parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, unknown, revoked, expired, too old or dormant key, or disabled user", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String))),
        (status = 429, description = "Too many checks with wrong keys from this address", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/whoami")]
pub async fn who_am_i(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let client = state.limiter.client_of(&request);
    state.limiter.admit(client).map_err(ApiError::TooManyFailedChecks)?;
    let Some(presented) = presented_key(&request) else {
        return Err(ApiError::Unauthenticated(
            "send an API key as `Authorization: Bearer <key>` (or as the Basic password)".to_owned(),
        ));
    };
    let now = Timestamp::now();
    let identified = {
        let view = state.ledger.view();
        KeyHash::of_presented(presented.key())
            .map_err(|_| (Reason::MalformedKey, None))
            .and_then(|hash| identify(&view, hash, now).map_err(|reason| (reason, Some(hash))))
            .map(|hash| (hash, view))
    };
    let (hash, view) = match identified {
        Ok(found) => found,
        Err((reason, known)) => {
            if let Some(hash) = known.filter(|_| reason != Reason::UnknownKey && reason.counts_as_use()) {
                state.usage.count(hash, None, false, now);
            }
            state.limiter.record(client, reason);
            return Err(ApiError::KeyRefused(reason));
        }
    };
    let query: WhoAmIQuery = super::query(&request)?;
    let page = Page::new(query.limit, query.after)?;
    let limit = page.limit()?;
    let mut answer = who_am_i_of(&view, hash, now, page.after(), limit).ok_or(ApiError::Internal)?;
    if query.refusals == Some(true) {
        let key_id = view.key(&hash).map(|key| key.id().clone()).ok_or(ApiError::Internal)?;
        let kept = state.refusals.of_key(&hash);
        answer.refusals = Some(kept.iter().map(|refusal| RefusalView::of(&key_id, refusal)).collect());
    }
    drop(view);
    state.usage.count(hash, None, true, now);
    Ok(HttpResponse::Ok().json(answer))
}

/// Judges a key as the check does, without a function: it passes if it is known, active
/// or in its grace period, and its user is enabled.
fn identify(view: &domain::State, hash: KeyHash, now: Timestamp) -> Result<KeyHash, Reason> {
    let key = view.key(&hash).ok_or(Reason::UnknownKey)?;
    if let Some(reason) = view.key_state(key, now).refusal() {
        return Err(reason);
    }
    let user = view.user_check(key.user_slot()).ok_or(Reason::UnknownKey)?;
    if !user.is_enabled() {
        return Err(Reason::UserDisabled);
    }
    Ok(hash)
}

/// The answer for a key [`identify`] passed, with the page of events after the `after`-th.
fn who_am_i_of(view: &domain::State, hash: KeyHash, now: Timestamp, after: u64, limit: usize) -> Option<WhoAmI> {
    let key = view.key(&hash)?;
    let user = view.user(key.user_id())?;
    let check = view.user_check(key.user_slot())?;
    let key_state = view.key_state(key, now);
    let events = domain::accessible_events(view, user).unwrap_or_default();
    let skip = usize::try_from(after).unwrap_or(usize::MAX);
    let (items, next) = paginate(
        events.into_iter().enumerate().skip(skip),
        limit,
        |(index, _)| *index as u64 + 1,
        |(_, event)| event.to_string(),
    );
    Some(WhoAmI {
        user_id: user.id().to_string(),
        name: user.name().to_owned(),
        key_id: key.id().to_string(),
        state: key_state.into(),
        created_at: key.created_at().to_string(),
        expires_at: key.expires_at().map(|at| at.to_string()),
        valid_until: key_state.valid_until().map(|at| at.to_string()),
        functions: check.functions().iter().map(|function| function.as_str().to_owned()).collect(),
        event_access: user.event_access().into(),
        events: EventIdList { items, next },
        legacy: key.is_legacy(),
        policy: KeyPolicyLimits::of(view, key),
        refusals: None,
    })
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(who_am_i);
}
