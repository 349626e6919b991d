// SPDX-License-Identifier: GPL-2.0

//! The IOVA ranges of an I/O page table: an interval tree that finds free space in O(log n).
//!
//! [`IovaTree`] holds disjoint, nonempty, inclusive ranges `[start, last]` of the 64-bit IOVA
//! space, each with a value, in an AVL tree ordered by `start`. Every node is augmented with the
//! lowest `start` and the highest `last` of its subtree and with the largest free run strictly
//! between two ranges of its subtree, so that:
//!
//! - the range containing or following an IOVA ([`IovaTree::first_from`]), hence an overlap
//!   check, is found in O(log n);
//! - the lowest free run of at least a given size at or above an IOVA ([`IovaTree::free_run`]),
//!   the first fit of the kernel-chosen placement, is found in O(log n);
//! - insertion and removal are O(log n), and removal never allocates: a node is allocated
//!   before it is inserted ([`IovaNode::new`]), so that inserting cannot fail, and it is freed
//!   when its value is taken back out.
//!
//! Why not the kernel's maple tree (`MT_FLAGS_ALLOC_RANGE` and `mas_empty_area`)? Its nodes are
//! copy-on-write: erasing a range allocates (falling back to `__GFP_NOFAIL`), and the unmap and
//! release paths of this module are allocation-free. Its indices are `unsigned long`, where IOVAs
//! are `u64`. And its `mas_*` API is not in the kernel crate. This tree is safe Rust, small, and
//! its invariants are checked by KUnit against a reference model ([`IovaTree::check`]).
//!
//! The AVL height is at most 1.44 log2(n + 2): the recursion of insertion, removal and search is
//! at most about 45 frames deep for any number of ranges a machine can hold.

use core::cmp::max;
use kernel::{
    alloc::Flags,
    prelude::*, //
};

/// A node of the tree.
///
/// # Invariants
///
/// Within a tree: every range of `left` ends before `start`, every range of `right` starts
/// after `last`; `height`, `min`, `max` and `gap` are those of the subtree (see [`fix`]).
struct Node<V> {
    start: u64,
    last: u64,
    value: V,
    /// The height of the subtree: 1 for a leaf.
    height: u8,
    /// The lowest `start` of the subtree.
    min: u64,
    /// The highest `last` of the subtree.
    max: u64,
    /// The largest number of free IOVAs between two consecutive ranges of the subtree; 0 if it
    /// holds one range.
    gap: u64,
    left: Option<KBox<Node<V>>>,
    right: Option<KBox<Node<V>>>,
}

type Link<V> = Option<KBox<Node<V>>>;

fn height<V>(link: &Link<V>) -> u8 {
    link.as_ref().map_or(0, |n| n.height)
}

/// Recomputes the augmented fields of `n` from its children.
fn fix<V>(n: &mut Node<V>) {
    n.height = 1 + max(height(&n.left), height(&n.right));
    n.min = n.start;
    n.max = n.last;
    n.gap = 0;
    if let Some(l) = &n.left {
        n.min = l.min;
        // Disjoint and ordered: `l.max < n.start`.
        n.gap = max(l.gap, n.start - l.max - 1);
    }
    if let Some(r) = &n.right {
        n.max = r.max;
        n.gap = max(n.gap, max(r.gap, r.min - n.last - 1));
    }
}

fn rotate_right<V>(mut n: KBox<Node<V>>) -> KBox<Node<V>> {
    let Some(mut l) = n.left.take() else {
        return n;
    };
    n.left = l.right.take();
    fix(&mut n);
    l.right = Some(n);
    fix(&mut l);
    l
}

fn rotate_left<V>(mut n: KBox<Node<V>>) -> KBox<Node<V>> {
    let Some(mut r) = n.right.take() else {
        return n;
    };
    n.right = r.left.take();
    fix(&mut n);
    r.left = Some(n);
    fix(&mut r);
    r
}

/// Restores the AVL balance of `n`, whose subtrees are balanced and differ in height by at
/// most 2, and its augmented fields.
fn balance<V>(mut n: KBox<Node<V>>) -> KBox<Node<V>> {
    fix(&mut n);
    let (hl, hr) = (height(&n.left), height(&n.right));
    if hl > hr + 1 {
        if let Some(l) = n.left.take() {
            n.left = Some(if height(&l.left) < height(&l.right) {
                rotate_left(l)
            } else {
                l
            });
        }
        return rotate_right(n);
    }
    if hr > hl + 1 {
        if let Some(r) = n.right.take() {
            n.right = Some(if height(&r.right) < height(&r.left) {
                rotate_right(r)
            } else {
                r
            });
        }
        return rotate_left(n);
    }
    n
}

fn insert<V>(link: Link<V>, new: KBox<Node<V>>) -> KBox<Node<V>> {
    match link {
        None => new,
        Some(mut n) => {
            if new.start < n.start {
                n.left = Some(insert(n.left.take(), new));
            } else {
                n.right = Some(insert(n.right.take(), new));
            }
            balance(n)
        }
    }
}

/// Removes the lowest node of `n`: the subtree left, and that node (children detached).
fn remove_min<V>(mut n: KBox<Node<V>>) -> (Link<V>, KBox<Node<V>>) {
    match n.left.take() {
        Some(l) => {
            let (rest, min) = remove_min(l);
            n.left = rest;
            (Some(balance(n)), min)
        }
        None => (n.right.take(), n),
    }
}

/// Removes the node starting at `start` from `link`: the subtree left, and that node (children
/// detached) if there was one.
fn remove<V>(link: Link<V>, start: u64) -> (Link<V>, Link<V>) {
    let Some(mut n) = link else {
        return (None, None);
    };
    if start < n.start {
        let (rest, found) = remove(n.left.take(), start);
        n.left = rest;
        (Some(balance(n)), found)
    } else if start > n.start {
        let (rest, found) = remove(n.right.take(), start);
        n.right = rest;
        (Some(balance(n)), found)
    } else {
        let left = n.left.take();
        let rest = match n.right.take() {
            None => left,
            Some(r) => {
                let (right, mut successor) = remove_min(r);
                successor.left = left;
                successor.right = right;
                Some(balance(successor))
            }
        };
        (rest, Some(n))
    }
}

/// The start of the lowest free run of at least `need` IOVAs that lies strictly between two
/// ranges of the subtree `n`, the first of which ends at or after `from`.
///
/// O(log n): a subtree entirely at or after `from` with a large enough `gap` always has an
/// answer, one entirely before `from` is skipped, and only the subtrees on the path to `from`
/// straddle it.
fn lowest_gap<V>(n: &Node<V>, from: u64, need: u64) -> Option<u64> {
    if n.max < from || n.gap < need {
        return None;
    }
    if let Some(l) = &n.left {
        if let Some(s) = lowest_gap(l, from, need) {
            return Some(s);
        }
        if l.max >= from && n.start - l.max > need {
            return Some(l.max + 1);
        }
    }
    if let Some(r) = &n.right {
        if n.last >= from && r.min - n.last > need {
            return Some(n.last + 1);
        }
        return lowest_gap(r, from, need);
    }
    None
}

/// A node allocated for a value, to be inserted into an [`IovaTree`] without allocating.
pub(crate) struct IovaNode<V>(KBox<Node<V>>);

impl<V> IovaNode<V> {
    /// Allocates a node holding `value`.
    pub(crate) fn new(value: V, flags: Flags) -> Result<Self> {
        Ok(IovaNode(KBox::new(
            Node {
                start: 0,
                last: 0,
                value,
                height: 1,
                min: 0,
                max: 0,
                gap: 0,
                left: None,
                right: None,
            },
            flags,
        )?))
    }

    /// The value.
    pub(crate) fn value(&self) -> &V {
        &self.0.value
    }

    /// The value, the node freed.
    pub(crate) fn into_value(self) -> V {
        KBox::into_inner(self.0).value
    }
}

/// Disjoint ranges of the IOVA space with a value each (see the [module documentation](self)).
///
/// # Invariants
///
/// `root` is an AVL tree of disjoint, nonempty ranges ordered by start, whose nodes hold the
/// augmented fields of their subtrees; `len` is its number of nodes.
pub(crate) struct IovaTree<V> {
    root: Link<V>,
    len: usize,
}

impl<V> IovaTree<V> {
    /// An empty tree.
    pub(crate) const fn new() -> Self {
        IovaTree { root: None, len: 0 }
    }

    /// The number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The lowest start and the highest last of all ranges; `None` if there is none.
    pub(crate) fn bounds(&self) -> Option<(u64, u64)> {
        self.root.as_ref().map(|n| (n.min, n.max))
    }

    /// Inserts `node` as `[start, last]`, which must be nonempty and must not overlap any range
    /// of the tree (check with [`IovaTree::overlaps`]). Never allocates. `EEXIST` if it overlaps
    /// after all, `EINVAL` if it is empty: then the node is given back.
    pub(crate) fn insert(
        &mut self,
        node: IovaNode<V>,
        start: u64,
        last: u64,
    ) -> Result<(), (Error, IovaNode<V>)> {
        if last < start {
            return Err((EINVAL, node));
        }
        if self.overlaps(start, last) {
            return Err((EEXIST, node));
        }
        let mut n = node.0;
        n.start = start;
        n.last = last;
        fix(&mut n);
        // INVARIANT: disjoint from every range (checked above), inserted in order and
        // rebalanced with the augmented fields recomputed on the way up.
        self.root = Some(insert(self.root.take(), n));
        self.len += 1;
        Ok(())
    }

    /// Removes the range starting at `start`, and returns its last IOVA and its value. Never
    /// allocates: the node is freed.
    pub(crate) fn remove(&mut self, start: u64) -> Option<(u64, V)> {
        let (root, found) = remove(self.root.take(), start);
        // INVARIANT: `remove` keeps the tree ordered, balanced and augmented.
        self.root = root;
        let n = found?;
        self.len -= 1;
        let n = KBox::into_inner(n);
        Some((n.last, n.value))
    }

    /// The range starting at exactly `start`: its last IOVA and its value.
    pub(crate) fn get(&self, start: u64) -> Option<(u64, &V)> {
        let mut cur = self.root.as_deref();
        while let Some(n) = cur {
            if start < n.start {
                cur = n.left.as_deref();
            } else if start > n.start {
                cur = n.right.as_deref();
            } else {
                return Some((n.last, &n.value));
            }
        }
        None
    }

    /// The lowest range that ends at or after `iova` (the one containing it, else the next one):
    /// its start, its last IOVA and its value.
    pub(crate) fn first_from(&self, iova: u64) -> Option<(u64, u64, &V)> {
        let mut best = None;
        let mut cur = self.root.as_deref();
        while let Some(n) = cur {
            if n.last >= iova {
                best = Some(n);
                cur = n.left.as_deref();
            } else {
                cur = n.right.as_deref();
            }
        }
        best.map(|n| (n.start, n.last, &n.value))
    }

    /// The lowest range: its start, its last IOVA and its value.
    pub(crate) fn first(&self) -> Option<(u64, u64, &V)> {
        self.first_from(0)
    }

    /// Whether `[start, last]` overlaps a range of the tree.
    pub(crate) fn overlaps(&self, start: u64, last: u64) -> bool {
        self.first_from(start).is_some_and(|(s, _, _)| s <= last)
    }

    /// The lowest `s` such that `[s, s + need - 1]` lies inside `[from, to]` and overlaps no
    /// range; `need` is nonzero. O(log n).
    pub(crate) fn free_run(&self, from: u64, to: u64, need: u64) -> Option<u64> {
        let fits = |s: u64| s.checked_add(need - 1).filter(|&l| l <= to).map(|_| s);
        let s = match self.first_from(from) {
            // Nothing at or after `from`: free up to the end of the IOVA space.
            None => from,
            // Free from `from` up to the next range.
            Some((start, _, _)) if start > from && start - from >= need => from,
            // Else after a range that ends at or after `from`: between two ranges, or after
            // the last one.
            Some(_) => match self.root.as_deref().and_then(|n| lowest_gap(n, from, need)) {
                Some(s) => s,
                None => {
                    let (_, top) = self.bounds()?;
                    if u64::MAX - top < need {
                        return None;
                    }
                    top + 1
                }
            },
        };
        fits(s)
    }

    /// The ranges in ascending order, each found from the previous one in O(log n) (nothing is
    /// allocated): their starts, last IOVAs and values.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        Iter {
            tree: self,
            next: Some(0),
        }
    }

    /// Whether the tree keeps its invariants: ordered, disjoint, nonempty ranges, AVL-balanced,
    /// with the augmented fields right and `len` nodes. O(n); for tests.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code))]
    pub(crate) fn check(&self) -> bool {
        /// The number of nodes of a valid subtree within `(lo, hi)` exclusive bounds.
        fn walk<V>(link: &Link<V>, lo: Option<u64>, hi: Option<u64>) -> Option<usize> {
            let Some(n) = link else {
                return Some(0);
            };
            if n.last < n.start
                || lo.is_some_and(|lo| n.start <= lo)
                || hi.is_some_and(|hi| n.last >= hi)
            {
                return None;
            }
            let nl = walk(&n.left, lo, Some(n.start))?;
            let nr = walk(&n.right, Some(n.last), hi)?;
            let (hl, hr) = (height(&n.left), height(&n.right));
            if hl.abs_diff(hr) > 1 {
                return None;
            }
            let mut expect = Node {
                start: n.start,
                last: n.last,
                value: (),
                height: 0,
                min: 0,
                max: 0,
                gap: 0,
                left: None,
                right: None,
            };
            // The augmented fields, recomputed from the children's (checked just above).
            expect.height = 1 + max(hl, hr);
            expect.min = n.left.as_ref().map_or(n.start, |l| l.min);
            expect.max = n.right.as_ref().map_or(n.last, |r| r.max);
            if let Some(l) = &n.left {
                expect.gap = max(l.gap, n.start - l.max - 1);
            }
            if let Some(r) = &n.right {
                expect.gap = max(expect.gap, max(r.gap, r.min - n.last - 1));
            }
            if (n.height, n.min, n.max, n.gap)
                != (expect.height, expect.min, expect.max, expect.gap)
            {
                return None;
            }
            Some(nl + nr + 1)
        }
        walk(&self.root, None, None) == Some(self.len)
    }
}

/// The iterator of [`IovaTree::iter`].
pub(crate) struct Iter<'a, V> {
    tree: &'a IovaTree<V>,
    /// Where the next range ends at or after; `None` once past the end of the IOVA space.
    next: Option<u64>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (u64, u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.tree.first_from(self.next?)?;
        self.next = item.1.checked_add(1);
        Some(item)
    }
}

#[kunit_tests(ioasid_iova_tree)]
mod tests {
    use super::*;

    use crate::test_rng::Rng;

    /// The reference model: sorted, disjoint ranges in a vector, searched linearly.
    fn ref_free_run(model: &[(u64, u64, u64)], from: u64, to: u64, need: u64) -> Option<u64> {
        let mut cand = from;
        for &(s, l, _) in model {
            if l < cand {
                continue;
            }
            if s > cand && s - cand >= need {
                break;
            }
            cand = l.checked_add(1)?;
        }
        cand.checked_add(need - 1)
            .filter(|&l| l <= to)
            .map(|_| cand)
    }

    fn ref_insert(model: &mut KVec<(u64, u64, u64)>, s: u64, l: u64, v: u64) -> Result {
        let i = model
            .iter()
            .position(|&(ms, _, _)| ms > s)
            .unwrap_or(model.len());
        model.reserve(1, GFP_KERNEL)?;
        model
            .insert_within_capacity(i, (s, l, v))
            .map_err(|_| ENOMEM)?;
        Ok(())
    }

    fn same(t: &IovaTree<u64>, model: &[(u64, u64, u64)]) -> bool {
        t.len() == model.len()
            && t.check()
            && t.iter()
                .zip(model.iter())
                .all(|((s, l, &v), &(ms, ml, mv))| (s, l, v) == (ms, ml, mv))
    }

    /// Random fixed inserts, first-fit inserts and removals, against the reference model after
    /// every step: the same ranges, the same free runs, the same overlaps, and the tree's
    /// invariants.
    #[test]
    fn random_against_reference() -> Result {
        const PAGE: u64 = 0x1000;
        // A small space (4096 pages) so that ranges collide often, at the top of the IOVA space
        // so that the arithmetic meets its end.
        let base = u64::MAX - 4096 * PAGE + 1;
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut t = IovaTree::new();
        let mut model = KVec::with_capacity(4096, GFP_KERNEL)?;
        for step in 0..6000u64 {
            let op = rng.below(10);
            if op < 4 {
                // A fixed range, which may overlap.
                let s = base + rng.below(4096) * PAGE;
                let most = if rng.below(8) == 0 { 64 } else { 4 };
                let pages = 1 + rng.below(most);
                let Some(l) = s.checked_add(pages * PAGE - 1) else {
                    continue;
                };
                let expect = model.iter().any(|&(ms, ml, _)| ms <= l && s <= ml);
                assert_eq!(t.overlaps(s, l), expect);
                let node = IovaNode::new(step, GFP_KERNEL)?;
                match t.insert(node, s, l) {
                    Ok(()) => {
                        assert!(!expect);
                        ref_insert(&mut model, s, l, step)?;
                    }
                    Err((e, _)) => {
                        assert!(expect);
                        assert_eq!(e, EEXIST);
                    }
                }
            } else if op < 7 {
                // First fit in a random window.
                let from = base + rng.below(4096) * PAGE;
                let to = from.saturating_add(rng.below(4096) * PAGE);
                let most = if rng.below(4) == 0 { 128 } else { 4 };
                let need = (1 + rng.below(most)) * PAGE;
                let got = t.free_run(from, to, need);
                assert_eq!(got, ref_free_run(&model, from, to, need));
                if let Some(s) = got {
                    assert!(!t.overlaps(s, s + need - 1));
                    if t.insert(IovaNode::new(step, GFP_KERNEL)?, s, s + need - 1)
                        .is_err()
                    {
                        return Err(EINVAL);
                    }
                    ref_insert(&mut model, s, s + need - 1, step)?;
                }
            } else if !model.is_empty() {
                // Remove one, by its start.
                let i = rng.below(model.len() as u64) as usize;
                let (s, l, v) = model.remove(i)?;
                assert_eq!(t.remove(s), Some((l, v)));
                assert_eq!(t.remove(s), None);
            }
            assert!(same(&t, &model));
            // Lookups at random IOVAs.
            let x = base + rng.below(4096 * PAGE);
            let expect = model.iter().find(|&&(_, ml, _)| ml >= x).copied();
            assert_eq!(t.first_from(x).map(|(s, l, &v)| (s, l, v)), expect);
        }
        // Emptied in random order.
        while !model.is_empty() {
            let i = rng.below(model.len() as u64) as usize;
            let (s, l, v) = model.remove(i)?;
            assert_eq!(t.remove(s), Some((l, v)));
            assert!(same(&t, &model));
        }
        assert!(t.first().is_none());
        Ok(())
    }

    /// The edges of the IOVA space: a range ending at `u64::MAX`, free runs that would wrap.
    #[test]
    fn edges_of_the_space() -> Result {
        let mut t = IovaTree::new();
        assert_eq!(t.free_run(0, u64::MAX, u64::MAX), Some(0));
        assert!(t
            .insert(IovaNode::new(1u64, GFP_KERNEL)?, u64::MAX - 0xfff, u64::MAX)
            .is_ok());
        assert_eq!(t.free_run(0, u64::MAX, u64::MAX), None);
        assert_eq!(t.free_run(0, u64::MAX, u64::MAX - 0xfff), Some(0));
        assert_eq!(t.free_run(1, u64::MAX, u64::MAX - 0xfff), None);
        assert_eq!(t.free_run(u64::MAX - 0xfff, u64::MAX, 1), None);
        assert!(t.insert(IovaNode::new(2u64, GFP_KERNEL)?, 0, 0).is_ok());
        assert_eq!(t.free_run(0, u64::MAX, 1), Some(1));
        assert!(matches!(
            t.insert(IovaNode::new(3u64, GFP_KERNEL)?, 5, 4),
            Err((e, _)) if e == EINVAL
        ));
        assert!(t.check());
        assert_eq!(t.iter().count(), 2);
        Ok(())
    }
}
