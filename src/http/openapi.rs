//! The one OpenAPI document: every operation, every schema, the security schemes.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::position::PositionSpec;

use super::{
    audit, checks, functions, groups, health, integrity, keys, lookup, metrics, refusals, report, review, roles, users,
    watch, whoami,
};

/// The keyledger API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyledger",
        description = "Decides which apps may use the event-management API, and proves every change ever made to that decision. \
Admins manage roles, users, event access and API keys; apps and gateways check keys. \
Errors are RFC 9457 problem documents with a stable `code`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        health::health,
        health::health_live,
        health::health_ready,
        functions::list_functions,
        roles::create_role,
        roles::list_roles,
        roles::get_role,
        roles::activate_functions,
        roles::deactivate_functions,
        users::create_user,
        users::list_users,
        users::get_user,
        users::disable_user,
        users::enable_user,
        users::assign_role,
        users::unassign_role,
        users::set_user_event_access,
        refusals::list_key_refusals,
        groups::create_event_group,
        groups::list_event_groups,
        groups::get_event_group,
        groups::add_event_to_group,
        groups::remove_event_from_group,
        keys::generate_key,
        keys::revoke_key,
        checks::check_key,
        checks::authorize_request,
        whoami::who_am_i,
        audit::list_audit_events,
        watch::watch_audit_events,
        audit::verify_audit_log,
        review::get_permissions_at,
        review::who_can,
        review::diff_permissions,
        integrity::get_checkpoint,
        integrity::list_checkpoints,
        integrity::get_inclusion_proof,
        integrity::get_consistency_proof,
        integrity::get_signing_key,
        integrity::export_audit_bundle,
        report::access_report,
        metrics::get_metrics,
        report::get_credential_report,
        lookup::lookup_key,
    ),
    modifiers(&SecuritySchemes, &PositionSpec),
    tags(
        (name = "functions", description = "The function catalogue"),
        (name = "roles", description = "Roles and their functions"),
        (name = "users", description = "Users and their roles"),
        (name = "event access", description = "Event access groups and users' event access"),
        (name = "keys", description = "API keys"),
        (name = "checks", description = "Key checks for apps and gateways"),
        (name = "audit", description = "The hash-chained audit trail: records, signed checkpoints, Merkle proofs, export, and the permission view at any point of it"),
        (name = "health", description = "Liveness and readiness"),
        (name = "metrics", description = "Prometheus metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let key_as = |scheme, description| {
            SecurityScheme::Http(Http::builder().scheme(scheme).description(Some(description)).build())
        };
        components
            .add_security_scheme("bearer", key_as(HttpAuthScheme::Bearer, "An API key: `Authorization: Bearer kl_…`"));
        components.add_security_scheme(
            "basic",
            key_as(HttpAuthScheme::Basic, "An API key as the password, with an empty user name"),
        );
    }
}

/// The document as pretty JSON, as checked in at `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut json = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}
