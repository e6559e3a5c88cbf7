//! The access review screen: the access report's findings as a table with severity, the
//! charts (keys by age, keys by last use, checks allowed and refused per day), the full
//! report as a table, and its CSV download (the same CSV as `accessReport`'s). Mirrors
//! `accessReport` (`security.audit.read`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, PreEscaped, html};

use super::access::{self, CHECK_DAYS, Finding};
use super::charts::{self, ChartText};
use super::failed;
use crate::console::ConsoleError;
use crate::console::layout;
use crate::console::session::Admin;
use crate::domain::{self, AccessReviewRow, FunctionId, REVIEW_PERIOD_DAYS, Timestamp};
use crate::http::Shared;
use crate::wire::report::AccessReport;

const HERE: &str = "/console/access-review";
const TITLE: &str = "Access review";

/// `GET /console/access-review`.
async fn show(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let now = Timestamp::now();
    let reader = state.clone();
    let days = web::block(move || access::checks_per_day(reader.ledger.log(), now))
        .await
        .map_err(|_| ConsoleError::Unavailable)?;
    let days = match days {
        Ok(days) => days,
        Err(error) => {
            let reason = format!("The usage records could not be read: {error}.");
            return Ok(failed(&admin, HERE, TITLE, StatusCode::SERVICE_UNAVAILABLE, &reason));
        }
    };
    let (rows, position) = {
        let view = state.ledger.view();
        (domain::access_report(&view, now), view.head())
    };
    let findings = access::findings(&rows);
    let age = charts::bar_chart(
        &ChartText {
            id: "chart-age",
            title: "Keys by age",
            summary: "Current keys that pass checks, by days since generated.",
        },
        &access::keys_by_age(&rows),
    );
    let use_ = charts::bar_chart(
        &ChartText {
            id: "chart-last-use",
            title: "Keys by last use",
            summary: "Current keys that pass checks, by their last recorded use.",
        },
        &access::keys_by_last_use(&rows, now),
    );
    let checks = charts::checks_chart(
        &ChartText {
            id: "chart-checks",
            title: "Checks per day",
            summary: "Checks allowed and refused per UTC day over the last 14 days, from the usage records.",
        },
        &days,
    );
    let content = html! {
        p.meta { "Judged at " time datetime=(now.to_string()) { (now.to_string()) } ", after record " (position)
            "; the review period is " (REVIEW_PERIOD_DAYS) " days." }
        div.tools { a download="access-report.csv" href=(format!("{HERE}/report.csv")) { "Download the report (CSV)" } }
        section aria-labelledby="findings-heading" {
            h2 #findings-heading { "Findings" }
            (findings_table(&findings))
        }
        section aria-labelledby="charts-heading" {
            h2 #charts-heading { "Pictures" }
            div.charts {
                figure aria-labelledby="chart-age-caption" {
                    figcaption #chart-age-caption { "Keys by age" }
                    (PreEscaped(age))
                }
                figure aria-labelledby="chart-last-use-caption" {
                    figcaption #chart-last-use-caption { "Keys by last use" }
                    (PreEscaped(use_))
                }
                figure.wide aria-labelledby="chart-checks-caption" {
                    figcaption #chart-checks-caption { "Checks per day, last " (CHECK_DAYS) " days (UTC)" }
                    (PreEscaped(checks))
                }
            }
            p.hint { "The key charts count current keys that pass checks now (enabled user, active or in grace). Checks come from the usage records, written every few minutes: the latest checks appear after the next one." }
        }
        section aria-labelledby="users-heading" {
            h2 #users-heading { "Every user" }
            (users_table(&rows))
        }
    };
    Ok(layout::respond(StatusCode::OK, super::page(&admin, HERE, TITLE, content)))
}

fn findings_table(findings: &[Finding]) -> Markup {
    html! {
        @if findings.is_empty() {
            p { "Nothing to flag: no disabled user with a working key, no recovered administrator, no key older than the review period, no API role that can write." }
        } @else {
            div.table-wrap { table.stack.findings {
                caption.visually-hidden { "Findings, most severe first" }
                thead { tr { th scope="col" { "Severity" } th scope="col" { "User" } th scope="col" { "Finding" } th scope="col" { "What it means" } } }
                tbody {
                    @for finding in findings {
                        tr {
                            td data-label="Severity" { span class=(format!("severity severity-{}", finding.severity.as_str())) { (finding.severity.as_str()) } }
                            td data-label="User" { a href=(format!("/console/users/{}", finding.user_id)) { (finding.name) } }
                            td data-label="Finding" { code { (finding.flag) } }
                            td data-label="What it means" { (finding.advice) }
                        }
                    }
                }
            } }
        }
    }
}

fn users_table(rows: &[AccessReviewRow]) -> Markup {
    html! {
        div.table-wrap { table.stack {
            thead { tr {
                th scope="col" { "User" } th scope="col" { "Enabled" } th scope="col" { "Roles" } th scope="col" { "Functions" }
                th scope="col" { "Key" } th scope="col" { "Age (days)" } th scope="col" { "Last used" }
            } }
            tbody {
                @for row in rows {
                    tr {
                        td data-label="User" { a href=(format!("/console/users/{}", row.user_id)) { (row.name) } }
                        td data-label="Enabled" { @if row.enabled { "yes" } @else { span.disabled { "no" } } }
                        td data-label="Roles" { @if row.roles.is_empty() { "none" } @for (index, role) in row.roles.iter().enumerate() { @if index > 0 { ", " } (role.description) } }
                        td data-label="Functions" { (row.functions.iter().count()) }
                        @match &row.key {
                            Some(key) => {
                                td data-label="Key" { code { (key.key_id) } " " span class=(format!("state-{}", key.state.as_str())) { (key.state.as_str()) } }
                                td data-label="Age (days)" { (key.age_days) }
                                td data-label="Last used" { (layout::or_never(key.last_used_at.map(|at| at.to_string()).as_deref())) }
                            }
                            None => { td data-label="Key" { "none" } td data-label="Age (days)" { "—" } td data-label="Last used" { "—" } }
                        }
                    }
                }
            }
        } }
    }
}

/// `GET /console/access-review/report.csv`: the report as `accessReport` gives it in CSV.
async fn report_csv(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let csv = {
        let view = state.ledger.view();
        AccessReport::of(&view, Timestamp::now()).to_csv()
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, "attachment; filename=\"access-report.csv\""))
        .body(csv))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/access-review", web::get().to(show)).route("/access-review/report.csv", web::get().to(report_csv));
}
