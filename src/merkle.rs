//! The Merkle tree over the log: RFC 6962 §2.1 with blake3 in place of SHA-256.
//!
//! - leaf hash = blake3(0x00 ‖ record bytes), the record exactly as stored (and as it
//!   appears in an export, without its newline);
//! - node hash = blake3(0x01 ‖ left ‖ right);
//! - a tree of `n > 1` leaves splits at `k`, the largest power of two below `n`;
//! - the empty tree's root is blake3 of nothing.
//!
//! The tree is kept as its *complete subtrees*: node `(level, index)` is the root of the
//! perfect subtree over leaves `index·2^level .. (index+1)·2^level`. Appending a leaf
//! creates at most `log2(n) + 1` new nodes, computed from the [`Frontier`] (the complete
//! subtrees along the right edge), so an append is O(log n). Any subtree the proofs
//! need, complete or not, is then assembled from O(log n) stored nodes.
//!
//! Nothing here does I/O: stored nodes are reached through [`Nodes`].

use std::fmt;

/// A hash in the Merkle tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeHash([u8; 32]);

impl TreeHash {
    /// The hash from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        TreeHash(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 *lowercase* hexadecimal characters: one hash has one spelling, so an
    /// edited letter case cannot pass for the same value.
    pub fn from_hex(text: &str) -> Option<Self> {
        let lowercase = text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if text.len() != 64 || !lowercase {
            return None;
        }
        blake3::Hash::from_hex(text).ok().map(|hash| TreeHash(*hash.as_bytes()))
    }
}

impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash({})", self.to_hex())
    }
}

impl fmt::Display for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hash of a leaf: blake3(0x00 ‖ bytes).
pub fn leaf_hash(bytes: &[u8]) -> TreeHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(bytes);
    TreeHash(*hasher.finalize().as_bytes())
}

/// The hash of an interior node: blake3(0x01 ‖ left ‖ right).
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x01]);
    hasher.update(&left.0);
    hasher.update(&right.0);
    TreeHash(*hasher.finalize().as_bytes())
}

/// The root of the empty tree: blake3 of nothing.
pub fn empty_root() -> TreeHash {
    TreeHash(*blake3::hash(b"").as_bytes())
}

/// The largest power of two strictly below `n`, for `n > 1`: where RFC 6962 splits.
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// A stored complete subtree: the root of leaves `index·2^level .. (index+1)·2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    /// The subtree's height: 0 for a leaf.
    pub level: u8,
    /// Its place among the subtrees of that height, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node's storage key: the level, then the index big-endian, so that a
    /// level's nodes sort in order.
    pub fn to_key(self) -> [u8; 9] {
        let mut key = [0; 9];
        key[0] = self.level;
        key[1..].copy_from_slice(&self.index.to_be_bytes());
        key
    }
}

/// The complete subtrees along the right edge of a tree: all an append needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// The roots of the perfect subtrees that make up the tree, largest (leftmost) first:
    /// one per set bit of `size`.
    peaks: Vec<TreeHash>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves, from its stored nodes.
    pub fn load<N: Nodes>(nodes: &N, size: u64) -> Result<Self, ProofError<N::Error>> {
        let mut peaks = Vec::new();
        let mut start = 0;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                peaks.push(nodes.get(NodeId { level, index: start >> level })?);
                start += width;
            }
        }
        Ok(Self { size, peaks })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf, calling `created` with every complete subtree the leaf completes,
    /// the leaf itself first, in increasing height.
    pub fn push(&mut self, leaf: TreeHash, mut created: impl FnMut(NodeId, TreeHash)) {
        let (mut hash, mut level, mut index) = (leaf, 0u8, self.size);
        created(NodeId { level, index }, hash);
        while index & 1 == 1 {
            // A full left sibling of the same height is always the last peak.
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            created(NodeId { level, index }, hash);
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The tree's root hash.
    pub fn root(&self) -> TreeHash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&last) = peaks.next() else { return empty_root() };
        peaks.fold(last, |right, left| node_hash(left, &right))
    }
}

/// Read access to the stored complete subtrees.
pub trait Nodes {
    /// What reading a node can fail with.
    type Error;

    /// The node, or `None` if it is not stored.
    fn node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error>;

    /// The node, which must be stored.
    fn get(&self, id: NodeId) -> Result<TreeHash, ProofError<Self::Error>> {
        self.node(id)?.ok_or(ProofError::MissingNode(id))
    }
}

/// Why a root or a proof could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// The sizes or positions asked for do not fit the tree.
    #[error("{0}")]
    OutOfRange(String),
    /// A node the tree should hold is missing from storage.
    #[error("the tree node at level {} index {} is missing", .0.level, .0.index)]
    MissingNode(NodeId),
    /// Reading storage failed.
    #[error("reading the tree failed")]
    Storage(#[source] E),
}

impl<E> From<E> for ProofError<E> {
    fn from(error: E) -> Self {
        ProofError::Storage(error)
    }
}

/// MTH(D[start..end]): the root of any run of leaves whose left-hand subtrees are
/// aligned as RFC 6962's recursion makes them, built from stored complete subtrees.
fn subtree_root<N: Nodes>(nodes: &N, start: u64, end: u64) -> Result<TreeHash, ProofError<N::Error>> {
    let width = end - start;
    if width == 0 {
        return Ok(empty_root());
    }
    if width.is_power_of_two() && start.is_multiple_of(width) {
        return nodes.get(NodeId { level: width.trailing_zeros() as u8, index: start / width });
    }
    let k = split(width);
    Ok(node_hash(&subtree_root(nodes, start, start + k)?, &subtree_root(nodes, start + k, end)?))
}

/// The root of the tree's first `size` leaves.
pub fn root<N: Nodes>(nodes: &N, size: u64) -> Result<TreeHash, ProofError<N::Error>> {
    subtree_root(nodes, 0, size)
}

/// The audit path of leaf `index` (0-based) in the tree of the first `size` leaves:
/// RFC 6962 §2.1.1 PATH(m, D[n]), from the leaf's sibling up.
pub fn inclusion_proof<N: Nodes>(nodes: &N, index: u64, size: u64) -> Result<Vec<TreeHash>, ProofError<N::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!("leaf {index} is not in a tree of {size} leaves")));
    }
    let mut path = Vec::new();
    let (mut start, mut end) = (0, size);
    // Walk down from the root, noting each sibling subtree; the path lists them bottom-up.
    while end - start > 1 {
        let k = split(end - start);
        if index < start + k {
            path.push(subtree_root(nodes, start + k, end)?);
            end = start + k;
        } else {
            path.push(subtree_root(nodes, start, start + k)?);
            start += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The proof that the tree of the first `old` leaves is a prefix of the tree of the first
/// `new`: RFC 6962 §2.1.2 PROOF(m, D[n]). Empty when `old == new`.
pub fn consistency_proof<N: Nodes>(nodes: &N, old: u64, new: u64) -> Result<Vec<TreeHash>, ProofError<N::Error>> {
    if old == 0 || old > new {
        return Err(ProofError::OutOfRange(format!(
            "no consistency proof from a tree of {old} leaves to one of {new}: the first size must be between 1 and the second"
        )));
    }
    let mut proof = Vec::new();
    let (mut start, mut end, mut m, mut complete) = (0, new, old, true);
    // SUBPROOF(m, D[start..end], complete), unrolled: each step notes one subtree.
    while m != end - start {
        let k = split(end - start);
        if m <= k {
            proof.push(subtree_root(nodes, start + k, end)?);
            end = start + k;
        } else {
            proof.push(subtree_root(nodes, start, start + k)?);
            start += k;
            m -= k;
            complete = false;
        }
    }
    if !complete {
        proof.push(subtree_root(nodes, start, end)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2, the verifier for RFC 6962's paths).
pub fn verify_inclusion(leaf: &TreeHash, index: u64, size: u64, proof: &[TreeHash], root: &TreeHash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node_hash(sibling, &hash);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && hash == *root
}

/// Checks a consistency proof between two roots (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old: u64, new: u64, old_root: &TreeHash, new_root: &TreeHash, proof: &[TreeHash]) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if proof.is_empty() {
        return false;
    }
    // When `old` is a power of two, the old root itself starts the proof.
    let mut path: Vec<TreeHash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

/// Stored nodes in a map: for tests, and for trees built in memory.
impl Nodes for std::collections::HashMap<NodeId, TreeHash> {
    type Error = std::convert::Infallible;

    fn node(&self, id: NodeId) -> Result<Option<TreeHash>, Self::Error> {
        Ok(self.get(&id).copied())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// MTH straight from RFC 6962 §2.1, recursively over the leaves.
    fn reference_root(leaves: &[TreeHash]) -> TreeHash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn reference_path(m: usize, leaves: &[TreeHash]) -> Vec<TreeHash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut path = reference_path(m, &leaves[..k]);
            path.push(reference_root(&leaves[k..]));
            path
        } else {
            let mut path = reference_path(m - k, &leaves[k..]);
            path.push(reference_root(&leaves[..k]));
            path
        }
    }

    fn reference_subproof(m: usize, leaves: &[TreeHash], complete: bool) -> Vec<TreeHash> {
        let n = leaves.len();
        if m == n {
            return if complete { Vec::new() } else { vec![reference_root(leaves)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut proof = reference_subproof(m, &leaves[..k], complete);
            proof.push(reference_root(&leaves[k..]));
            proof
        } else {
            let mut proof = reference_subproof(m - k, &leaves[k..], false);
            proof.push(reference_root(&leaves[..k]));
            proof
        }
    }

    fn build(n: u64) -> (Vec<TreeHash>, HashMap<NodeId, TreeHash>, Frontier) {
        let leaves: Vec<TreeHash> = (0..n).map(|i| leaf_hash(format!("record {i}").as_bytes())).collect();
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::default();
        for leaf in &leaves {
            frontier.push(*leaf, |id, hash| {
                nodes.insert(id, hash);
            });
        }
        (leaves, nodes, frontier)
    }

    #[test]
    fn the_empty_tree_is_blake3_of_nothing_and_a_single_leaf_is_its_own_root() {
        assert_eq!(Frontier::default().root().to_hex(), blake3::hash(b"").to_hex().to_string());
        let (leaves, nodes, frontier) = build(1);
        assert_eq!(frontier.root(), leaves[0]);
        assert_eq!(root(&nodes, 1).unwrap(), leaves[0]);
        assert_eq!(leaves[0], TreeHash(*blake3::hash(b"\x00record 0").as_bytes()));
    }

    #[test]
    fn roots_from_the_frontier_and_from_stored_nodes_match_the_rfc_recursion_at_every_size() {
        let (leaves, nodes, _) = build(70);
        let mut frontier = Frontier::default();
        for n in 0..=70u64 {
            let expected = reference_root(&leaves[..n as usize]);
            assert_eq!(frontier.root(), expected, "frontier at {n}");
            assert_eq!(root(&nodes, n).unwrap(), expected, "stored nodes at {n}");
            assert_eq!(Frontier::load(&nodes, n).unwrap(), frontier, "loaded frontier at {n}");
            if let Some(leaf) = leaves.get(n as usize) {
                frontier.push(*leaf, |_, _| {});
            }
        }
    }

    #[test]
    fn an_append_stores_each_completed_subtree_once() {
        let (_, nodes, _) = build(64);
        // 64 leaves + 32 + 16 + 8 + 4 + 2 + 1 complete subtrees.
        assert_eq!(nodes.len(), 127);
    }

    #[test]
    fn inclusion_proofs_match_the_rfc_and_verify_at_every_index_and_size() {
        let (leaves, nodes, _) = build(40);
        for n in 1..=40u64 {
            let tree_root = reference_root(&leaves[..n as usize]);
            for m in 0..n {
                let proof = inclusion_proof(&nodes, m, n).unwrap();
                assert_eq!(proof, reference_path(m as usize, &leaves[..n as usize]), "PATH({m}, {n})");
                assert!(verify_inclusion(&leaves[m as usize], m, n, &proof, &tree_root), "verify ({m}, {n})");
                let wrong_leaf = leaf_hash(b"forged");
                assert!(!verify_inclusion(&wrong_leaf, m, n, &proof, &tree_root));
            }
        }
    }

    #[test]
    fn consistency_proofs_match_the_rfc_and_verify_for_every_pair_of_sizes() {
        let (leaves, nodes, _) = build(40);
        for n in 1..=40u64 {
            let new_root = reference_root(&leaves[..n as usize]);
            for m in 1..=n {
                let old_root = reference_root(&leaves[..m as usize]);
                let proof = consistency_proof(&nodes, m, n).unwrap();
                assert_eq!(proof, reference_subproof(m as usize, &leaves[..n as usize], true), "PROOF({m}, {n})");
                assert!(verify_consistency(m, n, &old_root, &new_root, &proof), "verify ({m}, {n})");
                if m < n {
                    let forged = leaf_hash(b"forged");
                    assert!(!verify_consistency(m, n, &forged, &new_root, &proof), "forged old root ({m}, {n})");
                    assert!(!verify_consistency(m, n, &old_root, &forged, &proof), "forged new root ({m}, {n})");
                }
            }
        }
    }

    #[test]
    fn proofs_outside_the_tree_are_refused_not_computed() {
        let (_, nodes, _) = build(5);
        assert!(matches!(inclusion_proof(&nodes, 5, 5), Err(ProofError::OutOfRange(_))));
        assert!(matches!(consistency_proof(&nodes, 0, 5), Err(ProofError::OutOfRange(_))));
        assert!(matches!(consistency_proof(&nodes, 6, 5), Err(ProofError::OutOfRange(_))));
        assert!(matches!(root(&nodes, 9), Err(ProofError::MissingNode(_))));
    }

    #[test]
    fn hashes_have_one_spelling() {
        let hash = leaf_hash(b"x");
        assert_eq!(TreeHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TreeHash::from_hex(&hash.to_hex().to_uppercase()), None);
        assert_eq!(TreeHash::from_hex("00"), None);
    }
}
