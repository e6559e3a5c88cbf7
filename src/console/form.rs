//! Posted forms and the refusals shown next to the field that caused them.

use actix_web::ResponseError;
use actix_web::http::StatusCode;

use crate::http::problem::ApiError;

/// An `application/x-www-form-urlencoded` body, its fields in order (a field may repeat,
/// as checkboxes of one name do).
#[derive(Debug, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses a form body. Bytes that are not UTF-8 are replaced, as browsers never send
    /// them; a field is then refused by the parser of its value.
    pub fn parse(body: &[u8]) -> Form {
        Form {
            fields: form_urlencoded::parse(body).map(|(name, value)| (name.into_owned(), value.into_owned())).collect(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, trimmed, if it is not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|value| !value.is_empty())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(field, _)| field == name).map(|(_, value)| value.as_str())
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Why the console refused what a form asked: shown in words next to `field` (or at the
/// top of the form when `field` is `None`), with the status the API would answer.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The form field the refusal is about.
    pub field: Option<&'static str>,
    /// The API's words for it.
    pub message: String,
    /// The status the page is answered with: the API's for the same error.
    pub status: StatusCode,
}

impl Refusal {
    /// A refusal of the value of `field`.
    pub fn of_field(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { field: Some(field), message: message.into(), status: StatusCode::UNPROCESSABLE_ENTITY }
    }

    /// The refusal of an API or domain error, shown next to `field`: a value refused by
    /// its parser names its own field; every other error is about what the form did, so
    /// it stays next to `field` (the form's main control, or its button).
    pub fn of_error(error: &ApiError, field: &'static str) -> Refusal {
        let field = match error {
            ApiError::InvalidValue { field, .. } => field,
            _ => field,
        };
        Refusal { field: Some(field), message: sentence(&error.to_string()), status: error.status_code() }
    }

    /// Whether this refusal is about `field`.
    pub fn is_about(&self, field: &str) -> bool {
        self.field == Some(field)
    }
}

/// `text` with its first letter in capitals, as a sentence on a page starts.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_keeps_repeated_fields_in_order_and_decodes_them() {
        let form = Form::parse(b"csrf=abc&function=api.events.read&function=api.people.read&name=API+Access%21&empty=");
        assert_eq!(form.get("csrf"), Some("abc"));
        assert_eq!(form.all("function").collect::<Vec<_>>(), ["api.events.read", "api.people.read"]);
        assert_eq!(form.text("name"), Some("API Access!"));
        assert_eq!(form.text("empty"), None);
        assert!(form.checked("empty"));
        assert!(!form.checked("missing"));
    }

    #[test]
    fn a_refusal_names_the_field_a_parser_refused_and_keeps_the_api_status() {
        let invalid = ApiError::InvalidValue { field: "email", reason: "is not an email address".into() };
        let refusal = Refusal::of_error(&invalid, "name");
        assert!(refusal.is_about("email"));
        assert_eq!(refusal.message, "Email is not an email address");
        assert_eq!(refusal.status, StatusCode::UNPROCESSABLE_ENTITY);
        let forbidden = Refusal::of_error(&ApiError::Forbidden("security.roles.manage"), "description");
        assert!(forbidden.is_about("description"));
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    }
}
