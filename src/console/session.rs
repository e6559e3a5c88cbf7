//! Console sessions: signing in with a key, the session cookie, CSRF tokens, the idle
//! timeout and signing out.
//!
//! A session is a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/console` (and `Secure` over TLS, or behind a trusted proxy that says it terminated
//! TLS). The server keeps, per session, only the blake3 hash of the session id (the map's
//! key), the hash of the key the admin signed in with, its user id, the CSRF token and the
//! time of its last request: never the key itself. Every request re-judges that key
//! against the live permission view (`Admin::from_request`), so a revoked or expired key,
//! a disabled user or lost admin functions end or shrink the session at once.
//!
//! Every form carries the session's CSRF token (`csrf`), compared in constant time by the
//! [`Posted`] extractor, which every state-changing handler takes: a handler cannot forget
//! the check. The sign-in form, which has no session yet, carries a token that is also in
//! a short-lived cookie of its own (double submit).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine;
use maud::{Markup, html};
use rand::RngExt;

use super::ConsoleError;
use super::form::Form;
use crate::domain::{Actor, Command, FunctionId, FunctionSet, Justification, KeyHash, Reason, Timestamp, UserId};
use crate::http::Shared;
use crate::http::problem::ApiError;
use crate::ledger::{Applied, Request};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kl_console";
/// The sign-in form's CSRF cookie.
pub const SIGN_IN_COOKIE: &str = "kl_console_sign_in";
/// The name of the CSRF field every console form carries.
pub const CSRF_FIELD: &str = "csrf";
/// The default idle timeout: a session unused this long ends.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The most sessions kept at once; past it, the least recently used ends.
const MAX_SESSIONS: usize = 10_000;

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session unused this long ends (`--console-idle-timeout-secs`).
    pub idle_timeout: Duration,
    /// Whether the server itself serves HTTPS: session cookies are then `Secure`.
    pub tls: bool,
    /// Proxies whose `X-Forwarded-Proto: https` makes cookies `Secure`.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self { idle_timeout: DEFAULT_IDLE_TIMEOUT, tls: false, trusted_proxies: Vec::new() }
    }
}

/// One signed-in admin's session.
#[derive(Debug, Clone)]
struct Session {
    key_hash: KeyHash,
    user_id: UserId,
    csrf: String,
    last_seen: Instant,
}

/// Every open session, by the blake3 hash of its id.
#[derive(Debug)]
pub struct Sessions {
    config: ConsoleConfig,
    open: Mutex<HashMap<[u8; 32], Session>>,
}

/// A random 256-bit token, base64url without padding.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_key(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_of(request: &HttpRequest, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

impl Sessions {
    /// No sessions yet.
    pub fn new(config: ConsoleConfig) -> Self {
        Self { config, open: Mutex::new(HashMap::new()) }
    }

    /// The console's configuration.
    pub fn config(&self) -> &ConsoleConfig {
        &self.config
    }

    /// Opens a session for the holder of `key_hash`; returns the session id (the cookie's
    /// value), which is not kept.
    fn open(&self, key_hash: KeyHash, user_id: UserId, now: Instant) -> String {
        let id = random_token();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = self.config.idle_timeout;
        open.retain(|_, session| now.duration_since(session.last_seen) < idle);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, session)| session.last_seen).map(|(key, _)| *key)
        {
            open.remove(&oldest);
        }
        open.insert(session_key(&id), Session { key_hash, user_id, csrf: random_token(), last_seen: now });
        id
    }

    /// The session with id `id`, if it is open and was used within the idle timeout; its
    /// last use becomes `now`. An idle session is ended.
    fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let key = session_key(id);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let session = open.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= self.config.idle_timeout {
            open.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Moves the session with id `id` of `user_id` to the key `key_hash`: the admin
    /// replaced its own key in this session, which then goes on with the new one.
    fn rebind(&self, id: &str, user_id: &UserId, key_hash: KeyHash) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = open.get_mut(&session_key(id)).filter(|session| &session.user_id == user_id) {
            session.key_hash = key_hash;
        }
    }

    /// Ends the session with id `id`, if there is one.
    fn end(&self, id: &str) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&session_key(id));
    }

    /// How many sessions are open (idle ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether cookies set in answer to `request` must be `Secure`: over TLS, or behind a
    /// trusted proxy that says the client used HTTPS.
    fn secure(&self, request: &HttpRequest) -> bool {
        if self.config.tls {
            return true;
        }
        let from_trusted_proxy = request.peer_addr().is_some_and(|peer| {
            let peer = peer.ip().to_canonical();
            self.config.trusted_proxies.iter().any(|proxy| proxy.to_canonical() == peer)
        });
        from_trusted_proxy
            && request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// A console `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/console`,
    /// `Secure` when [`Sessions::secure`]. `value` is base64url text (or empty).
    fn cookie(&self, request: &HttpRequest, name: &'static str, value: &str) -> String {
        let secure = if self.secure(request) { "; Secure" } else { "" };
        format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict{secure}")
    }

    /// The `Set-Cookie` value that removes cookie `name`.
    fn removal(&self, request: &HttpRequest, name: &'static str) -> String {
        self.cookie(request, name, "") + "; Max-Age=0"
    }
}

/// Keeps the request's session working after its admin generated a new key for itself
/// (`key_hash`): the session follows the new key, so that a rotation without grace does
/// not sign the admin out. Any other session of the old key ends with it.
pub fn follow_own_new_key(request: &HttpRequest, admin: &Admin, key_hash: KeyHash) {
    if let (Some(id), Some(sessions)) = (cookie_of(request, SESSION_COOKIE), request.app_data::<web::Data<Sessions>>())
    {
        sessions.rebind(&id, admin.user_id(), key_hash);
    }
}

/// Why a session ended, shown on the sign-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Never signed in: no session cookie.
    NotSignedIn,
    /// Signed out.
    SignedOut,
    /// Idle too long, or never signed in.
    Expired,
    /// The key stopped working (revoked, expired, replaced) or its user was disabled.
    KeyStopped,
    /// The key's user holds no admin function any more.
    NoAdminFunction,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::NotSignedIn => "",
            Ended::SignedOut => "signed-out",
            Ended::Expired => "expired",
            Ended::KeyStopped => "key-stopped",
            Ended::NoAdminFunction => "no-admin-function",
        }
    }

    fn parse(text: &str) -> Option<Ended> {
        [Ended::SignedOut, Ended::Expired, Ended::KeyStopped, Ended::NoAdminFunction]
            .into_iter()
            .find(|ended| ended.as_str() == text)
    }

    fn message(self) -> &'static str {
        match self {
            Ended::NotSignedIn => "",
            Ended::SignedOut => "You signed out.",
            Ended::Expired => "Your session ended (idle too long, or the server restarted). Sign in again.",
            Ended::KeyStopped => {
                "Your session ended: the key you signed in with no longer works (revoked, expired or replaced), or its user was disabled."
            }
            Ended::NoAdminFunction => "Your session ended: your user no longer holds any admin function.",
        }
    }
}

/// The signed-in admin of a console request: the extractor every screen takes.
///
/// Extracting it re-judges the session's key against the live view: a key that stopped
/// working, a disabled user or a user without admin functions ends the session (a `GET`
/// is sent to the sign-in page, anything else gets 403).
#[derive(Debug, Clone)]
pub struct Admin {
    user_id: UserId,
    name: String,
    functions: FunctionSet,
    key_hash: KeyHash,
    csrf: String,
    denials: DenialRecorder,
    /// The reason given in the posted form's `justification` field, if any: stored with
    /// every record the change appends, as the API's `Keyledger-Justification` header.
    justification: Option<Result<Justification, String>>,
}

/// What a refusal of this request is recorded with: an `AdminAccessDenied`, as the API
/// records a 403 for a missing admin function (within the same per-key limit). The
/// operation is the console route (`POST /console/roles/{role_id}/functions`).
#[derive(Clone)]
struct DenialRecorder {
    state: Shared,
    operation: String,
    target: Option<String>,
}

impl std::fmt::Debug for DenialRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenialRecorder").field("operation", &self.operation).field("target", &self.target).finish()
    }
}

impl Admin {
    /// The admin's user id: the actor of every change the console submits.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The admin's user name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin functions the admin holds now.
    pub fn functions(&self) -> FunctionSet {
        self.functions
    }

    /// Whether the admin holds `function` now: screens offer only what this allows.
    pub fn may(&self, function: FunctionId) -> bool {
        self.functions.contains(function)
    }

    /// Refuses (403 page) unless the admin holds `function`: every handler calls this
    /// first, whatever the screen offered.
    ///
    /// A refusal is recorded as an `AdminAccessDenied` of the admin's key, in the
    /// background, within the per-key limit the API's refusals share.
    pub fn require(&self, function: FunctionId) -> Result<(), ConsoleError> {
        if self.may(function) {
            return Ok(());
        }
        self.record_denial(function);
        Err(ConsoleError::Forbidden(function.as_str()))
    }

    fn record_denial(&self, function: FunctionId) {
        let recorder = &self.denials;
        let Some(suppressed) = recorder.state.denials.admit(self.key_hash, Instant::now()) else {
            return;
        };
        let command = Command::RecordAdminAccessDenied {
            key_hash: self.key_hash,
            operation: recorder.operation.clone(),
            function,
            target: recorder.target.clone(),
            suppressed,
        };
        let request = Request {
            actor: Actor::User(self.user_id.clone()),
            expected_version: None,
            credential: None,
            justification: None,
        };
        let state = recorder.state.clone();
        actix_web::rt::spawn(async move {
            if let Err(error) = state.ledger.submit(command, request).await {
                tracing::warn!(%error, suppressed, "recording a refused console request failed");
            }
        });
    }

    /// The hidden CSRF field every `<form method="post">` must hold.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(CSRF_FIELD) value=(self.csrf); }
    }

    /// Submits `command` to the ledger with this admin as the actor and its key as the
    /// credential: the same command, authority rules and record as the API's.
    pub async fn submit(&self, state: &Shared, command: Command) -> Result<Applied, ApiError> {
        let justification = match &self.justification {
            Some(Err(rule)) => return Err(ApiError::InvalidJustification(rule.clone())),
            Some(Ok(justification)) => Some(justification.clone()),
            None => None,
        };
        let request = Request {
            actor: Actor::User(self.user_id.clone()),
            expected_version: None,
            credential: Some(self.key_hash),
            justification,
        };
        Ok(state.ledger.submit(command, request).await?)
    }

    fn from_session(state: &Shared, sessions: &Sessions, request: &HttpRequest) -> Result<Admin, Ended> {
        let id = cookie_of(request, SESSION_COOKIE).ok_or(Ended::NotSignedIn)?;
        let session = sessions.touch(&id, Instant::now()).ok_or(Ended::Expired)?;
        let now = Timestamp::now();
        let judged = judge(state, session.key_hash, now);
        let admin = match judged {
            Ok((user_id, name, functions)) if user_id == session.user_id => Ok(Admin {
                user_id,
                name,
                functions,
                key_hash: session.key_hash,
                csrf: session.csrf.clone(),
                justification: None,
                denials: DenialRecorder {
                    state: state.clone(),
                    operation: format!("{} {}", request.method(), request.match_pattern().unwrap_or_default()),
                    target: crate::http::denials::target_of(request),
                },
            }),
            Ok(_) => Err(Ended::KeyStopped),
            Err(Judged::NoAdminFunction) => Err(Ended::NoAdminFunction),
            Err(_) => Err(Ended::KeyStopped),
        };
        match &admin {
            Ok(_) => state.usage.count(session.key_hash, None, true, now),
            Err(_) => sessions.end(&id),
        }
        admin
    }
}

/// Why a key cannot open (or keep) a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// The key does not work: the check's reason.
    Refused(Reason),
    /// The key works but its user holds no admin function.
    NoAdminFunction,
}

/// Judges the key with hash `hash` as the check judges it, at `now`: its user, name and
/// admin functions, or why it cannot be used.
fn judge(state: &Shared, hash: KeyHash, now: Timestamp) -> Result<(UserId, String, FunctionSet), Judged> {
    let view = state.ledger.view();
    let key = view.key(&hash).ok_or(Judged::Refused(Reason::UnknownKey))?;
    if let Some(reason) = key.state_at(now).refusal() {
        return Err(Judged::Refused(reason));
    }
    let user = view.user(key.user_id()).ok_or(Judged::Refused(Reason::UnknownKey))?;
    if !user.is_enabled() {
        return Err(Judged::Refused(Reason::UserDisabled));
    }
    let mut functions = FunctionSet::EMPTY;
    for function in view.functions_of(user).iter().filter(|function| function.is_admin()) {
        functions.insert(function);
    }
    if functions.is_empty() {
        return Err(Judged::NoAdminFunction);
    }
    Ok((user.id().clone(), user.name().to_owned(), functions))
}

fn shared_state(request: &HttpRequest) -> Result<(Shared, web::Data<Sessions>), ConsoleError> {
    let state = request.app_data::<Shared>().cloned().ok_or(ConsoleError::Unavailable)?;
    let sessions = request.app_data::<web::Data<Sessions>>().cloned().ok_or(ConsoleError::Unavailable)?;
    Ok((state, sessions))
}

impl FromRequest for Admin {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Admin, ConsoleError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(shared_state(request).and_then(|(state, sessions)| {
            Admin::from_session(&state, &sessions, request).map_err(|ended| {
                if request.method() == Method::GET {
                    ConsoleError::SignInRequired(ended)
                } else {
                    ConsoleError::SessionRequired
                }
            })
        }))
    }
}

/// A form posted by a signed-in admin, its CSRF token checked: the extractor every
/// state-changing handler takes.
#[derive(Debug)]
pub struct Posted {
    /// Who posted it.
    pub admin: Admin,
    /// The form's fields (the CSRF field included).
    pub form: Form,
}

impl FromRequest for Posted {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Posted, ConsoleError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admin = Admin::from_request(request, payload).into_inner();
        let body = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            let admin = admin?;
            let body = body.await.map_err(|_| ConsoleError::BadForm)?;
            let form = Form::parse(&body);
            let token = form.get(CSRF_FIELD).unwrap_or_default();
            if !constant_time_eq(token.as_bytes(), admin.csrf.as_bytes()) {
                return Err(ConsoleError::CsrfMismatch);
            }
            let mut admin = admin;
            admin.justification = form
                .get("justification")
                .filter(|text| !text.trim().is_empty())
                .map(|text| Justification::parse(text).map_err(|rule| rule.to_string()));
            Ok(Posted { admin, form })
        })
    }
}

/// `GET /console/sign-in`: the sign-in form, with a fresh sign-in CSRF token.
pub async fn sign_in_page(request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let (_, sessions) = shared_state(&request)?;
    let ended = request.query_string().split('&').find_map(|pair| pair.strip_prefix("ended=")).and_then(Ended::parse);
    let token = random_token();
    let notice = ended.map(Ended::message).filter(|message| !message.is_empty());
    let mut response = super::layout::respond(StatusCode::OK, sign_in_form(&token, notice, None));
    set_cookie(&mut response, sessions.cookie(&request, SIGN_IN_COOKIE, &token))?;
    Ok(response)
}

fn sign_in_form(token: &str, notice: Option<&str>, error: Option<&str>) -> Markup {
    let content = html! {
        main.sign-in {
            h1 { "keyledger console" }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            form method="post" action="/console/sign-in" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label for="key" { "API key" }
                input #key type="password" name="key" required autocomplete="off" spellcheck="false"
                    aria-describedby=[error.map(|_| "key-error")];
                @if let Some(error) = error { p.error #key-error role="alert" { (error) } }
                p.hint { "Paste the key of a user holding admin functions. It is checked and hashed; the console keeps only its hash, never the key." }
                button type="submit" { "Sign in" }
            }
        }
    };
    super::layout::bare("Sign in", content)
}

/// `POST /console/sign-in`: judges the pasted key; opens a session for a working key of
/// an enabled user holding an admin function. A malformed or unknown key counts toward
/// the client's brute-force limit, as a refused key check does.
pub async fn sign_in(request: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ConsoleError> {
    let (state, sessions) = shared_state(&request)?;
    let form = Form::parse(&body);
    let expected = cookie_of(&request, SIGN_IN_COOKIE).unwrap_or_default();
    let token = form.get(CSRF_FIELD).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        return Err(ConsoleError::CsrfMismatch);
    }
    let client = state.limiter.client_of(&request);
    if let Err(wait) = state.limiter.admit(client) {
        let message = format!("Too many refused keys from your address: try again in {} s.", wait.as_secs().max(1));
        return Ok(super::layout::respond(StatusCode::TOO_MANY_REQUESTS, sign_in_form(token, None, Some(&message))));
    }
    let refuse =
        |status: StatusCode, message: &str| super::layout::respond(status, sign_in_form(token, None, Some(message)));
    let Ok(hash) = KeyHash::of_presented(form.get("key").unwrap_or_default().trim()) else {
        state.limiter.record(client, Reason::MalformedKey);
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            "That is not a keyledger key: a key reads kl_ followed by 36 letters and digits.",
        ));
    };
    let now = Timestamp::now();
    match judge(&state, hash, now) {
        Ok((user_id, _, _)) => {
            state.usage.count(hash, None, true, now);
            // A new sign-in replaces the browser's previous session, if any.
            if let Some(previous) = cookie_of(&request, SESSION_COOKIE) {
                sessions.end(&previous);
            }
            let id = sessions.open(hash, user_id, Instant::now());
            let mut response = HttpResponse::SeeOther().insert_header(("Location", "/console/")).finish();
            set_cookie(&mut response, sessions.cookie(&request, SESSION_COOKIE, &id))?;
            set_cookie(&mut response, sessions.removal(&request, SIGN_IN_COOKIE))?;
            Ok(response)
        }
        Err(Judged::Refused(reason)) => {
            state.limiter.record(client, reason);
            if reason != Reason::UnknownKey {
                state.usage.count(hash, None, false, now);
            }
            let message = match reason {
                Reason::UserDisabled => "This key's user is disabled.",
                Reason::RevokedKey => "This key was revoked.",
                Reason::ExpiredKey => "This key has expired.",
                _ => "This key is not known: it was never issued, or it was replaced.",
            };
            Ok(refuse(StatusCode::UNAUTHORIZED, message))
        }
        Err(Judged::NoAdminFunction) => {
            state.usage.count(hash, None, false, now);
            Ok(refuse(StatusCode::FORBIDDEN, "This key's user holds no admin function: the console is for admins."))
        }
    }
}

/// `POST /console/sign-out`: ends the session and clears its cookie.
pub async fn sign_out(request: HttpRequest, posted: Posted) -> Result<HttpResponse, ConsoleError> {
    let (_, sessions) = shared_state(&request)?;
    if let Some(id) = cookie_of(&request, SESSION_COOKIE) {
        sessions.end(&id);
    }
    let _ = posted.admin;
    let mut response = HttpResponse::SeeOther()
        .insert_header(("Location", format!("/console/sign-in?ended={}", Ended::SignedOut.as_str())))
        .finish();
    set_cookie(&mut response, sessions.removal(&request, SESSION_COOKIE))?;
    Ok(response)
}

fn set_cookie(response: &mut HttpResponse, cookie: String) -> Result<(), ConsoleError> {
    let value = actix_web::http::header::HeaderValue::from_str(&cookie).map_err(|_| ConsoleError::Unavailable)?;
    response.headers_mut().append(actix_web::http::header::SET_COOKIE, value);
    Ok(())
}

/// Where a `GET` without a working session is sent.
pub fn sign_in_location(ended: Ended) -> String {
    match ended {
        Ended::NotSignedIn => "/console/sign-in".to_owned(),
        ended => format!("/console/sign-in?ended={}", ended.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(idle: Duration) -> Sessions {
        Sessions::new(ConsoleConfig { idle_timeout: idle, ..ConsoleConfig::default() })
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_when_idle_too_long() {
        let sessions = sessions(Duration::from_secs(60));
        let start = Instant::now();
        let user = UserId::parse("usr_0123456789abcdef").unwrap();
        let id = sessions.open(KeyHash::example(1), user.clone(), start);
        assert!(sessions.touch("not-the-id", start).is_none());
        let found = sessions.touch(&id, start + Duration::from_secs(59)).unwrap();
        assert_eq!(found.user_id, user);
        // The touch at 59 s moved the idle clock.
        assert!(sessions.touch(&id, start + Duration::from_secs(118)).is_some());
        assert!(sessions.touch(&id, start + Duration::from_secs(178)).is_none());
        assert!(sessions.touch(&id, start + Duration::from_secs(178)).is_none(), "an idle session is gone");
    }

    #[test]
    fn sessions_have_distinct_ids_and_csrf_tokens_and_store_no_id() {
        let sessions = sessions(Duration::from_secs(60));
        let user = UserId::parse("usr_0123456789abcdef").unwrap();
        let now = Instant::now();
        let first = sessions.open(KeyHash::example(1), user.clone(), now);
        let second = sessions.open(KeyHash::example(1), user, now);
        assert_ne!(first, second);
        assert_ne!(sessions.touch(&first, now).unwrap().csrf, sessions.touch(&second, now).unwrap().csrf);
        let open = sessions.open.lock().unwrap();
        assert!(!open.contains_key(first.as_bytes()), "kept by hash");
        assert!(open.contains_key(&session_key(&first)));
    }

    #[test]
    fn signing_out_ends_the_session() {
        let sessions = sessions(Duration::from_secs(60));
        let now = Instant::now();
        let id = sessions.open(KeyHash::example(2), UserId::parse("usr_0123456789abcdef").unwrap(), now);
        sessions.end(&id);
        assert!(sessions.touch(&id, now).is_none());
        assert!(sessions.is_empty());
    }
}
