//! The access review report (`accessReport`): one row per user with their roles,
//! functions, event access and key, and the flags a reviewer looks for, as JSON or CSV.
//!
//! The rows are built by `domain::access_report`; this module only shapes them. The same
//! shapes are printed by `keyledger access-report`.
//!
//! CSV follows RFC 4180: a header row, CRLF line ends, and a cell quoted (with inner quotes
//! doubled) when it holds a comma, a quote or a line break. A cell holding several values
//! (role ids, role descriptions, functions, groups) joins them with `;`. To keep a
//! spreadsheet from running a cell as a formula, a cell that starts with `=`, `+`, `-`,
//! `@`, a tab or a carriage return gets a leading `'`, the usual neutralisation (OWASP
//! "CSV injection"); only names and role descriptions, which admins type, can start so.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::Shared;
use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded};
use crate::domain::{FunctionId, Timestamp, UnusedDays};
use crate::key_history;
pub use crate::wire::credentials::{CredentialReport, CredentialReportRow};
pub use crate::wire::report::{AccessReport, AccessReportRow, ReportFlags, ReportFormat, ReportRole};

/// How the report is asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `json` (the default) or `csv`. Without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
}

/// How the access review is asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessReportQuery {
    /// `json` (the default) or `csv`. Without it, `Accept: text/csv` asks for CSV.
    #[param(inline)]
    pub format: Option<ReportFormat>,
    /// The window of the unused access findings (each row's `unused_functions` and
    /// `unused_keys`), in days ending now: 1 to 365, default 90.
    #[param(minimum = 1, maximum = 365, example = 90)]
    pub unused_days: Option<u32>,
}

/// Which format a request asks for: `format` if given, else CSV when `Accept` names
/// `text/csv`, else JSON.
fn requested_format(request: &HttpRequest) -> Result<ReportFormat, ApiError> {
    let query: ReportQuery = super::query(request)?;
    Ok(format_of(query.format, request))
}

/// `format` if given, else CSV when `Accept` names `text/csv`, else JSON.
fn format_of(format: Option<ReportFormat>, request: &HttpRequest) -> ReportFormat {
    if let Some(format) = format {
        return format;
    }
    let accepts_csv = request
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| media.split(';').next().is_some_and(|kind| kind.trim().eq_ignore_ascii_case("text/csv")));
    if accepts_csv { ReportFormat::Csv } else { ReportFormat::Json }
}

/// The access review report: one row per user with their roles, functions, event access,
/// current key (id, age, expiry, last recorded use) and flags: a write function on an API
/// role, a key older than 90 days, a key unused for 90 days, a disabled user with a key
/// that still works; and unused access: per user, the functions its roles grant that none
/// of its keys passed a check of within `unused_days` (default 90), and its working keys
/// that passed none, from the usage records, which count every key's checks per function.
/// JSON by default; CSV with `format=csv` or `Accept: text/csv`.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "accessReport",
    tag = "audit",
    params(AccessReportQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The report", content(
            (AccessReport = "application/json"),
            (String = "text/csv", example = "user_id,name,enabled,role_ids,role_descriptions,functions,event_access,key_id,key_state,key_created_at,key_age_days,key_expires_at,key_last_used_at,write_on_api_role,key_older_than_90_days,key_unused_90_days,disabled_user_with_active_key,recovered_administrator,unused_functions,unused_key_ids\r\nusr_5f0c2a9e1b7d4c3a,Attendance app,true,role_9d8e7f6a5b4c3d2e,API Access,api.attendees.read;api.attendees.write,grp_1a2b3c4d5e6f7a8b,key_0f1e2d3c4b5a6978,active,2027-01-31T17:00:00.000Z,89,,2027-04-30T22:15:00.000Z,true,false,false,false,false,api.attendees.write,\r\n"),
        )),
        (status = 400, description = "Unknown format or query parameter, or `unused_days` not 1 to 365", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/access-report")]
pub async fn access_report(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: AccessReportQuery = super::query(&request)?;
    let format = format_of(query.format, &request);
    let unused_days = match query.unused_days {
        None => UnusedDays::DEFAULT,
        Some(days) => UnusedDays::new(days)
            .ok_or_else(|| ApiError::InvalidQuery(format!("unused_days must be 1 to {}", UnusedDays::MAX)))?,
    };
    let report = {
        let view = state.ledger.view();
        AccessReport::with_unused_days(&view, Timestamp::now(), unused_days)
    };
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    if format == ReportFormat::Csv {
        response.insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"access-report.csv\""));
    }
    Ok(match format {
        ReportFormat::Json => response.json(&report),
        ReportFormat::Csv => response.body(report.to_csv()),
    })
}

/// The credential report: one row per key ever issued, oldest first, read from the whole
/// log: its user, key id, state, when it was created, replaced (rotated) and revoked, its
/// expiry, its last recorded use and recorded checks, and the functions and event access a
/// check grants it now. JSON by default; CSV with `format=csv` or `Accept: text/csv`
/// (cells a spreadsheet would run as formulas get a leading `'`). Needs
/// `security.audit.read`, as `accessReport` does.
#[utoipa::path(
    operation_id = "getCredentialReport",
    tag = "audit",
    params(ReportQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The report", content(
            (CredentialReport = "application/json"),
            (String = "text/csv", example = "user_id,name,key_id,state,created_at,expires_at,replaced_at,replaced_by,valid_until,revoked_at,last_used_at,checks_allowed,checks_refused,functions,event_access\r\nusr_5f0c2a9e1b7d4c3a,Attendance app,key_0f1e2d3c4b5a6978,active,2027-01-31T17:00:00.000Z,,,,,,2027-04-30T22:15:00.000Z,1204,3,api.attendees.read,grp_1a2b3c4d5e6f7a8b\r\n"),
        )),
        (status = 400, description = "Unknown format or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The log could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/credential-report")]
pub async fn get_credential_report(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let format = requested_format(&request)?;
    let reader = state.clone();
    let history = web::block(move || key_history::read(reader.ledger.log()))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|error| ApiError::StorageUnavailable(error.to_string()))?;
    let report = {
        let view = state.ledger.view();
        CredentialReport::of(&history, &view, Timestamp::now())
    };
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    if format == ReportFormat::Csv {
        response.insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"credential-report.csv\""));
    }
    Ok(match format {
        ReportFormat::Json => response.json(&report),
        ReportFormat::Csv => response.body(report.to_csv()),
    })
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(access_report).service(get_credential_report);
}
