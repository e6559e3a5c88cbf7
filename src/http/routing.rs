//! What the server answers when no route takes a request: 404 for a path it does not
//! know, 405 with `Allow` for a known path asked with a method it does not serve, and
//! 204 with `Allow` for `OPTIONS` on a known path.
//!
//! The known paths and their methods are read from the OpenAPI document (plus the two
//! routes the document does not describe: itself and the docs), so that a route added to
//! the spec is known here without a hand list to keep in step. A test asks every path of
//! the spec with every method it does not declare.
//!
//! `HEAD` is answered wherever `GET` is, as `GET` without the body (RFC 9110 §9.3.2):
//! [`answer_head_as_get`] turns the method into `GET` before routing, and actix's codec,
//! which remembers the method the client sent, leaves the body out. `OPTIONS` is answered
//! by the server itself on every known path: 204 with `Allow` and nothing else (no CORS
//! headers: the API is not meant for browsers of other origins).

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use super::problem::ApiError;

/// Where the OpenAPI document is served (not itself in the document).
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Where the browsable docs are served: everything under this prefix, with its trailing
/// slash. The path without the slash redirects here.
pub const DOCS_PREFIX: &str = "/docs/";

/// The docs' path without its trailing slash, which [`redirect_to_docs`] answers.
pub const DOCS_WITHOUT_SLASH: &str = "/docs";

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// A `{parameter}`: matches any non-empty segment, as actix's router does.
    Parameter,
    /// Matches the rest of the path, whatever it is (the docs' files).
    Rest,
}

/// A known path and the methods it serves.
#[derive(Debug, Clone)]
struct Route {
    segments: Vec<Segment>,
    methods: Vec<Method>,
}

impl Route {
    fn new(template: &str, methods: Vec<Method>) -> Self {
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(|segment| match segment {
                "{*}" => Segment::Rest,
                _ if segment.starts_with('{') && segment.ends_with('}') => Segment::Parameter,
                literal => Segment::Literal(literal.to_owned()),
            })
            .collect();
        Route { segments, methods }
    }

    fn matches(&self, path: &str) -> bool {
        let mut asked = path.strip_prefix('/').unwrap_or(path).split('/');
        for segment in &self.segments {
            match (segment, asked.next()) {
                (Segment::Rest, _) => return true,
                (Segment::Literal(literal), Some(given)) if literal == given => {}
                (Segment::Parameter, Some(given)) if !given.is_empty() => {}
                _ => return false,
            }
        }
        asked.next().is_none()
    }
}

/// Every path the server answers, with its methods.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The paths and methods of `document`, and the document's and the docs' own routes.
    pub fn from_openapi(document: &utoipa::openapi::OpenApi) -> Self {
        let mut routes: Vec<Route> = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let declared = [
                    (Method::GET, &item.get),
                    (Method::PUT, &item.put),
                    (Method::POST, &item.post),
                    (Method::DELETE, &item.delete),
                    (Method::PATCH, &item.patch),
                    (Method::HEAD, &item.head),
                    (Method::OPTIONS, &item.options),
                    (Method::TRACE, &item.trace),
                ];
                let methods = declared
                    .into_iter()
                    .filter(|(_, operation)| operation.is_some())
                    .map(|(method, _)| method)
                    .collect();
                Route::new(path, methods)
            })
            .collect();
        routes.push(Route::new(OPENAPI_PATH, vec![Method::GET]));
        routes.push(Route::new(DOCS_WITHOUT_SLASH, vec![Method::GET]));
        routes.push(Route::new(&format!("{DOCS_PREFIX}{{*}}"), vec![Method::GET]));
        RouteTable { routes }
    }

    /// The table without the exact path `path`, which the server does not serve here (the
    /// metrics, when `--metrics-listen` serves them on an address of their own).
    pub fn without(mut self, path: &str) -> Self {
        let gone = Route::new(path, Vec::new());
        self.routes.retain(|route| route.segments != gone.segments);
        self
    }

    /// The methods `path` answers, in a fixed order (`GET, HEAD, PUT, POST, DELETE,
    /// PATCH, OPTIONS`), `HEAD` wherever there is `GET`, and `OPTIONS` everywhere; `None`
    /// for a path the server does not know.
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let mut served: Vec<&Method> =
            self.routes.iter().filter(|route| route.matches(path)).flat_map(|route| &route.methods).collect();
        if served.is_empty() {
            return None;
        }
        if served.contains(&&Method::GET) {
            served.push(&Method::HEAD);
        }
        served.push(&Method::OPTIONS);
        let order =
            [Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS];
        let mut allowed: Vec<Method> = order.into_iter().filter(|method| served.contains(&method)).collect();
        // A method the spec declares beyond the usual ones (TRACE), last.
        for method in served {
            if !allowed.contains(method) {
                allowed.push(method.clone());
            }
        }
        Some(allowed)
    }

    /// What to answer a request no route took: 204 with `Allow` for `OPTIONS` on a known
    /// path, 405 with `Allow` for another method on a known path, or 404.
    pub fn answer(&self, method: &Method, path: &str) -> HttpResponse {
        match self.allowed(path) {
            None => ApiError::NoRoute(path.to_owned()).error_response(),
            Some(allowed) if *method == Method::OPTIONS => {
                HttpResponse::NoContent().insert_header((header::ALLOW, allow_header(&allowed))).finish()
            }
            Some(allowed) => ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
                allowed: allow_header_text(&allowed),
            }
            .error_response(),
        }
    }
}

/// The `Allow` header's value: the methods, comma-separated.
fn allow_header_text(allowed: &[Method]) -> String {
    allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

fn allow_header(allowed: &[Method]) -> HeaderValue {
    // Method names are tokens, always valid header text.
    HeaderValue::from_str(&allow_header_text(allowed)).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// The default service: answers what no route took, from the [`RouteTable`] in the app
/// data (404 for everything when there is none).
pub async fn no_route(request: HttpRequest) -> HttpResponse {
    match request.app_data::<web::Data<RouteTable>>() {
        Some(routes) => routes.answer(&asked_method(&request), request.path()),
        None => ApiError::NoRoute(request.path().to_owned()).error_response(),
    }
}

/// The 405 for a request that reached a route's path but none of its methods, as actix
/// itself may answer it, with the `Allow` of the route table.
pub fn method_not_allowed(request: &HttpRequest) -> ApiError {
    let allowed = request
        .app_data::<web::Data<RouteTable>>()
        .and_then(|routes| routes.allowed(request.path()))
        .map(|allowed| allow_header_text(&allowed))
        .unwrap_or_default();
    ApiError::MethodNotAllowed { method: asked_method(request).to_string(), path: request.path().to_owned(), allowed }
}

/// Marks a request that the client sent as `HEAD` and is routed as `GET`.
#[derive(Debug, Clone, Copy)]
struct AskedWithHead;

/// The method the client sent (`HEAD` for one routed as `GET`).
fn asked_method(request: &HttpRequest) -> Method {
    if request.extensions().contains::<AskedWithHead>() { Method::HEAD } else { request.method().clone() }
}

/// Routes `HEAD` as `GET`; actix still leaves the body out, as the client asked with
/// `HEAD`. Called before routing, on every request.
pub fn answer_head_as_get(request: &mut ServiceRequest) {
    if request.method() == Method::HEAD {
        request.head_mut().method = Method::GET;
        request.extensions_mut().insert(AskedWithHead);
    }
}

/// `/docs` without the trailing slash: a permanent redirect to the docs, so that the
/// address people type works.
pub async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, DOCS_PREFIX)).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        use utoipa::OpenApi;
        RouteTable::from_openapi(&crate::http::openapi::ApiDoc::openapi())
    }

    fn allowed(path: &str) -> Option<String> {
        table().allowed(path).map(|allowed| allow_header_text(&allowed))
    }

    #[test]
    fn a_known_path_allows_its_declared_methods_with_head_beside_get_and_options_everywhere() {
        assert_eq!(allowed("/v1/check").as_deref(), Some("POST, OPTIONS"));
        assert_eq!(allowed("/v1/roles").as_deref(), Some("GET, HEAD, POST, OPTIONS"));
        assert_eq!(allowed("/v1/roles/role_0123456789abcdef").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allowed("/v1/users/usr_0123456789abcdef/roles/anything").as_deref(), Some("PUT, DELETE, OPTIONS"));
        assert_eq!(allowed("/health").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allowed("/openapi.json").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allowed("/docs").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allowed("/docs/").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(allowed("/docs/swagger-ui.css").as_deref(), Some("GET, HEAD, OPTIONS"));
    }

    #[test]
    fn an_unknown_path_is_not_in_the_table() {
        for path in ["/", "", "/v1", "/v1/", "/v1/roles/", "/v1/roles//functions/activate", "/v1/rolesx", "/v2/roles"] {
            assert_eq!(allowed(path), None, "{path:?}");
        }
        assert_eq!(allowed("/v1/roles/role_0123456789abcdef/nothing"), None);
    }
}
