//! Who is asking: keys from the `Authorization` header, and the admin guard.
//!
//! Keys are accepted as `Bearer <key>`, and as HTTP Basic with an empty user name and
//! the key as the password, which is how existing platform API clients send theirs.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;

use super::problem::ApiError;
use crate::domain::{self, CheckRequest, CheckView, FunctionId, KeyHash, Reason, Timestamp, UserId};

/// A key as found in the `Authorization` header.
#[derive(Debug)]
pub enum Presented<'a> {
    /// A Bearer token, borrowed from the header.
    Bearer(&'a str),
    /// The password of Basic credentials, decoded.
    Basic(String),
}

impl Presented<'_> {
    /// The key as presented.
    pub fn key(&self) -> &str {
        match self {
            Presented::Bearer(key) => key,
            Presented::Basic(key) => key,
        }
    }
}

/// Reads the key from the `Authorization` header; `None` when there is none.
pub fn presented_key(request: &HttpRequest) -> Option<Presented<'_>> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(credentials))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        // The user name is empty or ignored; the key is the password.
        let (_user, password) = decoded.split_once(':')?;
        Some(Presented::Basic(password.to_owned()))
    } else {
        None
    }
}

/// A presented key that keyledger knows, whether or not it passed.
#[derive(Debug, Clone)]
pub struct KnownKey {
    /// The hash of its secret.
    pub hash: KeyHash,
    /// The user it authenticates.
    pub user_id: UserId,
}

/// What the admin guard decided.
#[derive(Debug)]
pub struct Guarded {
    /// The user whose key it is, the actor of any change; or why the request is refused.
    pub outcome: Result<UserId, ApiError>,
    /// The presented key, when it is known: its use is counted, and a refusal for a
    /// missing function is recorded against it.
    pub known_key: Option<KnownKey>,
}

/// Authenticates the request's key and checks, at `now`, that it holds `function`: the
/// guard of every admin operation. The service passes its check index, which holds only
/// durable state and never waits on disk.
pub fn require<V: CheckView + ?Sized>(
    view: &V,
    request: &HttpRequest,
    function: FunctionId,
    now: Timestamp,
) -> Guarded {
    let Some(presented) = presented_key(request) else {
        let refusal = ApiError::Unauthenticated(
            "send an API key as `Authorization: Bearer <key>` (or as the Basic password)".to_owned(),
        );
        return Guarded { outcome: Err(refusal), known_key: None };
    };
    let question = CheckRequest { key: presented.key(), function: function.as_str(), event_id: None };
    let decision = domain::check(view, question, now);
    let known_key =
        decision.key_hash.zip(decision.user_id).map(|(hash, user_id)| KnownKey { hash, user_id: user_id.clone() });
    let outcome = match (decision.reason, decision.user_id) {
        (Reason::Granted, Some(user)) => Ok(user.clone()),
        (Reason::FunctionNotGranted, _) => Err(ApiError::Forbidden(function.as_str())),
        (reason, _) => Err(ApiError::KeyRefused(reason)),
    };
    Guarded { outcome, known_key }
}
