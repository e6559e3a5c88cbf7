//! The console's static files, embedded in the binary and served with a long cache: their
//! URLs carry a digest of their bytes, so a new build's files have new URLs.

use actix_web::{HttpRequest, HttpResponse, web};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/console/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The stylesheet (`assets/console.css`), hand-written.
pub const STYLESHEET: &Asset = &Asset {
    name: "console.css",
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("../../assets/console.css"),
};

/// The script (`assets/console.js`), hand-written: it only enhances (copy and download
/// buttons); every screen works without it.
pub const SCRIPT: &Asset = &Asset {
    name: "console.js",
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../assets/console.js"),
};

/// Every file served under `/console/assets/`.
pub const ALL: &[&Asset] = &[STYLESHEET, SCRIPT];

/// The URL of `asset`, with the first 16 hex digits of the blake3 of its bytes.
pub fn url(asset: &Asset) -> String {
    let digest = blake3::hash(asset.bytes).to_hex();
    format!("/console/assets/{}?v={}", asset.name, &digest[..16])
}

/// `GET /console/assets/{name}`: the file, cached for a year (its URL changes with it).
pub async fn serve(request: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match ALL.iter().find(|asset| asset.name == name.as_str()) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .body(asset.bytes),
        None => super::not_found(request).await,
    }
}
