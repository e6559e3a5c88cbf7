//! The point-in-time screen: the permission view at a chosen position or time (users,
//! their roles, functions, event access and key states; roles; groups), and the diff
//! between two points as a list of grants and revocations, each with the record and the
//! admin that caused it. Mirrors `getPermissionsAt` and `diffPermissions`
//! (`security.audit.read`), over the same `crate::history` replay.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::trail::{FieldError, parse_time};
use super::{failed, input, named, query, value};
use crate::console::ConsoleError;
use crate::console::layout;
use crate::console::session::Admin;
use crate::domain::{Fact, FunctionId, State, Timestamp};
use crate::history::{self, At, CausedChange, Diff, HistoryError, Replayed};
use crate::wire::review::PermissionsAt;

const HERE: &str = "/console/point-in-time";
const TITLE: &str = "Point in time";

/// How many users, roles and groups one page of the view shows, together.
const PAGE_SIZE: usize = 100;

/// Why a typed point was refused: the field's error, and whether the text was malformed
/// (400, as the API's `invalid_query` and `conflicting_parameters`) rather than a well-formed
/// point the log cannot answer for (422, as its `time_in_the_future`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointError {
    /// The field and its problem.
    pub error: FieldError,
    /// Whether the text itself was malformed.
    pub malformed: bool,
}

/// Reads a point typed in two fields, a position (`position_field`) and a time
/// (`time_field`): one of them, or neither (`neither`). A time must not be in the future.
pub fn parse_point(
    position: &str,
    time: &str,
    fields: (&'static str, &'static str),
    now: Timestamp,
    neither: At,
) -> Result<At, PointError> {
    let (position, time) = (position.trim(), time.trim());
    let error = |field, message: String, malformed| Err(PointError { error: FieldError { field, message }, malformed });
    match (position.is_empty(), time.is_empty()) {
        (false, false) => error(fields.1, "give a position or a time, not both".to_owned(), true),
        (true, true) => Ok(neither),
        (false, true) => match position.parse::<u64>() {
            Ok(position) if position <= i64::MAX as u64 => Ok(At::Position(position)),
            _ => error(fields.0, format!("“{position}” is not a log position (a record number, 0 or more)"), true),
        },
        (true, false) => match parse_time(time) {
            Ok(at) if at > now => error(fields.1, format!("{at} is in the future"), false),
            Ok(at) => Ok(At::Time(at)),
            Err(message) => error(fields.1, message, true),
        },
    }
}

/// Where a history error belongs: the field of the point it is about, or the page.
fn place(error: &HistoryError, position_field: &'static str, time_field: &'static str) -> Option<FieldError> {
    let field = match error {
        HistoryError::PositionBeyondHead { .. } => position_field,
        HistoryError::BeforeFirstRecord { .. } => time_field,
        HistoryError::ReversedRange => time_field,
        _ => return None,
    };
    Some(FieldError { field, message: sentence(&error.to_string()) })
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What one change says in words: "function api.events.read", "key key_…".
pub fn describe(fact: &Fact) -> (&'static str, Option<String>) {
    match fact {
        Fact::Enabled => ("enabled status", None),
        Fact::Function(function) => ("function", Some(function.as_str().to_owned())),
        Fact::AllEvents => ("access to every event", None),
        Fact::EventGroup(group) => ("event group", Some(group.to_string())),
        Fact::Event(event) => ("event", Some(event.to_string())),
        Fact::Key(key) => ("key", Some(key.to_string())),
    }
}

/// The form's fields, as typed.
struct Fields {
    position: String,
    at: String,
    after: String,
    from_position: String,
    from: String,
    to_position: String,
    to: String,
}

impl Fields {
    fn of(request: &HttpRequest) -> Fields {
        let form = query(request);
        Fields {
            position: value(&form, "position"),
            at: value(&form, "at"),
            after: value(&form, "after"),
            from_position: value(&form, "from_position"),
            from: value(&form, "from"),
            to_position: value(&form, "to_position"),
            to: value(&form, "to"),
        }
    }

    fn asks_for_a_diff(&self) -> bool {
        [&self.from_position, &self.from, &self.to_position, &self.to].iter().any(|field| !field.trim().is_empty())
    }
}

/// Replays to `at` off the event loop (the head from a copy of the live view).
async fn replay(state: &crate::http::Shared, at: At) -> Result<Result<Replayed, HistoryError>, ConsoleError> {
    let reader = state.clone();
    web::block(move || match at {
        At::Head => {
            let view = reader.ledger.view().clone();
            history::current(view, reader.ledger.log())
        }
        at => history::state_at(reader.ledger.history(), at),
    })
    .await
    .map_err(|_| ConsoleError::Unavailable)
}

/// `GET /console/point-in-time`: the view at a point (now by default), and the diff
/// between two points when one is asked for.
async fn show(state: crate::http::Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let fields = Fields::of(&request);
    let now = Timestamp::now();
    let mut errors = Vec::new();
    let mut malformed = false;

    let mut view_answer = None;
    match parse_point(&fields.position, &fields.at, ("position", "at"), now, At::Head) {
        Err(refused) => {
            malformed |= refused.malformed;
            errors.push(refused.error);
        }
        Ok(at) => {
            let after = fields.after.trim().parse::<u64>().unwrap_or(0);
            match replay(&state, at).await? {
                Ok(replayed) => {
                    view_answer = Some(PermissionsAt::page(&replayed, at.as_of(&replayed, now), after, PAGE_SIZE))
                }
                Err(error) => match place(&error, "position", "at") {
                    Some(refused) => errors.push(refused),
                    None => {
                        return Ok(failed(
                            &admin,
                            HERE,
                            TITLE,
                            StatusCode::SERVICE_UNAVAILABLE,
                            &sentence(&error.to_string()),
                        ));
                    }
                },
            }
        }
    }

    let mut diff_answer = None;
    if fields.asks_for_a_diff() {
        let from = parse_point(&fields.from_position, &fields.from, ("from_position", "from"), now, At::Position(0));
        let to = parse_point(&fields.to_position, &fields.to, ("to_position", "to"), now, At::Head);
        match (from, to) {
            (Ok(from), Ok(to)) => {
                let reader = state.clone();
                let diff = web::block(move || history::diff(reader.ledger.history(), from, to))
                    .await
                    .map_err(|_| ConsoleError::Unavailable)?;
                match diff {
                    Ok(diff) => diff_answer = Some(diff),
                    Err(HistoryError::PositionBeyondHead { position, head }) => {
                        let field = if fields.to_position.trim() == position.to_string() {
                            "to_position"
                        } else {
                            "from_position"
                        };
                        errors.push(FieldError {
                            field,
                            message: format!("Position {position} is past the head of the log, {head}"),
                        });
                    }
                    Err(error @ HistoryError::BeforeFirstRecord { .. }) => {
                        errors.push(FieldError { field: "from", message: sentence(&error.to_string()) });
                    }
                    Err(error) => match place(&error, "to_position", "to") {
                        Some(refused) => errors.push(refused),
                        None => {
                            return Ok(failed(
                                &admin,
                                HERE,
                                TITLE,
                                StatusCode::SERVICE_UNAVAILABLE,
                                &sentence(&error.to_string()),
                            ));
                        }
                    },
                }
            }
            (from, to) => {
                for refused in [from.err(), to.err()].into_iter().flatten() {
                    malformed |= refused.malformed;
                    errors.push(refused.error);
                }
            }
        }
    }
    let status = match (errors.is_empty(), malformed) {
        (true, _) => StatusCode::OK,
        (false, true) => StatusCode::BAD_REQUEST,
        (false, false) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let content = {
        let view = state.ledger.view();
        render(&view, &fields, &errors, view_answer.as_ref(), diff_answer.as_ref())
    };
    Ok(layout::respond(status, super::page(&admin, HERE, TITLE, content)))
}

fn render(
    view: &State,
    fields: &Fields,
    errors: &[FieldError],
    answer: Option<&PermissionsAt>,
    diff: Option<&Diff>,
) -> Markup {
    html! {
        section aria-labelledby="view-heading" {
            h2 #view-heading { "Permissions at a point" }
            form method="get" action=(HERE) aria-label="Choose a point" {
                p.hint { "Give a log position (a record number) or a time, or neither for now." }
                div.filters.top {
                    (input("Position", "position", "number", &fields.position, errors, None))
                    (input("Time (UTC)", "at", "datetime-local", &fields.at, errors, None))
                }
                button type="submit" { "Show permissions" }
            }
            @if let Some(answer) = answer { (permissions(view, answer, fields)) }
        }
        section aria-labelledby="diff-heading" {
            h2 #diff-heading { "What changed between two points" }
            form method="get" action=(HERE) aria-label="Choose two points" {
                p.hint { "Each end is a position or a time. The start defaults to the beginning of the log, the end to now." }
                div.filters.top {
                    (input("From position", "from_position", "number", &fields.from_position, errors, None))
                    (input("From time (UTC)", "from", "datetime-local", &fields.from, errors, None))
                    (input("To position", "to_position", "number", &fields.to_position, errors, None))
                    (input("To time (UTC)", "to", "datetime-local", &fields.to, errors, None))
                }
                button type="submit" { "Show changes" }
            }
            @if let Some(diff) = diff { (changes(view, diff)) }
        }
    }
}

fn permissions(view: &State, answer: &PermissionsAt, fields: &Fields) -> Markup {
    html! {
        p.meta {
            "After record " strong { (answer.position) }
            @if let Some(at) = &answer.recorded_at { ", written " time datetime=(at) { (at) } }
            "; key states as of " time datetime=(answer.as_of) { (answer.as_of) } "."
        }
        h3 { "Users" }
        @if answer.users.is_empty() { p { "No user on this page." } } @else {
            div.table-wrap { table.stack {
                thead { tr { th scope="col" { "User" } th scope="col" { "Enabled" } th scope="col" { "Roles" } th scope="col" { "Functions" } th scope="col" { "Event access" } th scope="col" { "Keys" } } }
                tbody {
                    @for user in &answer.users {
                        tr {
                            td data-label="User" { (user.name) " " span.muted { code { (user.id) } } }
                            td data-label="Enabled" { @if user.enabled { "yes" } @else { span.disabled { "no" } } }
                            td data-label="Roles" { @for (index, role) in user.roles.iter().enumerate() { @if index > 0 { ", " } (role.description) } }
                            td data-label="Functions" { @for function in &user.functions { code { (function) } " " } }
                            td data-label="Event access" {
                                @if user.event_access.all_events { "every event" }
                                @else if user.event_access.groups.is_empty() { "none" }
                                @else { @for group in &user.event_access.groups { (named(view, group)) " " } }
                            }
                            td data-label="Keys" {
                                @for key in &user.keys {
                                    span { code.nowrap { (key.key_id) } " " span class=(format!("state-{}", key.state.as_str())) { (key.state.as_str()) } } br;
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if !answer.roles.is_empty() {
            h3 { "Roles" }
            div.table-wrap { table.stack {
                thead { tr { th scope="col" { "Role" } th scope="col" { "Functions" } th scope="col" { "Holders" } } }
                tbody { @for role in &answer.roles { tr {
                    td data-label="Role" { (role.description) " " span.muted { code { (role.id) } } }
                    td data-label="Functions" { @for function in &role.functions { code { (function) } " " } }
                    td data-label="Holders" { (role.holders.len()) }
                } } }
            } }
        }
        @if !answer.event_groups.is_empty() {
            h3 { "Event groups" }
            div.table-wrap { table.stack {
                thead { tr { th scope="col" { "Group" } th scope="col" { "Inside" } th scope="col" { "Events" } } }
                tbody { @for group in &answer.event_groups { tr {
                    td data-label="Group" { (group.name) " " span.muted { code { (group.id) } } }
                    td data-label="Inside" { @if let Some(parent) = &group.parent_id { (named(view, parent)) } @else { "—" } }
                    td data-label="Events" { @for event in &group.events { code { (event) } " " } }
                } } }
            } }
        }
        @if let Some(next) = answer.next {
            @let more = form_urlencoded::Serializer::new(String::new())
                .append_pair("position", &answer.position.to_string())
                .append_pair("after", &next.to_string())
                .finish();
            nav.pager aria-label="Pages" { a rel="next" href=(format!("{HERE}?{more}")) { "More of this view" } }
        }
        @if !fields.after.trim().is_empty() { p { a href=(format!("{HERE}?position={}", answer.position)) { "First page of this view" } } }
    }
}

fn changes(view: &State, diff: &Diff) -> Markup {
    let at = |recorded: Option<Timestamp>| recorded.map(|at| format!(", written {at}")).unwrap_or_default();
    html! {
        p.meta { "From after record " strong { (diff.from) } (at(diff.from_recorded_at)) " to after record " strong { (diff.to) } (at(diff.to_recorded_at)) "." }
        @if diff.changes.is_empty() {
            p { "No permission was granted or revoked in between." }
        } @else {
            ol.changes aria-label="Grants and revocations, in log order" {
                @for caused in &diff.changes { li { (change(view, caused)) } }
            }
        }
    }
}

fn change(view: &State, caused: &CausedChange) -> Markup {
    let (change, cause) = (&caused.change, &caused.cause);
    let (what, which) = describe(&change.fact);
    let granted = matches!(change.kind, crate::domain::ChangeKind::Grant);
    let user = change.user_id.to_string();
    let actor = cause.actor.to_string();
    html! {
        @if granted { strong.active { "Granted" } } @else { strong.inactive { "Revoked" } }
        " " (what) @if let Some(which) = &which { " " (named(view, which)) }
        @if granted { " to " } @else { " from " } (named(view, &user))
        @if let Some(until) = change.until { " (until " time datetime=(until.to_string()) { (until.to_string()) } ")" }
        br;
        span.muted {
            "by " (named(view, &actor)) " in "
            a href=(format!("/console/audit?before={}", cause.seq + 1)) { "record #" (cause.seq) }
            " (" (cause.kind) ") at " time datetime=(cause.at.to_string()) { (cause.at.to_string()) }
        }
    }
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/point-in-time", web::get().to(show));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2027-01-31T12:00:00Z").unwrap()
    }

    #[test]
    fn a_point_is_a_position_a_time_or_neither_and_each_mistake_names_its_field() {
        let fields = ("position", "at");
        assert_eq!(parse_point("", "", fields, now(), At::Head), Ok(At::Head));
        assert_eq!(parse_point(" 42 ", "", fields, now(), At::Head), Ok(At::Position(42)));
        assert_eq!(
            parse_point("", "2027-01-31T11:00", fields, now(), At::Head),
            Ok(At::Time(Timestamp::parse("2027-01-31T11:00:00Z").unwrap()))
        );
        let refused = |position, time| {
            let refused = parse_point(position, time, fields, now(), At::Head).unwrap_err();
            (refused.error.field, refused.malformed)
        };
        assert_eq!(refused("1", "2027-01-31T11:00"), ("at", true));
        assert_eq!(refused("-1", ""), ("position", true));
        assert_eq!(refused("lots", ""), ("position", true));
        assert_eq!(refused("", "tomorrow"), ("at", true));
        assert_eq!(refused("", "2027-02-01T00:00"), ("at", false), "the future is well formed, and refused");
        assert_eq!(parse_point("", "", ("from_position", "from"), now(), At::Position(0)), Ok(At::Position(0)));
    }

    #[test]
    fn history_errors_are_shown_next_to_the_field_they_are_about() {
        let beyond = HistoryError::PositionBeyondHead { position: 9, head: 4 };
        assert_eq!(place(&beyond, "position", "at").unwrap().field, "position");
        let before = HistoryError::BeforeFirstRecord { at: now(), first: None };
        assert_eq!(place(&before, "position", "at").unwrap().field, "at");
        assert!(place(&HistoryError::Storage("disk".into()), "position", "at").is_none());
    }

    #[test]
    fn every_kind_of_change_is_described_in_words() {
        let function = FunctionId::parse("api.events.read").unwrap();
        assert_eq!(describe(&Fact::Function(function)), ("function", Some("api.events.read".to_owned())));
        assert_eq!(describe(&Fact::Enabled).0, "enabled status");
        assert_eq!(describe(&Fact::AllEvents).0, "access to every event");
    }
}
