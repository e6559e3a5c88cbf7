//! Provable history: signed checkpoints, Merkle inclusion and consistency proofs, the
//! public signing key, and the export bundle a reviewer verifies offline.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, Problem};
use super::responses::{AuditRead, Guarded, Paged};
use super::{Page, Shared};
use crate::checkpoint::Checkpoint;
use crate::domain::FunctionId;
use crate::log::{AnyLogError, Tree};
use crate::merkle::{self, NodeId, Nodes, ProofError, TreeHash};

/// A signed checkpoint, exactly as stored and as it appears in a bundle: save the body to
/// a file and pass it to `keyledger verify --trusted-checkpoint`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "kind": "checkpoint",
    "origin": "keyledger/69dbb0f004a9b07c",
    "size": 13,
    "root": "71f296d9ba67791d7644386fd9d485c7bd8aca5ed20e80b9cf50566675dbe23b",
    "time": "2027-03-01T09:30:15.250Z",
    "view": "f86da2de665426f9e452bd6a43af22fcfa3aea82080823437a0457d46a5d7ccf",
    "signature": "f834b53a…03"
}))]
pub struct CheckpointBody {
    /// Always `checkpoint`.
    pub kind: String,
    /// The log's name: `keyledger/` and 16 hex digits of blake3 of the public key.
    pub origin: String,
    /// How many records the tree covers.
    pub size: u64,
    /// The Merkle root of the first `size` records (RFC 6962 §2.1 with blake3), hex.
    pub root: String,
    /// When the checkpoint was signed (RFC 3339, UTC).
    pub time: String,
    /// The fingerprint of the permission view after the first `size` records, hex.
    pub view: String,
    /// Ed25519 over `keyledger checkpoint v1\n{origin}\n{size}\n{root}\n{time}\n{view}\n`, hex.
    pub signature: String,
}

/// A page of checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointList {
    /// The checkpoints, oldest first.
    pub items: Vec<CheckpointBody>,
    /// The `after` value for the next page (the last `size` returned); absent on the last page.
    pub next: Option<u64>,
}

/// Which checkpoint to get.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    /// The tree size of a checkpoint written earlier. Omit it for a checkpoint covering
    /// every record appended so far (signed now, if the latest does not).
    #[param(minimum = 0, example = 13)]
    pub size: Option<u64>,
}

/// Which inclusion proof to compute.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The record's sequence number (its leaf is `seq - 1`).
    #[param(minimum = 1, example = 5)]
    pub seq: u64,
    /// The tree size to prove inclusion in, at least `seq`; default: the log's size now.
    #[param(minimum = 1, example = 13)]
    pub size: Option<u64>,
}

/// Which consistency proof to compute.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older tree size, at least 1.
    #[param(minimum = 1, example = 8)]
    pub from: u64,
    /// The newer tree size, at least `from`; default: the log's size now.
    #[param(minimum = 1, example = 13)]
    pub to: Option<u64>,
}

/// An RFC 6962 audit path: the record at `seq` is leaf `leaf_index` of the tree of
/// `tree_size` records whose root is `root`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "seq": 5, "leaf_index": 4, "tree_size": 13,
    "leaf_hash": "9c2e…", "root": "71f2…", "proof": ["5d1a…", "0b7f…", "e3c4…", "a8d0…"]
}))]
pub struct InclusionProof {
    /// The record's sequence number.
    pub seq: u64,
    /// Its leaf index, `seq - 1`.
    pub leaf_index: u64,
    /// The size of the tree proven into.
    pub tree_size: u64,
    /// blake3(0x00 ‖ the record's bytes as stored), hex.
    pub leaf_hash: String,
    /// The root of the tree of `tree_size` records, hex.
    pub root: String,
    /// The sibling hashes from the leaf up, hex (RFC 6962 §2.1.1 PATH).
    pub proof: Vec<String>,
}

/// An RFC 6962 consistency proof: the tree of `from` records is a prefix of the tree of `to`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "from": 8, "to": 13, "from_root": "3e0b…", "to_root": "71f2…", "proof": ["c0d1…", "77aa…"]
}))]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The root of the tree of `from` records, hex.
    pub from_root: String,
    /// The root of the tree of `to` records, hex.
    pub to_root: String,
    /// The proof's hashes, hex (RFC 6962 §2.1.2 PROOF); empty when `from == to`.
    pub proof: Vec<String>,
}

/// The key checkpoints are signed with.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "algorithm": "ed25519",
    "public_key": "3664bd42a242f300363571bb3e1faa125066b47f8abb66d223a859736f683646",
    "origin": "keyledger/69dbb0f004a9b07c"
}))]
pub struct SigningKey {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The public key, 64 hex digits; `keyledger verify --public-key` takes it.
    pub public_key: String,
    /// The origin its checkpoints name.
    pub origin: String,
}

impl From<&Checkpoint> for CheckpointBody {
    fn from(checkpoint: &Checkpoint) -> Self {
        CheckpointBody {
            kind: "checkpoint".into(),
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root.to_hex(),
            time: checkpoint.time.to_string(),
            view: checkpoint.view.to_hex(),
            signature: checkpoint.signature_hex(),
        }
    }
}

fn checkpoint_body(checkpoint: &Checkpoint) -> HttpResponse {
    // The stored line itself, so that the body is byte for byte the checkpoint.
    HttpResponse::Ok().content_type("application/json").body(checkpoint.to_line())
}

fn no_checkpoints() -> ApiError {
    ApiError::StorageUnavailable("this service keeps no checkpoints".into())
}

fn hex_all(hashes: &[TreeHash]) -> Vec<String> {
    hashes.iter().map(|hash| hash.to_hex()).collect()
}

fn proof_error<E: std::fmt::Display>(error: ProofError<E>) -> ApiError {
    match error {
        ProofError::OutOfRange(message) => ApiError::NotInLog(message),
        ProofError::MissingNode(NodeId { level, index }) => {
            tracing::error!(level, index, "a Merkle tree node is missing");
            ApiError::Internal
        }
        ProofError::Storage(error) => ApiError::StorageUnavailable(error.to_string()),
    }
}

/// Every checkpoint written, read off the event loop.
async fn all_checkpoints(state: &Shared) -> Result<Vec<Checkpoint>, ApiError> {
    let reader = state.clone();
    web::block(move || reader.ledger.checkpoints())
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| ApiError::StorageUnavailable(e.to_string()))
}

/// The head now, and `size` checked against it.
fn tree_size(state: &Shared, size: Option<u64>, name: &str) -> Result<u64, ApiError> {
    let head = state.ledger.view().head();
    match size {
        None => Ok(head),
        Some(size) if size <= head => Ok(size),
        Some(size) => Err(ApiError::NotInLog(format!("{name} {size} is past the log's {head} records"))),
    }
}

/// A signed checkpoint: with `size`, the one written at that size; without, one covering
/// every record appended so far (the latest, or a new one signed now).
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "getCheckpoint",
    tag = "audit",
    params(CheckpointQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The checkpoint, byte for byte as stored", body = CheckpointBody),
        (status = 400, description = "Bad query parameters", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No checkpoint was written at that size", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The checkpoint could not be read or written", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/checkpoint")]
pub async fn get_checkpoint(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: CheckpointQuery = super::query(&request)?;
    let Some(size) = query.size else {
        return Ok(checkpoint_body(&state.ledger.checkpoint().await?));
    };
    let all = all_checkpoints(&state).await?;
    all.iter().find(|checkpoint| checkpoint.size == size).map(checkpoint_body).ok_or(ApiError::CheckpointNotFound(size))
}

/// Every checkpoint written, oldest first, paginated by size.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "listCheckpoints",
    tag = "audit",
    params(Page),
    responses(
        Paged<AuditRead>,
        (status = 200, description = "A page of checkpoints", body = CheckpointList),
        (status = 503, description = "The checkpoints could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/checkpoints")]
pub async fn list_checkpoints(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let page = Page::of(&request)?;
    let limit = page.limit()?;
    let all = all_checkpoints(&state).await?;
    // A checkpoint of the empty log (size 0) can only be on the first page.
    let after = all.iter().filter(|checkpoint| page.after.is_none_or(|after| checkpoint.size > after));
    let (items, next) = super::paginate(after, limit, |checkpoint| checkpoint.size, CheckpointBody::from);
    Ok(HttpResponse::Ok().json(CheckpointList { items, next }))
}

/// The audit path proving that record `seq` is in the tree of `size` records: hash the
/// record's bytes as a leaf, fold in the path, and compare with a signed checkpoint's root.
/// Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "getInclusionProof",
    tag = "audit",
    params(InclusionQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "Bad query parameters", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record in a tree of that size, or no tree of that size yet", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The tree could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/proofs/inclusion")]
pub async fn get_inclusion_proof(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: InclusionQuery = super::query(&request)?;
    let size = tree_size(&state, query.size, "size")?;
    let seq = query.seq;
    if seq == 0 || seq > size {
        return Err(ApiError::NotInLog(format!("there is no record {seq} in a tree of {size} records")));
    }
    let reader = state.clone();
    let proof = web::block(move || {
        let tree = Tree(reader.ledger.log());
        let leaf = tree.get(NodeId { level: 0, index: seq - 1 })?;
        Ok::<_, ProofError<AnyLogError>>((
            leaf,
            merkle::root(&tree, size)?,
            merkle::inclusion_proof(&tree, seq - 1, size)?,
        ))
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let (leaf, root, path) = proof.map_err(proof_error)?;
    Ok(HttpResponse::Ok().json(InclusionProof {
        seq,
        leaf_index: seq - 1,
        tree_size: size,
        leaf_hash: leaf.to_hex(),
        root: root.to_hex(),
        proof: hex_all(&path),
    }))
}

/// The proof that the tree of `from` records is a prefix of the tree of `to`: that no
/// record was changed, removed or reordered in between. Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "getConsistencyProof",
    tag = "audit",
    params(ConsistencyQuery),
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "Bad query parameters", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A size is 0, past the log, or `from` is past `to`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The tree could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/proofs/consistency")]
pub async fn get_consistency_proof(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let query: ConsistencyQuery = super::query(&request)?;
    let to = tree_size(&state, query.to, "to")?;
    let from = query.from;
    let reader = state.clone();
    let proof = web::block(move || {
        let tree = Tree(reader.ledger.log());
        let proof = merkle::consistency_proof(&tree, from, to)?;
        Ok::<_, ProofError<AnyLogError>>((merkle::root(&tree, from)?, merkle::root(&tree, to)?, proof))
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let (from_root, to_root, path) = proof.map_err(proof_error)?;
    Ok(HttpResponse::Ok().json(ConsistencyProof {
        from,
        to,
        from_root: from_root.to_hex(),
        to_root: to_root.to_hex(),
        proof: hex_all(&path),
    }))
}

/// The public key checkpoints are signed with. Public: anyone may verify.
#[utoipa::path(
    operation_id = "getSigningKey",
    tag = "audit",
    responses(
        (status = 200, description = "The key", body = SigningKey),
        (status = 503, description = "This service keeps no checkpoints", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/audit/signing-key")]
pub async fn get_signing_key(state: Shared) -> Result<HttpResponse, ApiError> {
    let key = state.ledger.public_key().ok_or_else(no_checkpoints)?;
    Ok(HttpResponse::Ok().json(SigningKey {
        algorithm: "ed25519".into(),
        public_key: key.to_hex(),
        origin: key.origin(),
    }))
}

/// The audit bundle, streamed as JSON lines: the public key, every record exactly as
/// stored with the checkpoints made along the way, and a checkpoint at the full size,
/// signed for this export if the latest does not cover every record. Verify it offline
/// with `keyledger verify`. Needs `security.audit.read`.
#[utoipa::path(
    operation_id = "exportAuditBundle",
    tag = "audit",
    responses(
        Guarded<AuditRead>,
        (status = 200, description = "The bundle (JSON lines)", content_type = "application/x-ndjson", body = String),
        (status = 503, description = "The log or the checkpoints could not be read", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/v1/audit/export")]
pub async fn export_audit_bundle(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request, FunctionId::AUDIT_READ)?;
    let last = state.ledger.checkpoint().await?;
    let key = state.ledger.public_key().ok_or_else(no_checkpoints)?;
    let all = all_checkpoints(&state).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let filename = format!("keyledger-{}-{}.jsonl", key.origin().replace('/', "-"), last.size);
    let writer = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(sender.clone()));
        if let Err(error) = crate::bundle::export(writer.ledger.log(), &key, &all, &last, &mut sink) {
            // The client sees the body end early; `verify` then names the cut.
            tracing::error!(%error, "the export stopped");
            let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .streaming(ChunkStream(receiver)))
}

/// Hands what is written to the response stream, waiting while the client is slow. Also
/// the console's downloads (`console::review::stream`).
pub(crate) struct ChannelWriter(pub(crate) tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(bytes)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The response body fed by a [`ChannelWriter`].
pub(crate) struct ChunkStream(pub(crate) tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(context)
    }
}

/// Registers the routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(get_checkpoint)
        .service(list_checkpoints)
        .service(get_inclusion_proof)
        .service(get_consistency_proof)
        .service(get_signing_key)
        .service(export_audit_bundle);
}
