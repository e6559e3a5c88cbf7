//! The function catalogue.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::paginate;
use super::responses::FunctionsRead;
use crate::domain::{FunctionId, FunctionKind, FunctionScope};

/// Whether a function reads, writes or administers.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKindView {
    /// Reads platform data.
    Read,
    /// Changes platform data.
    Write,
    /// Administers keyledger.
    Admin,
}

impl From<FunctionKind> for FunctionKindView {
    fn from(kind: FunctionKind) -> Self {
        match kind {
            FunctionKind::Read => FunctionKindView::Read,
            FunctionKind::Write => FunctionKindView::Write,
            FunctionKind::Admin => FunctionKindView::Admin,
        }
    }
}

/// Whether a check of a function must name a platform event.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunctionScopeView {
    /// Acts on one event's data (attendees, sessions, invoices): a check must send
    /// `event_id` unless the user may access every event, or it is refused as
    /// `event_required`.
    Event,
    /// Acts on the whole account (events, people, administration): a check needs no
    /// `event_id`; one it sends is still tested against the user's event access.
    Account,
}

impl From<FunctionScope> for FunctionScopeView {
    fn from(scope: FunctionScope) -> Self {
        match scope {
            FunctionScope::Event => FunctionScopeView::Event,
            FunctionScope::Account => FunctionScopeView::Account,
        }
    }
}

/// A function a role can activate.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "api.attendees.read", "name": "API Resource: Attendees - Read", "kind": "read", "scope": "event"}))]
pub struct FunctionView {
    /// The stable id.
    pub id: &'static str,
    /// The display name.
    pub name: &'static str,
    /// Read, write or admin: start API roles with the read functions only.
    pub kind: FunctionKindView,
    /// Event or account: whether a check of the function must name an event.
    pub scope: FunctionScopeView,
}

impl From<FunctionId> for FunctionView {
    fn from(function: FunctionId) -> Self {
        let info = function.info();
        FunctionView { id: info.id, name: info.name, kind: info.kind.into(), scope: info.scope.into() }
    }
}

list_page! {
    /// A page of functions.
    FunctionList of FunctionView, "The functions, in catalogue order."
}

list_operation! {
    /// Lists the function catalogue: the API functions apps are checked against and the admin
    /// functions that guard this API. Needs `security.functions.read`.
    fn list_functions, path = "/v1/functions", operation_id = "listFunctions", tag = "functions",
    needs = FunctionsRead, page = FunctionList, description = "The catalogue",
    paged = |_, after, limit| {
        let numbered = FunctionId::all().zip(1u64..).skip_while(|(_, n)| *n <= after);
        paginate(numbered, limit, |(_, n)| *n, |(f, _)| FunctionView::from(f))
    },
}

/// Registers the route.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(list_functions);
}
