//! The integrity screen: the latest signed checkpoint (size, root, time, the signing key
//! and its fingerprint), "verify now" and its result, downloads of the bundle and of the
//! checkpoint, and the exact `keyledger verify` command to run offline. Mirrors
//! `getCheckpoint`, `verifyAuditLog` and `exportAuditBundle` (`security.audit.read`).
//!
//! Verifying reads the whole log, so it runs when asked (a `GET` of its own page, which
//! shows the result when it is done; nothing about it needs JavaScript), never on every
//! visit.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::failed;
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::console::ConsoleError;
use crate::console::layout;
use crate::console::session::Admin;
use crate::domain::FunctionId;
use crate::http::Shared;
use crate::http::problem::ApiError;
use crate::ledger::Verification;

const HERE: &str = "/console/integrity";
const TITLE: &str = "Integrity";

/// The file name a bundle of `size` records downloads as: the one `exportAuditBundle`
/// gives, so the command shown names the file the browser saved.
pub fn bundle_file_name(key: &PublicKey, size: u64) -> String {
    format!("keyledger-{}-{}.jsonl", key.origin().replace('/', "-"), size)
}

/// The file name a checkpoint of `size` records downloads as.
pub fn checkpoint_file_name(size: u64) -> String {
    format!("checkpoint-{size}.json")
}

/// The signing key's fingerprint: the 16 hex digits of blake3 of the key that the log's
/// origin carries.
pub fn fingerprint(key: &PublicKey) -> String {
    key.origin().trim_start_matches("keyledger/").to_owned()
}

/// The command that verifies a downloaded bundle offline, the signer pinned by its key.
pub fn verify_command(key: &PublicKey, size: u64) -> String {
    format!("keyledger verify {} --public-key {}", bundle_file_name(key, size), key.to_hex())
}

/// The same, the signer pinned by a downloaded checkpoint instead.
pub fn verify_with_checkpoint_command(key: &PublicKey, size: u64) -> String {
    format!("keyledger verify {} --trusted-checkpoint {}", bundle_file_name(key, size), checkpoint_file_name(size))
}

fn no_checkpoints() -> String {
    "This service keeps no signed checkpoints, so there is nothing to show or download.".to_owned()
}

/// The latest checkpoint covering every record (signed now if the latest does not, as
/// `getCheckpoint` does) and the key it is signed with.
async fn latest(state: &Shared) -> Result<(Checkpoint, PublicKey), String> {
    let key = state.ledger.public_key().ok_or_else(no_checkpoints)?;
    let checkpoint = state.ledger.checkpoint().await.map_err(|error| sentence(&ApiError::from(error).to_string()))?;
    Ok((checkpoint, key))
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect::<String>() + ".").unwrap_or_default()
}

fn render(checkpoint: &Checkpoint, key: &PublicKey, verification: Option<&Verification>) -> Markup {
    let size = checkpoint.size;
    html! {
        section aria-labelledby="checkpoint-heading" {
            h2 #checkpoint-heading { "Latest signed checkpoint" }
            p.hint { "The service signs the Merkle root of its log with its own key. Anyone holding the key can check that no record was changed, removed or reordered." }
            dl.facts {
                dt { "Records covered (size)" } dd #checkpoint-size { (size) }
                dt { "Merkle root" } dd { code #checkpoint-root { (checkpoint.root.to_hex()) } }
                dt { "Signed at" } dd { time datetime=(checkpoint.time.to_string()) { (checkpoint.time.to_string()) } }
                dt { "Permission view fingerprint" } dd { code { (checkpoint.view.to_hex()) } }
                dt { "Signing key fingerprint" } dd { code #key-fingerprint { (fingerprint(key)) } " " span.muted { "(origin " code { (checkpoint.origin) } ")" } }
                dt { "Signing key (Ed25519)" } dd { code #public-key { (key.to_hex()) } }
            }
        }
        section aria-labelledby="verify-heading" {
            h2 #verify-heading { "Verify now" }
            p.hint { "Recomputes every record's hash and link, the Merkle tree and every signed checkpoint, from storage. It reads the whole log: the result appears when it is done." }
            form method="get" action=(format!("{HERE}/verify")) {
                button type="submit" { "Verify now" }
            }
            @if let Some(verification) = verification {
                (result(verification))
            }
        }
        section aria-labelledby="offline-heading" {
            h2 #offline-heading { "Verify offline" }
            div.tools {
                a download=(bundle_file_name(key, size)) href=(format!("{HERE}/bundle?size={size}")) { "Download the audit bundle" }
                a download=(checkpoint_file_name(size)) href=(format!("{HERE}/checkpoint?size={size}")) { "Download the checkpoint" }
            }
            p { "Then run, on any computer with keyledger and no access to this service:" }
            pre.command { code #verify-command { (verify_command(key, size)) } }
            p { "or, pinning the signer by the checkpoint you downloaded:" }
            pre.command { code #verify-checkpoint-command { (verify_with_checkpoint_command(key, size)) } }
            p.hint { "The bundle holds the " (size) " records this checkpoint covers, so the command names the file as downloaded; reload the page for a newer one." }
        }
    }
}

fn result(verification: &Verification) -> Markup {
    html! {
        div #verify-result role="status" {
            @if verification.is_valid() {
                p.notice.valid { strong { "Valid." } " Every one of the " (verification.size) " records verified, and "
                    (verification.checkpoints) " signed checkpoint" @if verification.checkpoints != 1 { "s" } " matched." }
            } @else {
                p.error role="alert" { strong { "Not valid." } " " (verification.verified) " of " (verification.size) " records verified before the first failure: "
                    (verification.error.as_ref().map(ToString::to_string).unwrap_or_else(|| "the log ended early".to_owned())) }
            }
            p.meta { "Last verified record's hash: " code { (verification.head_hash.to_hex()) } }
        }
    }
}

/// `GET /console/integrity`.
async fn show(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    Ok(match latest(&state).await {
        Ok((checkpoint, key)) => {
            layout::respond(StatusCode::OK, super::page(&admin, HERE, TITLE, render(&checkpoint, &key, None)))
        }
        Err(reason) => failed(&admin, HERE, TITLE, StatusCode::SERVICE_UNAVAILABLE, &reason),
    })
}

/// `GET /console/integrity/verify`: verifies the whole log, then shows the screen with the
/// result.
async fn verify(state: Shared, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let reader = state.clone();
    let verification = web::block(move || reader.ledger.verify()).await.map_err(|_| ConsoleError::Unavailable)?;
    let verification = match verification {
        Ok(verification) => verification,
        Err(error) => {
            let reason = format!("The log could not be read: {error}.");
            return Ok(failed(&admin, HERE, TITLE, StatusCode::SERVICE_UNAVAILABLE, &reason));
        }
    };
    Ok(match latest(&state).await {
        Ok((checkpoint, key)) => layout::respond(
            StatusCode::OK,
            super::page(&admin, HERE, TITLE, render(&checkpoint, &key, Some(&verification))),
        ),
        Err(reason) => failed(&admin, HERE, TITLE, StatusCode::SERVICE_UNAVAILABLE, &reason),
    })
}

/// The `size` query parameter of a download: a number of records, or absent.
fn size_asked(request: &HttpRequest) -> Result<Option<u64>, String> {
    let asked = super::query(request).text("size").map(str::to_owned);
    asked
        .as_deref()
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|_| format!("“{}” is not a number of records.", asked.unwrap_or_default()))
}

/// The checkpoint of `size` records (the latest, signed now if need be, without), and
/// every checkpoint written; or the page's reason and status.
async fn checkpoint_of(
    state: &Shared,
    size: Option<u64>,
) -> Result<(Checkpoint, PublicKey, Vec<Checkpoint>), (StatusCode, String)> {
    let unavailable = |reason| (StatusCode::SERVICE_UNAVAILABLE, reason);
    let (latest, key) = latest(state).await.map_err(unavailable)?;
    let reader = state.clone();
    let all = web::block(move || reader.ledger.checkpoints())
        .await
        .map_err(|_| unavailable("The checkpoints could not be read.".to_owned()))?
        .map_err(|error| unavailable(format!("The checkpoints could not be read: {error}.")))?;
    let found = match size {
        None => Some(latest),
        Some(size) if size == latest.size => Some(latest),
        Some(size) => all.iter().find(|checkpoint| checkpoint.size == size).cloned(),
    };
    match found {
        Some(found) => Ok((found, key, all)),
        None => {
            Err((StatusCode::NOT_FOUND, format!("No checkpoint was signed at {} records.", size.unwrap_or_default())))
        }
    }
}

/// `GET /console/integrity/bundle?size=N`: the audit bundle of the first `N` records,
/// ending with the checkpoint signed at that size (the one the screen shows, so the file
/// and the command it shows agree however many records were added since), as
/// `exportAuditBundle` streams it; without `size`, of every record.
async fn bundle(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let size = match size_asked(&request) {
        Ok(size) => size,
        Err(reason) => return Ok(failed(&admin, HERE, TITLE, StatusCode::BAD_REQUEST, &reason)),
    };
    let (last, key, all) = match checkpoint_of(&state, size).await {
        Ok(found) => found,
        Err((status, reason)) => return Ok(failed(&admin, HERE, TITLE, status, &reason)),
    };
    let writer = state.clone();
    let name = bundle_file_name(&key, last.size);
    Ok(super::stream::download("application/x-ndjson", &name, move |sink| {
        crate::bundle::export(writer.ledger.log(), &key, &all, &last, &mut { sink })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }))
}

/// `GET /console/integrity/checkpoint?size=N`: the checkpoint of `size` records as stored
/// (one JSON line), for `keyledger verify --trusted-checkpoint`; without `size`, the latest.
async fn checkpoint(state: Shared, admin: Admin, request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    admin.require(FunctionId::AUDIT_READ)?;
    let size = match size_asked(&request) {
        Ok(size) => size,
        Err(reason) => return Ok(failed(&admin, HERE, TITLE, StatusCode::BAD_REQUEST, &reason)),
    };
    let found = match checkpoint_of(&state, size).await {
        Ok((found, _, _)) => found,
        Err((status, reason)) => return Ok(failed(&admin, HERE, TITLE, status, &reason)),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", checkpoint_file_name(found.size)),
        ))
        .body(found.to_line()))
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/integrity", web::get().to(show))
        .route("/integrity/verify", web::get().to(verify))
        .route("/integrity/bundle", web::get().to(bundle))
        .route("/integrity/checkpoint", web::get().to(checkpoint));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Signer;

    #[test]
    fn the_offline_command_names_the_downloaded_files_and_pins_the_signer() {
        let key = Signer::generate().public_key();
        let origin = key.origin();
        let file = format!("keyledger-{}-13.jsonl", origin.replace('/', "-"));
        assert_eq!(bundle_file_name(&key, 13), file);
        assert_eq!(verify_command(&key, 13), format!("keyledger verify {file} --public-key {}", key.to_hex()));
        assert_eq!(
            verify_with_checkpoint_command(&key, 13),
            format!("keyledger verify {file} --trusted-checkpoint checkpoint-13.json")
        );
        assert_eq!(format!("keyledger/{}", fingerprint(&key)), origin);
        assert_eq!(fingerprint(&key).len(), 16);
    }
}
