//! RFC 6962 / RFC 9162 Merkle trees over SHA-256 with distinct leaf and node
//! prefixes: `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖ right)`.
//! The tree of `n` leaves splits at the largest power of two below `n`.
//!
//! [`RootBuilder`] computes the root incrementally in `O(log n)` memory;
//! inclusion and consistency proofs are generated from the list of leaf
//! hashes and verified with the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Incremental root computation: push leaf hashes in order.
#[derive(Clone, Debug, Default)]
pub struct RootBuilder {
    /// Roots of complete subtrees, largest first, with their heights.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl RootBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        RootBuilder::default()
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut height = 0;
        let mut hash = leaf;
        while let Some(&(h, left)) = self.stack.last() {
            if h != height {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            height += 1;
        }
        self.stack.push((height, hash));
        self.size += 1;
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier: the number of leaves and the roots of the complete
    /// subtrees they form, largest first, each with its level (height above
    /// the leaves; a subtree of level `l` covers `2^l` leaves). The levels are
    /// the set bits of the size, in decreasing order, so there are at most 64
    /// entries. Together with [`RootBuilder::from_frontier`] this saves and
    /// restores a builder in `O(log n)` space.
    pub fn frontier(&self) -> (u64, Vec<(u32, Hash)>) {
        (self.size, self.stack.clone())
    }

    /// Restore a builder from its [`frontier`](RootBuilder::frontier).
    /// `None` unless the levels are exactly the set bits of `size`, largest
    /// first (the only frontier a builder of that size can have).
    pub fn from_frontier(size: u64, frontier: Vec<(u32, Hash)>) -> Option<Self> {
        let mut rest = size;
        for &(level, _) in &frontier {
            // The highest bit not yet accounted for must be this level.
            if rest.checked_ilog2() != Some(level) {
                return None;
            }
            rest &= !(1u64 << level);
        }
        (rest == 0).then_some(RootBuilder {
            stack: frontier,
            size,
        })
    }

    /// The root of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Largest power of two strictly below `n` (n ≥ 2): where a tree of `n`
/// leaves splits.
pub fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// A node of a tree of this shape: a leaf or the combination of two
/// subtrees. [`Hash`](type@Hash) is the plain tree's node (`node_hash`); other node
/// types (for example hashes that also carry a sum, as the market's
/// receipt log does) reuse the proof algorithms below unchanged.
pub trait TreeNode: Clone + PartialEq {
    /// The parent of `left` and `right`.
    fn combine(left: &Self, right: &Self) -> Self;
}

impl TreeNode for Hash {
    fn combine(left: &Self, right: &Self) -> Self {
        node_hash(left, right)
    }
}

/// The root of `leaves`, recursively (`None` for no leaves).
pub fn root_of<N: TreeNode>(leaves: &[N]) -> Option<N> {
    match leaves.len() {
        0 => None,
        1 => Some(leaves[0].clone()),
        n => {
            let k = split(n);
            Some(N::combine(&root_of(&leaves[..k])?, &root_of(&leaves[k..])?))
        }
    }
}

/// The root of `leaves` (leaf hashes), recursively.
pub fn root(leaves: &[Hash]) -> Hash {
    root_of(leaves).unwrap_or_else(empty_root)
}

/// The audit path of leaf `index` (RFC 6962 §2.1.1), bottom up.
pub fn inclusion_proof<N: TreeNode>(leaves: &[N], index: usize) -> Option<Vec<N>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    fn walk<N: TreeNode>(leaves: &[N], m: usize, path: &mut Vec<N>) -> Option<()> {
        let n = leaves.len();
        if n <= 1 {
            return Some(());
        }
        let k = split(n);
        if m < k {
            walk(&leaves[..k], m, path)?;
            path.push(root_of(&leaves[k..])?);
        } else {
            walk(&leaves[k..], m - k, path)?;
            path.push(root_of(&leaves[..k])?);
        }
        Some(())
    }
    walk(leaves, index, &mut path)?;
    Some(path)
}

/// The root an audit path leads to from `leaf` at `index` of a tree of
/// `size` leaves (RFC 9162 §2.1.3.2), or `None` when the path does not fit
/// that position.
pub fn inclusion_root<N: TreeNode>(leaf: &N, index: u64, size: u64, path: &[N]) -> Option<N> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf.clone();
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = N::combine(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = N::combine(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// Verify an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    inclusion_root(leaf, index, size, path).is_some_and(|r| r == *root)
}

/// The consistency proof from the first `old_size` leaves to all of `leaves`
/// (RFC 6962 §2.1.2).
pub fn consistency_proof<N: TreeNode>(leaves: &[N], old_size: usize) -> Option<Vec<N>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    fn subproof<N: TreeNode>(
        m: usize,
        leaves: &[N],
        complete: bool,
        out: &mut Vec<N>,
    ) -> Option<()> {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root_of(leaves)?);
            }
            return Some(());
        }
        let k = split(n);
        if m <= k {
            subproof(m, &leaves[..k], complete, out)?;
            out.push(root_of(&leaves[k..])?);
        } else {
            subproof(m - k, &leaves[k..], false, out)?;
            out.push(root_of(&leaves[..k])?);
        }
        Some(())
    }
    let mut out = Vec::new();
    subproof(old_size, leaves, true, &mut out)?;
    Some(out)
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2): the tree of `new_size`
/// leaves with root `new_root` extends the one of `old_size` with
/// `old_root`.
pub fn verify_consistency<N: TreeNode>(
    old_size: u64,
    new_size: u64,
    old_root: &N,
    new_root: &N,
    proof: &[N],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<N> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, old_root.clone());
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first.clone(), first.clone());
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = N::combine(c, &fr);
            sr = N::combine(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = N::combine(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn builder_matches_recursive_root() {
        for n in 0..70 {
            let l = leaves(n);
            let mut b = RootBuilder::new();
            for h in &l {
                b.push(*h);
            }
            assert_eq!(b.root(), root(&l), "n = {n}");
        }
    }

    #[test]
    fn frontier_restore_at_every_size_continues_to_the_same_root() {
        let l = leaves(200);
        let mut whole = RootBuilder::new();
        for h in &l {
            whole.push(*h);
        }
        for cut in 0..=l.len() {
            let mut b = RootBuilder::new();
            for h in &l[..cut] {
                b.push(*h);
            }
            let (size, frontier) = b.frontier();
            assert_eq!(size, cut as u64);
            assert_eq!(frontier.len() as u32, size.count_ones());
            let mut r = RootBuilder::from_frontier(size, frontier).expect("own frontier");
            assert_eq!(r.root(), root(&l[..cut]), "cut {cut}");
            for h in &l[cut..] {
                r.push(*h);
            }
            assert_eq!(r.size(), whole.size());
            assert_eq!(r.root(), whole.root(), "cut {cut}");
        }
    }

    #[test]
    fn frontier_levels_must_match_size() {
        let h = [7u8; 32];
        assert!(RootBuilder::from_frontier(0, vec![]).is_some());
        assert!(RootBuilder::from_frontier(5, vec![(2, h), (0, h)]).is_some());
        assert!(
            RootBuilder::from_frontier(u64::MAX, (0..64).rev().map(|l| (l, h)).collect()).is_some()
        );
        // Missing, extra, misordered, wrong and out-of-range levels.
        assert!(RootBuilder::from_frontier(0, vec![(0, h)]).is_none());
        assert!(RootBuilder::from_frontier(5, vec![(2, h)]).is_none());
        assert!(RootBuilder::from_frontier(5, vec![(0, h), (2, h)]).is_none());
        assert!(RootBuilder::from_frontier(5, vec![(2, h), (1, h)]).is_none());
        assert!(RootBuilder::from_frontier(5, vec![(2, h), (0, h), (0, h)]).is_none());
        assert!(RootBuilder::from_frontier(4, vec![(1, h), (1, h)]).is_none());
        assert!(RootBuilder::from_frontier(1, vec![(64, h)]).is_none());
        assert!(RootBuilder::from_frontier(1, vec![(u32::MAX, h)]).is_none());
    }

    #[test]
    fn rfc6962_test_vector() {
        // The 8-leaf tree of the Certificate Transparency test vectors.
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let l: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(
            hex::encode(root(&l)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(root(&l[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(root(&l[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
    }

    #[test]
    fn inclusion_and_consistency_small_trees() {
        for n in 1..40usize {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &p, &r),
                    "n {n} i {i}"
                );
                assert!(!verify_inclusion(&l[(i + 1) % n], i as u64, n as u64, &p, &r) || n == 1);
            }
            for m in 1..=n {
                let p = consistency_proof(&l, m).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &root(&l[..m]), &r, &p),
                    "m {m} n {n}"
                );
            }
        }
    }
}
