//! The HTTP API: actix-web handlers, one module per resource, documented with utoipa.
//!
//! Handlers convert between HTTP types (DTOs, which derive `ToSchema`) and domain types
//! explicitly; domain types never appear in the spec. Every admin handler authenticates
//! and checks its admin function first, then parses its query and body, then submits a
//! command.

/// Defines the page type of a list: `items`, described by `$items`, and the cursor of the
/// next page. Every list of resources answers this shape; only the item type and the
/// description of `items` tell them apart in the spec.
macro_rules! list_page {
    ($(#[$doc:meta])* $name:ident of $item:ty, $items:literal) => {
        $(#[$doc])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            #[doc = $items]
            pub items: Vec<$item>,
            /// The `after` value for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next: Option<u64>,
        }

        impl $crate::http::ListPage for $name {
            type Item = $item;

            fn new(items: Vec<$item>, next: Option<u64>) -> Self {
                $name { items, next }
            }
        }
    };
}

/// Defines a list operation: its `#[utoipa::path]` and its handler, which answers through
/// [`list`] with the page `paged` makes of the permission view. The guard checks the
/// function `needs` names, and the spec's 403 names the same one. Every list of the view
/// is this operation over another page type; only the documentation tells them apart.
macro_rules! list_operation {
    (
        $(#[$doc:meta])*
        fn $name:ident, path = $path:literal, operation_id = $operation_id:literal, tag = $tag:literal,
        needs = $needs:ident, page = $page:ident, description = $description:literal,
        paged = $paged:expr $(,)?
    ) => {
        $(#[$doc])*
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $operation_id,
            tag = $tag,
            params($crate::http::Page),
            responses(
                $crate::http::responses::Paged<$needs>,
                (status = 200, description = $description, body = $page),
            ),
            security(("bearer" = []), ("basic" = []))
        )]
        #[actix_web::get($path)]
        pub async fn $name(
            state: $crate::http::Shared,
            request: actix_web::HttpRequest,
        ) -> Result<actix_web::HttpResponse, $crate::http::problem::ApiError> {
            use $crate::http::responses::Needs as _;
            $crate::http::list::<$page>(&state, &request, $needs::FUNCTION, $paged)
        }
    };
}

pub mod audit;
pub mod auth;
pub mod body;
pub mod checks;
pub mod denials;
pub mod functions;
pub mod groups;
pub mod health;
pub mod import;
pub mod integrity;
pub mod keys;
pub mod lookup;
pub mod metrics;
pub mod mutation;
pub mod openapi;
pub mod params;
pub mod policy;
pub mod position;
pub mod problem;
pub mod refusals;
pub mod report;
pub mod responses;
pub mod review;
pub mod roles;
pub mod routing;
pub mod throttle;
pub mod usage;
pub mod users;
pub mod watch;
pub mod whoami;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::domain::{self, Actor, Command, DomainError, FunctionId, KeyHash, Timestamp, UserId};
use crate::ledger::{Applied, Ledger, Render, Rendered, Request, SubmitError};
use crate::log::AnyLog;
pub use crate::wire::paginate;
use problem::ApiError;

/// What every handler shares.
pub struct AppState {
    /// The ledger.
    pub ledger: Ledger<AnyLog>,
    /// Recently seen idempotency keys.
    pub idempotency: mutation::IdempotencyCache,
    /// Per-client limits on refused key checks.
    pub limiter: throttle::FailureLimiter,
    /// Checks per key since usage was last recorded.
    pub usage: usage::KeyUsageCounter,
    /// Per-key limits on recording refused admin requests.
    pub denials: denials::DenialLimiter,
    /// The operationId of every route, for records of refused admin requests.
    pub operations: denials::OperationIds,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// What the change feeds (`watchAuditEvents`) share.
    pub followers: watch::Followers,
    /// Key checks answered, by endpoint and reason, for `/metrics`.
    pub checks: crate::metrics::CheckCounters,
    /// The recent refused checks of each key (`listKeyRefusals`).
    pub refusals: refusals::RefusalLog,
    /// Whether a change that grants access needs a `Keyledger-Justification`
    /// (`--require-justification`; see `domain::justification_required_for`).
    pub require_justification: bool,
}

/// The key an admin request authenticated with, kept in the request's extensions by the
/// guard for the command it submits.
#[derive(Debug, Clone, Copy)]
struct Credential(KeyHash);

/// The shared state as handlers receive it (named apart from `domain::State`, the
/// permission view).
pub type Shared = web::Data<AppState>;

impl AppState {
    /// The admin guard: authenticates the request's key and checks it holds `function`.
    /// A client that made too many checks with wrong keys is refused (429) first.
    ///
    /// A known key's request counts as a use of the key, passed or refused. A working key
    /// that lacks the function (403) is also recorded as an `AdminAccessDenied`, within the
    /// per-key limit, in the background: the 403 does not wait for the record.
    pub fn authorize(&self, request: &HttpRequest, function: FunctionId) -> Result<UserId, ApiError> {
        let client = self.limiter.client_of(request);
        self.limiter.admit(client).map_err(ApiError::TooManyFailedChecks)?;
        let now = Timestamp::now();
        let guarded = auth::require(&*self.ledger.checks(), request, function, now);
        // A dormant key's refused attempts are not a use of it (`Reason::counts_as_use`).
        let dormant = matches!(guarded.outcome, Err(ApiError::KeyRefused(reason)) if !reason.counts_as_use());
        if let Some(key) = guarded.known_key.as_ref().filter(|_| !dormant) {
            self.usage.count(key.hash, Some(function), guarded.outcome.is_ok(), now);
        }
        match (&guarded.outcome, guarded.known_key) {
            (Err(ApiError::KeyRefused(reason)), _) => self.limiter.record(client, *reason),
            (Err(ApiError::Forbidden(_)), Some(key)) => self.record_denial(request, function, key.hash, key.user_id),
            // The key that passed is the command's credential: the writer refuses the
            // command if the key stops working before it is applied.
            (Ok(_), Some(key)) => {
                request.extensions_mut().insert(Credential(key.hash));
            }
            _ => {}
        }
        guarded.outcome
    }

    /// Records a request refused for lack of `function`, unless the key's limit is spent.
    fn record_denial(&self, request: &HttpRequest, function: FunctionId, key_hash: KeyHash, user_id: UserId) {
        let Some(suppressed) = self.denials.admit(key_hash, std::time::Instant::now()) else {
            return;
        };
        let Some(state) = request.app_data::<Shared>().cloned() else {
            tracing::warn!("cannot record a refused admin request: no shared state");
            return;
        };
        let command = Command::RecordAdminAccessDenied {
            key_hash,
            operation: self.operations.of(request),
            function,
            target: denials::target_of(request),
            suppressed,
        };
        let request =
            Request { actor: Actor::User(user_id), expected_version: None, credential: None, justification: None };
        actix_web::rt::spawn(async move {
            if let Err(error) = state.ledger.submit(command, request).await {
                tracing::warn!(%error, suppressed, "recording a refused admin request failed");
            }
        });
    }

    /// Submits a command on behalf of `actor`, honouring the request's `If-Match`.
    ///
    /// The writer judges the actor's authority again when it applies the command; a
    /// command refused for lack of authority there is recorded like a refusal by the
    /// guard.
    pub async fn submit(&self, command: Command, request: &HttpRequest, actor: &UserId) -> Result<Applied, ApiError> {
        self.submit_rendering(command, request, actor, None).await.map(|(applied, _)| applied)
    }

    /// [`AppState::submit`], with the writer reading the state the command left through
    /// `render` ([`crate::ledger::Render`]), for the mutation's answer.
    pub async fn submit_rendering(
        &self,
        command: Command,
        request: &HttpRequest,
        actor: &UserId,
        render: Option<Render>,
    ) -> Result<(Applied, Option<Rendered>), ApiError> {
        let expected_version = mutation::expected_version(request)?;
        let justification = mutation::justification(request)?;
        if self.require_justification && justification.is_none() && domain::justification_required_for(&command) {
            return Err(ApiError::JustificationRequired);
        }
        let credential = request.extensions().get::<Credential>().map(|credential| credential.0);
        let needed = domain::function_of_command(&command);
        let submitted = Request { actor: Actor::User(actor.clone()), expected_version, credential, justification };
        let outcome = match render {
            Some(render) => self.ledger.submit_rendering(command, submitted, render).await,
            None => self.ledger.submit(command, submitted).await.map(|applied| (applied, None)),
        };
        if let (Err(SubmitError::Refused(DomainError::InsufficientAuthority { shortfall, .. })), Some(key)) =
            (&outcome, credential)
            && let Some(function) = shortfall.function().or(needed)
        {
            self.record_denial(request, function, key, actor.clone());
        }
        Ok(outcome?)
    }
}

/// The paging parameters every list takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// How many items to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page; omit for the first page.
    #[param(minimum = 0, maximum = 9223372036854775807_i64, example = 0)]
    pub after: Option<u64>,
}

/// Parses the query string into `T`. Called after the admin guard, so an anonymous caller
/// learns nothing from a bad query.
pub fn query<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::InvalidQuery(error.to_string()))
}

impl Page {
    /// Reads the paging parameters from the query string, after the admin guard.
    pub fn of(request: &HttpRequest) -> Result<Page, ApiError> {
        let page: Page = query(request)?;
        Page::new(page.limit, page.after)
    }

    /// Paging parameters, as a query with other parameters too reads them, checked as
    /// every list checks them.
    pub fn new(limit: Option<u32>, after: Option<u64>) -> Result<Page, ApiError> {
        // The spec says int64, as every client language can hold.
        if after.is_some_and(|after| after > i64::MAX as u64) {
            return Err(ApiError::InvalidQuery(format!("after must be between 0 and {}", i64::MAX)));
        }
        Ok(Page { limit, after })
    }

    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size asked for, validated.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(Self::DEFAULT_LIMIT) {
            limit @ 1..=Self::MAX_LIMIT => Ok(limit as usize),
            _ => Err(ApiError::InvalidQuery(format!("limit must be between 1 and {}", Self::MAX_LIMIT))),
        }
    }

    /// The cursor to list after.
    pub fn after(&self) -> u64 {
        self.after.unwrap_or(0)
    }
}

/// The page type of a list, as `list_page!` defines it.
pub trait ListPage: Serialize {
    /// What the list holds.
    type Item;
    /// A page of `items`, with the `after` value of the next page if there is one.
    fn new(items: Vec<Self::Item>, next: Option<u64>) -> Self;
}

/// Answers a list operation: the admin guard for `function`, the paging parameters, then
/// the page `paged` makes of the permission view from the cursor and the page size.
pub fn list<L: ListPage>(
    state: &Shared,
    request: &HttpRequest,
    function: FunctionId,
    paged: impl FnOnce(&domain::State, u64, usize) -> (Vec<L::Item>, Option<u64>),
) -> Result<HttpResponse, ApiError> {
    state.authorize(request, function)?;
    let page = Page::of(request)?;
    let limit = page.limit()?;
    let (items, next) = paged(&state.ledger.view(), page.after(), limit);
    Ok(HttpResponse::Ok().json(L::new(items, next)))
}

/// Answers the read of one resource (`getUser`, `getRole`, `getEventGroup`): its view, with
/// its version as the `ETag`, or 404. The caller has passed the admin guard.
pub fn get<T: mutation::Target>(state: &Shared, id: T) -> Result<HttpResponse, ApiError> {
    let view = state.ledger.view();
    let (shown, version) =
        id.show(&view).ok_or_else(|| ApiError::NotFound { resource: T::RESOURCE, id: id.to_string() })?;
    Ok(HttpResponse::Ok().insert_header(("ETag", format!("\"{version}\""))).json(shown))
}

/// Registers every route. actix tries routes in this order, and a route with a path
/// parameter costs a regular-expression match, so the hot paths (health and the key
/// checks, all static) come first and pay for no admin route.
pub fn configure(config: &mut web::ServiceConfig) {
    health::configure(config);
    checks::configure(config);
    whoami::configure(config);
    functions::configure(config);
    users::configure(config);
    refusals::configure(config);
    roles::configure(config);
    groups::configure(config);
    keys::configure(config);
    import::configure(config);
    policy::configure(config);
    audit::configure(config);
    watch::configure(config);
    integrity::configure(config);
    report::configure(config);
    lookup::configure(config);
    review::configure(config);
}
