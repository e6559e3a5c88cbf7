//! The error answers admin operations share, as `IntoResponses` sets for `#[utoipa::path]`.
//!
//! A handler lists one set first, then its own answers: the operation's success, and any
//! status whose description it must make more precise. A set is named for the admin
//! function the operation's guard checks ([`Needs`], such as [`UsersManage`]), and holds the
//! 403 that names it. A later entry with the same status replaces the set's, so an
//! operation that adds its own conflicts to 409 lists that 409 after the set.
//!
//! A change to a resource that has a version ([`Versioned`]) lists [`Changed`] or
//! [`Created`] instead, which add its success answer (and, for a change, its 412) to the
//! set they wrap:
//!
//! ```text
//! responses(
//!     Changed<UserView, HeaderMutation<UsersManage>>,
//!     (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
//! )
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::domain::FunctionId;

/// The media type of every error body.
const PROBLEM_JSON: &str = "application/problem+json";

/// The admin function an operation needs, as a type, so that a set can name it in its 403.
pub trait Needs {
    /// The function the operation's guard checks.
    const FUNCTION: FunctionId;
}

/// Declares the types of the admin functions, for [`Needs`].
macro_rules! needs {
    ($($function:ident = $id:literal, $marker:ident;)*) => {$(
        #[doc = concat!("Needs `", $id, "`.")]
        pub struct $marker;

        impl Needs for $marker {
            const FUNCTION: FunctionId = FunctionId::$function;
        }
    )*};
}

needs! {
    FUNCTIONS_READ = "security.functions.read", FunctionsRead;
    ROLES_READ = "security.roles.read", RolesRead;
    ROLES_MANAGE = "security.roles.manage", RolesManage;
    USERS_READ = "security.users.read", UsersRead;
    USERS_MANAGE = "security.users.manage", UsersManage;
    KEYS_MANAGE = "security.keys.manage", KeysManage;
    EVENT_ACCESS_READ = "security.event_access.read", EventAccessRead;
    EVENT_ACCESS_MANAGE = "security.event_access.manage", EventAccessManage;
    AUDIT_READ = "security.audit.read", AuditRead;
}

/// The answers of the admin guard of a read that needs `F`: no valid key (401), a key
/// that lacks `F` (403), or too many checks with wrong keys from the client's address
/// (429).
pub struct Guarded<F>(PhantomData<F>);

/// [`Guarded`], and the answer of every list to paging parameters it cannot take (400).
pub struct Paged<F>(PhantomData<F>);

/// The answers of every mutation without a body that needs `F`: those of the admin guard
/// (401, 429), a key that lacks `F` or a change its user may not make (403), a malformed
/// `If-Match` or `Idempotency-Key` (400), an `Idempotency-Key` in progress (409) or used
/// for a different request (422), and storage that could not take the change (503).
pub struct HeaderMutation<F>(PhantomData<F>);

/// [`HeaderMutation`], for a mutation with a JSON body: a malformed body (400), a body
/// too large (413) or not JSON (415).
pub struct BodyMutation<F>(PhantomData<F>);

impl<F: Needs> IntoResponses for Guarded<F> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = guard_responses();
        responses.extend([status(403, problem(&lacks(F::FUNCTION)))]);
        responses
    }
}

impl<F: Needs> IntoResponses for Paged<F> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = Guarded::<F>::responses();
        responses.extend([status(400, problem("Bad paging parameters"))]);
        responses
    }
}

impl<F: Needs> IntoResponses for HeaderMutation<F> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = mutation_responses::<F>();
        responses.extend([status(
            400,
            problem("Malformed header, such as a Keyledger-Justification (`invalid_justification`)"),
        )]);
        responses
    }
}

impl<F: Needs> IntoResponses for BodyMutation<F> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = mutation_responses::<F>();
        responses.extend([
            status(
                400,
                problem("Malformed body or header, such as a Keyledger-Justification (`invalid_justification`)"),
            ),
            status(413, problem("Body too large")),
            status(415, problem("Body is not JSON")),
        ]);
        responses
    }
}

/// A resource with a version: its mutations answer with its view and its new version
/// (`ETag`), and honour `If-Match`. The view is what the spec shows for the resource.
pub trait Versioned: ToSchema {
    /// What the spec calls the resource: "user", "role" or "group".
    const NOUN: &'static str;
    /// The description of the `If-Match` header of its mutations.
    const IF_MATCH: &'static str;
}

/// The set `S`, and the answers of a change to the resource `V`: the resource after the
/// change (200, with the change's log position and the new `ETag`), or a 412 when it
/// changed since the `If-Match` version.
pub struct Changed<V, S>(PhantomData<(V, S)>);

/// The set `S`, and the answer of a creation of the resource `V`: the new resource (201,
/// with the change's log position, its `ETag` and its `Location`).
pub struct Created<V, S>(PhantomData<(V, S)>);

impl<V: Versioned, S: IntoResponses> IntoResponses for Changed<V, S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = S::responses();
        let after = format!("The {} after the change", V::NOUN);
        responses.extend([
            status(200, view_of_change::<V>(&after).build()),
            status(412, problem(&format!("The {} changed since the If-Match version", V::NOUN))),
        ]);
        responses
    }
}

impl<V: Versioned, S: IntoResponses> IntoResponses for Created<V, S> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = S::responses();
        let location = HeaderBuilder::new().schema(Some(String::schema())).build();
        responses.extend([status(201, view_of_change::<V>("Created").header("Location", location).build())]);
        responses
    }
}

/// What the 422 of a mutation adds for `--require-justification`.
const JUSTIFICATION_REQUIRED: &str =
    ", or the server requires a Keyledger-Justification for a change that grants access (`justification_required`)";

/// The 403 of a read: the key lacks `function`.
fn lacks(function: FunctionId) -> String {
    format!("The key lacks {}", function.as_str())
}

/// The 403 of a mutation: the key lacks `function`, or the writer found, when it applied
/// the change, that the actor may not make it (see ARCHITECTURE.md, "Authority").
fn may_not_change(function: FunctionId) -> String {
    format!(
        "The key lacks {}, or its user may not make this change (`insufficient_authority`): an actor that \
is no longer an enabled user with a working key, or that would hand out or act on more admin functions than it holds",
        function.as_str()
    )
}

/// The answers of the admin guard that do not depend on the function: no valid key (401),
/// or too many checks with wrong keys from the client's address (429).
fn guard_responses() -> BTreeMap<String, RefOr<Response>> {
    BTreeMap::from([status(401, problem("No valid key")), status(429, too_many_failed_checks())])
}

/// What every mutation that needs `F` shares, whatever its body.
fn mutation_responses<F: Needs>() -> BTreeMap<String, RefOr<Response>> {
    let mut responses = guard_responses();
    responses.extend([
        status(403, problem(&may_not_change(F::FUNCTION))),
        status(409, problem("A request with the same Idempotency-Key is in progress")),
        status(
            422,
            problem(&format!("The Idempotency-Key was used for a different request{}", JUSTIFICATION_REQUIRED)),
        ),
        status(503, problem("Storage unavailable; nothing changed")),
    ]);
    responses
}

/// A success answer of a mutation of `V`: its view, with the change's log position and
/// the new `ETag`.
fn view_of_change<V: ToSchema>(description: &str) -> ResponseBuilder {
    let position =
        HeaderBuilder::new().schema(Some(u64::schema())).description(Some("Log position of the change")).build();
    ResponseBuilder::new()
        .description(description)
        .header("Keyledger-Position", position)
        .header("ETag", HeaderBuilder::new().schema(Some(String::schema())).build())
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(V::name()))).build())
}

fn status(code: u16, response: Response) -> (String, RefOr<Response>) {
    (code.to_string(), RefOr::T(response))
}

/// An error answer: a problem document described by `description`.
fn problem(description: &str) -> Response {
    problem_builder(description).build()
}

fn problem_builder(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
}

/// The 429 of the admin guard and the key checks, with its `Retry-After`.
fn too_many_failed_checks() -> Response {
    let retry_after = HeaderBuilder::new().schema(Some(u64::schema())).description(Some("Seconds to wait")).build();
    problem_builder("Too many checks with wrong keys from this address").header("Retry-After", retry_after).build()
}
