//! The web console (issue #16): server-rendered HTML (maud) at `/console/`, served by the
//! same binary, everything it needs embedded.
//!
//! The console is another client of the ledger's commands: every change it makes is a
//! `Command` submitted through `Ledger::submit` with the signed-in admin as the actor and
//! its key as the credential ([`session::Admin::submit`]), judged by the same authority
//! rules as the API's. It reads the same view and the same `http`/`wire` view types.
//!
//! * `session.rs` — sign-in, the session cookie, the [`session::Admin`] extractor (which
//!   re-judges the key on every request) and the [`session::Posted`] extractor (which
//!   checks the CSRF token of every form).
//! * `layout.rs` — the page shell and navigation, labelled fields and errors next to them.
//! * `form.rs` — posted forms, and [`form::Refusal`], an API error as shown on a form.
//! * `assets.rs` — the embedded stylesheet and script.
//! * `roles.rs`, `users.rs`, `keys.rs`, `groups.rs`, `who_can.rs` — the admin screens.
//! * `review/` — the reviewer screens.

pub mod assets;
pub mod form;
pub mod groups;
pub mod keys;
pub mod layout;
pub mod review;
pub mod roles;
pub mod session;
pub mod users;
pub mod who_can;

use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use maud::html;

pub use session::{Admin, ConsoleConfig, Posted, Sessions};

/// The console's Content-Security-Policy: its own files only, no inline script or style,
/// forms post only to itself, and no page may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Why a console request was refused: answered as an HTML page (or a redirect to sign in).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A `GET` without a working session: sent to the sign-in page.
    #[error("sign in first")]
    SignInRequired(session::Ended),
    /// Anything but a `GET` without a working session.
    #[error("your session has ended: sign in again")]
    SessionRequired,
    /// A form without this session's CSRF token.
    #[error(
        "this form was not sent from your console session (its CSRF token is missing or wrong): reload the page and try again"
    )]
    CsrfMismatch,
    /// A body that could not be read as a form.
    #[error("the form could not be read")]
    BadForm,
    /// The admin lacks the function the screen or action needs.
    #[error("this needs the function {0}, which none of your roles has")]
    Forbidden(&'static str),
    /// No such page or thing.
    #[error("{0}")]
    NotFound(String),
    /// The console's state is missing (not mounted by `app.rs`).
    #[error("the console is not available")]
    Unavailable,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignInRequired(_) => StatusCode::SEE_OTHER,
            ConsoleError::SessionRequired | ConsoleError::CsrfMismatch | ConsoleError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ConsoleError::BadForm => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::SignInRequired(ended) = self {
            return layout::see_other(&session::sign_in_location(*ended));
        }
        let title = match self.status_code() {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            _ => "Unavailable",
        };
        let content = html! {
            main.error-page {
                h1 { (title) }
                p.error role="alert" { (form_sentence(&self.to_string())) }
                p { a href="/console/" { "Back to the console" } }
            }
        };
        layout::respond(self.status_code(), layout::bare(title, content))
    }
}

fn form_sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// Answers what no console route took: an HTML 404, or a 405 for a method the console
/// never answers (its pages are read with GET and changed with POST only).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    let method = request.method();
    if method != actix_web::http::Method::GET && method != actix_web::http::Method::POST {
        let content = html! {
            main.error-page {
                h1 { "Method not allowed" }
                p.error role="alert" { "The console answers GET and POST only, not " (method.as_str()) "." }
                p { a href="/console/" { "Back to the console" } }
            }
        };
        let mut response = layout::respond(StatusCode::METHOD_NOT_ALLOWED, layout::bare("Method not allowed", content));
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static("GET, HEAD, POST"),
        );
        return response;
    }
    ConsoleError::NotFound(format!("no console page at {}", request.path())).error_response()
}

async fn to_root() -> HttpResponse {
    layout::see_other("/console/")
}

/// `GET /console/`: the first screen the admin may see, or, when its functions show no
/// screen, the functions it holds.
async fn index(admin: Admin) -> HttpResponse {
    if let Some(home) = layout::home(&admin) {
        return layout::see_other(home);
    }
    let content = html! {
        p { "Your functions show no screen of the console. You hold:" }
        ul { @for function in admin.functions().iter() { li { (function.info().name) " (" code { (function.as_str()) } ")" } } }
    };
    layout::respond(StatusCode::OK, layout::page(&admin, "/console/", "Your access", content))
}

/// Mounts the console under `/console` with its sessions (one store for every worker,
/// made once by the caller).
pub fn configure(config: &mut web::ServiceConfig, sessions: web::Data<Sessions>) {
    let headers = DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"));
    config.service(
        web::scope("/console")
            .app_data(sessions)
            .wrap(headers)
            .route("", web::get().to(to_root))
            .route("/", web::get().to(index))
            .route("/sign-in", web::get().to(session::sign_in_page))
            .route("/sign-in", web::post().to(session::sign_in))
            .route("/sign-out", web::post().to(session::sign_out))
            .route("/assets/{name}", web::get().to(assets::serve))
            .configure(roles::configure)
            .configure(users::configure)
            .configure(keys::configure)
            .configure(groups::configure)
            .configure(who_can::configure)
            .configure(review::configure)
            .default_service(web::to(not_found)),
    );
}
