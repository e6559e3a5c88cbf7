//! Request bodies: read raw (bounded in size and in time), and parsed only after the
//! caller is authenticated, so that an anonymous caller learns nothing from validation
//! errors.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::Deserialize;

use super::problem::ApiError;

/// The largest body accepted by default, in bytes (`--max-body-bytes`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a body may take to arrive when no [`BodyTimeout`] is registered: the default
/// request timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request's body may take to arrive once its head has been read: the request
/// timeout (`--request-timeout-ms`), which actix applies to the head only. Registered as
/// app data; a body still incomplete when it runs out is answered 408.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// A JSON body, read but not yet parsed.
#[derive(Debug)]
pub struct RawJson {
    bytes: Bytes,
    is_json: bool,
}

impl RawJson {
    /// Parses the body as `T`. An empty body parses as `{}`, so operations whose fields
    /// are all optional can be called without one.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ApiError> {
        let bytes: &[u8] = if self.bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.bytes };
        if !self.bytes.is_empty() && !self.is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let parsed = serde_json::from_slice(bytes).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidBody(error.to_string()),
            _ => ApiError::MalformedJson(error.to_string()),
        })?;
        // Every body is an object; serde would also fill a struct from an array of its
        // fields in order (`[null, null]`), which no client means.
        if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::InvalidBody("the body must be a JSON object".to_owned()));
        }
        Ok(parsed)
    }

    /// Parses a body the spec declares optional (generateKey's) as `T`: no body, or
    /// JSON `null`, is `{}`; anything else as [`RawJson::parse`] takes it.
    pub fn parse_optional<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ApiError> {
        if self.is_json && self.bytes.trim_ascii() == b"null" {
            return serde_json::from_slice(b"{}").map_err(|error| ApiError::InvalidBody(error.to_string()));
        }
        self.parse()
    }

    /// The body's bytes, for idempotency fingerprints.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn is_json_content_type(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl FromRequest for RawJson {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json_content_type(request);
        let limit = request.app_data::<super::Shared>().map_or(MAX_BODY_BYTES, |state| state.max_body_bytes);
        let timeout = request.app_data::<BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |timeout| timeout.0);
        let bytes = Bytes::from_request(request, payload);
        Box::pin(async move {
            // A body that trickles in would otherwise hold its connection for as long as
            // the client likes.
            let read =
                actix_web::rt::time::timeout(timeout, bytes).await.map_err(|_| ApiError::RequestTimeout(timeout))?;
            let bytes = read.map_err(|error| {
                if error.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::MalformedJson(error.to_string())
                }
            })?;
            Ok(RawJson { bytes, is_json })
        })
    }
}
