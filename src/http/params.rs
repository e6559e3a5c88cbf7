//! The parameters admin operations share, as `IntoParams` types for `#[utoipa::path]`.
//!
//! A path type is also what the handler extracts (`web::Path<UserPath>`): utoipa then
//! documents the path's ids from the type alone, as the route names them. The headers of
//! a mutation follow the path, `If-Match` first:
//!
//! ```text
//! params(UserPath, IfMatch<UserView>, IdempotencyKey),
//! ```

use std::marker::PhantomData;

use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::mutation;
use super::responses::Versioned;
use crate::domain;

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The path of an operation on one user.
#[derive(Debug, Deserialize)]
pub struct UserPath {
    /// The user's id, unparsed.
    pub user_id: String,
}

/// The path of an operation on one role.
#[derive(Debug, Deserialize)]
pub struct RolePath {
    /// The role's id, unparsed.
    pub role_id: String,
}

/// The path of an operation on one group.
#[derive(Debug, Deserialize)]
pub struct GroupPath {
    /// The group's id, unparsed.
    pub group_id: String,
}

/// The path of an operation on a user's role.
#[derive(Debug, Deserialize)]
pub struct UserRolePath {
    /// The user's id, unparsed.
    pub user_id: String,
    /// The role's id, unparsed.
    pub role_id: String,
}

/// The path of an operation on an event in a group.
#[derive(Debug, Deserialize)]
pub struct GroupEventPath {
    /// The group's id, unparsed.
    pub group_id: String,
    /// The platform event's id, unparsed.
    pub event_id: String,
}

/// The `If-Match` header of a mutation of the resource `V`.
pub struct IfMatch<V>(PhantomData<V>);

/// The `Idempotency-Key` header, as most mutations describe it.
pub struct IdempotencyKey;

/// The `Keyledger-Justification` header every mutation takes: why the change is made,
/// kept in its records (`mutation::justification` reads it).
pub struct Justification;

/// The `Last-Event-ID` header of the change feed (`watchAuditEvents`).
pub struct LastEventId;

impl IntoParams for LastEventId {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = header_string().pattern(Some("^[0-9]{1,19}$")).examples(["42"]);
        let description = "The `id` of the last event received: start after it. Takes precedence over `after`.";
        vec![optional_header("Last-Event-ID", description).schema(Some(schema)).build()]
    }
}

impl IntoParams for UserPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![user_id()]
    }
}

impl IntoParams for RolePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![role_id()]
    }
}

impl IntoParams for GroupPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![group_id()]
    }
}

impl IntoParams for UserRolePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![user_id(), role_id()]
    }
}

impl IntoParams for GroupEventPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let event_id = path_id("event_id", "The platform event: 1 to 128 characters from A-Z a-z 0-9 . _ ~ : -")
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(128))
                    .pattern(Some("^[A-Za-z0-9._~:-]+$")),
            ))
            .example(Some("summit-2027-nyc".into()))
            .build();
        vec![group_id(), event_id]
    }
}

impl<V: Versioned> IntoParams for IfMatch<V> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        // What `mutation::expected_version` accepts: `*`, or a version, quoted or not,
        // weak or not (a u64 of up to 19 digits always fits).
        let schema = header_string().pattern(Some(r#"^(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))$"#));
        vec![optional_header("If-Match", V::IF_MATCH).schema(Some(schema)).build()]
    }
}

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = header_string().min_length(Some(1)).max_length(Some(MAX_IDEMPOTENCY_KEY_LEN));
        let description = "Retrying with the same key returns the first answer and changes nothing";
        vec![optional_header("Idempotency-Key", description).schema(Some(schema)).build()]
    }
}

impl IntoParams for Justification {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        // What `Justification::parse` accepts, as far as a pattern can say: some character
        // other than white space, and no control character (nor U+00AD, the one format
        // character of ISO-8859-1, in which a header that is not UTF-8 is read). Other
        // format characters (bidi overrides, zero-width spaces) are refused too.
        let allowed = r"[^\u0000-\u001f\u007f-\u009f\u00ad]";
        let visible = r"[^\u0000-\u0020\u007f-\u009f\u00ad]";
        let schema = header_string()
            .min_length(Some(1))
            .max_length(Some(domain::Justification::MAX_CHARS))
            .pattern(Some(format!("^{allowed}*{visible}{allowed}*$")))
            .examples(["OPS-1234: onboarding the attendance app"]);
        let description = "Why the change is made, such as a ticket id: 1 to 500 characters (UTF-8, or \
ISO-8859-1 when not UTF-8), trimmed, with no control or format character (else 400 `invalid_justification`). \
Kept in every record the change appends, and shown by listAuditEvents, diffPermissions and the export. A server \
started with `--require-justification` refuses a change that grants access without one (422 \
`justification_required`)";
        vec![optional_header(mutation::JUSTIFICATION_HEADER, description).schema(Some(schema)).build()]
    }
}

fn user_id() -> Parameter {
    string_path_id("user_id", "The user's id", "usr_5f0c2a9e1b7d4c3a")
}

fn role_id() -> Parameter {
    string_path_id("role_id", "The role's id", "role_9d8e7f6a5b4c3d2e")
}

fn group_id() -> Parameter {
    string_path_id("group_id", "The group's id", "grp_1a2b3c4d5e6f7a8b")
}

/// A path parameter that is any string, with an example.
fn string_path_id(name: &str, description: &str, example: &str) -> Parameter {
    path_id(name, description)
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .example(Some(example.into()))
        .build()
}

/// A path parameter, without its schema yet.
fn path_id(name: &str, description: &str) -> ParameterBuilder {
    parameter(name, ParameterIn::Path, description).required(Required::True)
}

/// A header a client may leave out, without its schema yet.
fn optional_header(name: &str, description: &str) -> ParameterBuilder {
    parameter(name, ParameterIn::Header, description).required(Required::False)
}

fn parameter(name: &str, parameter_in: ParameterIn, description: &str) -> ParameterBuilder {
    ParameterBuilder::new().name(name).parameter_in(parameter_in).description(Some(description))
}

/// A header's value: a string, never null (a header left out is absent, not null).
fn header_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}
