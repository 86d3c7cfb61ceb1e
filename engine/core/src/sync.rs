//! Binance's documented order-book synchronisation (REST snapshot + diff stream), without I/O.
//!
//! A [`BookSync`] owns one instrument's [`OrderBook`] and decides, diff by diff, whether the
//! book may be trusted. The rules are Binance's (see `shared/data/README.md`):
//!
//! - **Spot** ([`SyncRule::Spot`]): drop diffs with `u <= L` (`L` = the snapshot's
//!   `lastUpdateId`); the first applied diff has `U <= L + 1 <= u`; after that every `U` is the
//!   previous `u + 1`.
//! - **USD-M** ([`SyncRule::UsdM`]): drop diffs with `u < L`; the first applied diff has
//!   `U <= L <= u`; after that every `pu` equals the previous `u`.
//!
//! Before a snapshot, diffs are buffered (copied into reusable internal storage); the snapshot
//! is loaded and the buffer replayed through the same rules. Once synced, a broken sequence
//! (`Gap`) or a diff that carries a negative size (`Invalid`) clears the book and moves to
//! [`SyncState::Resyncing`]: the book is never used again until a new snapshot restores it, so
//! a wrong book is never handed out silently. Nothing here panics, whatever the input (ids may
//! be anything, including `u64::MAX`).
//!
//! A diff in sequence that leaves the book **crossed** (best bid >= best ask) is kept as the
//! venue sent it ([`DiffOutcome::Crossed`]): the book stays in sequence but is not to be used
//! ([`BookSync::is_crossed`]) until a later diff uncrosses it. That is a transient crossing,
//! repaired by the venue's own next updates and counted (`crossings`, `crossings_repaired`).
//! A book still crossed after [`MAX_CROSSED_DIFFS`] diffs is wrong, not transient: the next
//! diff is `Invalid` and the book resyncs. A crossed snapshot is refused.
//!
//! One `BookSync` per instrument: the diff's `header.symbol` is not looked at.

use std::mem;

use crate::book::OrderBook;
use crate::event::{DepthDiff, Level, Snapshot};
use crate::types::Side;

/// Most diffs kept while waiting for a snapshot; beyond this the oldest half is dropped (a
/// snapshot older than the kept diffs could not be bridged anyway).
const MAX_PENDING_DIFFS: usize = 8_192;
/// Most levels kept in the buffer (same policy).
const MAX_PENDING_LEVELS: usize = 1 << 21;

/// Consecutive diffs a book may stay crossed before it is judged wrong and resynced.
pub const MAX_CROSSED_DIFFS: u32 = 3;

/// Which of Binance's sequencing rules a feed follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncRule {
    /// Spot: `U`/`u` continuity (`U == previous u + 1`).
    Spot,
    /// USD-M futures: `pu` continuity (`pu == previous u`).
    UsdM,
}

/// Where the book stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Never synced yet: diffs are buffered until a snapshot arrives.
    AwaitingSnapshot,
    /// The book is correct as of [`BookSync::last_update_id`].
    Synced,
    /// Sync was lost (gap or invalid diff): the book is cleared, diffs are buffered until a new
    /// snapshot arrives.
    Resyncing,
}

/// What [`BookSync::on_diff`] did with a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Applied to the book.
    Applied,
    /// Applied, and the book is crossed: in sequence but not to be used until a diff
    /// uncrosses it (at most [`MAX_CROSSED_DIFFS`] in a row).
    Crossed,
    /// Already covered by the book (or by the buffer): dropped.
    Stale,
    /// Kept for replay after the next snapshot.
    Buffered,
    /// The sequence is broken: the book is cleared, the state is `Resyncing` and this diff
    /// starts the buffer for the next snapshot. Nothing of it was applied.
    Gap,
    /// Malformed (`U > u`, a negative size, no `pu` under the USD-M rule) or leaves a book
    /// crossed for more than [`MAX_CROSSED_DIFFS`] diffs: a synced book is cleared and goes to
    /// `Resyncing`, an unsynced one drops its buffer (which this diff has broken).
    Invalid,
}

/// Running totals, for heartbeats and tests. A buffered diff is counted once as `buffered`
/// and again as `applied` or `stale` when a snapshot replays it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    pub applied: u64,
    pub stale: u64,
    pub buffered: u64,
    pub gaps: u64,
    pub invalid: u64,
    /// Snapshots loaded (one older than a synced book is ignored and not counted).
    pub snapshots: u64,
    /// Times a synced book lost sync.
    pub resyncs: u64,
    /// Diffs that left an uncrossed book crossed (kept, in sequence, not usable).
    pub crossings: u64,
    /// Crossings a later diff undid within [`MAX_CROSSED_DIFFS`] (the rest resynced).
    pub crossings_repaired: u64,
}

/// A buffered diff: ids plus its levels in `pending_levels[start..end]` (bids before `mid`).
#[derive(Clone, Copy, Debug)]
struct PendingDiff {
    ids: Ids,
    start: usize,
    mid: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug)]
struct Ids {
    first: u64,
    last: u64,
    prev: Option<u64>,
}

/// The result of one sequencing step on a synced book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Applied,
    Crossed,
    Stale,
    Gap,
    Invalid,
}

/// One instrument's book kept in sync with a Binance depth stream.
#[derive(Debug, Clone)]
pub struct BookSync {
    rule: SyncRule,
    state: SyncState,
    book: OrderBook,
    /// Final update id the book reflects (`Some` only when synced).
    last_id: Option<u64>,
    /// Synced from a snapshot, but no diff has bridged it yet (the "first diff" rule applies).
    awaiting_first: bool,
    /// Consecutive applied diffs the book has been crossed for (0: not crossed).
    crossed_diffs: u32,
    counters: SyncCounters,
    pending: Vec<PendingDiff>,
    pending_levels: Vec<Level>,
}

impl BookSync {
    pub fn new(rule: SyncRule) -> BookSync {
        BookSync {
            rule,
            state: SyncState::AwaitingSnapshot,
            book: OrderBook::new(),
            last_id: None,
            awaiting_first: false,
            crossed_diffs: 0,
            counters: SyncCounters::default(),
            pending: Vec::with_capacity(64),
            pending_levels: Vec::with_capacity(4096),
        }
    }

    pub fn rule(&self) -> SyncRule {
        self.rule
    }

    pub fn state(&self) -> SyncState {
        self.state
    }

    pub fn is_synced(&self) -> bool {
        self.state == SyncState::Synced
    }

    /// In sequence but crossed by the last diff: not to be used (no mid, no quotes, no marks)
    /// until a diff uncrosses it or the book resyncs.
    pub fn is_crossed(&self) -> bool {
        self.crossed_diffs > 0
    }

    /// The book. Empty unless synced: check [`BookSync::is_synced`] (and
    /// [`BookSync::is_crossed`]) before trusting it.
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// The final update id the book reflects (the last applied diff's `u`, or the snapshot's
    /// `lastUpdateId` before any diff bridged it); `None` unless synced.
    pub fn last_update_id(&self) -> Option<u64> {
        self.last_id
    }

    pub fn counters(&self) -> SyncCounters {
        self.counters
    }

    /// Diffs waiting for a snapshot.
    pub fn pending_diffs(&self) -> usize {
        self.pending.len()
    }

    /// Takes one depth diff.
    pub fn on_diff(&mut self, diff: &DepthDiff<'_>) -> DiffOutcome {
        let ids = Ids {
            first: diff.first_id,
            last: diff.final_id,
            prev: diff.prev_final_id,
        };
        if ids.last < ids.first || (self.rule == SyncRule::UsdM && ids.prev.is_none()) {
            return self.invalid_diff();
        }
        if self.state != SyncState::Synced {
            return self.buffer(ids, diff.bids, diff.asks);
        }
        match self.step(ids, diff.bids, diff.asks) {
            Step::Applied => {
                self.counters.applied += 1;
                DiffOutcome::Applied
            }
            Step::Crossed => {
                self.counters.applied += 1;
                DiffOutcome::Crossed
            }
            Step::Stale => {
                self.counters.stale += 1;
                DiffOutcome::Stale
            }
            Step::Gap => {
                self.counters.gaps += 1;
                self.lose_sync();
                // This diff may be the first of the chain the next snapshot bridges to.
                self.push_pending(ids, diff.bids, diff.asks);
                DiffOutcome::Gap
            }
            Step::Invalid => self.invalid_diff(),
        }
    }

    /// Takes a REST depth snapshot: loads it and replays the buffered diffs. The state becomes
    /// `Synced`, or stays as it was when the snapshot is bad or older than the buffered diffs
    /// (those are kept for a newer snapshot). A snapshot no newer than a synced book is ignored.
    pub fn on_snapshot(&mut self, snap: &Snapshot<'_>) {
        let lid = snap.last_update_id;
        if self.state == SyncState::Synced && self.last_id.is_some_and(|last| lid <= last) {
            return;
        }
        self.counters.snapshots += 1;
        let bad_size = |levels: &[Level]| levels.iter().any(|l| l.qty.0 < 0);
        if bad_size(snap.bids) || bad_size(snap.asks) {
            self.reject_snapshot();
            return;
        }
        self.book.load_snapshot(snap.bids, snap.asks);
        if is_crossed(&self.book) {
            self.reject_snapshot();
            return;
        }
        let previous = self.state;
        self.state = SyncState::Synced;
        self.last_id = Some(lid);
        self.awaiting_first = true;
        self.crossed_diffs = 0;

        // Replay the buffer; `mem::take` moves the vectors out (no allocation) so that `step`
        // can borrow `self` mutably, and they are put back to keep their capacity.
        let pending = mem::take(&mut self.pending);
        let levels = mem::take(&mut self.pending_levels);
        let mut keep_from = pending.len();
        let mut failed = false;
        for (i, p) in pending.iter().enumerate() {
            let (bids, asks) = pending_slices(&levels, p);
            match self.step(p.ids, bids, asks) {
                Step::Applied | Step::Crossed => self.counters.applied += 1,
                Step::Stale => self.counters.stale += 1,
                Step::Gap => {
                    // The snapshot is older than the buffered chain: wait for a newer one.
                    keep_from = i;
                    failed = true;
                    break;
                }
                Step::Invalid => {
                    self.counters.invalid += 1;
                    keep_from = i + 1;
                    failed = true;
                    break;
                }
            }
        }
        self.pending = pending;
        self.pending_levels = levels;
        if failed {
            self.drop_oldest_pending(keep_from);
            self.book.clear();
            self.last_id = None;
            self.awaiting_first = false;
            self.crossed_diffs = 0;
            self.state = previous;
        } else {
            self.pending.clear();
            self.pending_levels.clear();
        }
    }

    /// One sequencing step on a synced book.
    fn step(&mut self, ids: Ids, bids: &[Level], asks: &[Level]) -> Step {
        let Some(last) = self.last_id else {
            return Step::Gap;
        };
        if self.awaiting_first {
            match self.rule {
                // Stale: u <= L. Bridges: U <= L + 1 (and L + 1 <= u, true when not stale).
                SyncRule::Spot => {
                    if ids.last <= last {
                        return Step::Stale;
                    }
                    if ids.first.saturating_sub(1) > last {
                        return Step::Gap;
                    }
                }
                // Stale: u < L. Bridges: U <= L (and L <= u, true when not stale).
                SyncRule::UsdM => {
                    if ids.last < last {
                        return Step::Stale;
                    }
                    if ids.first > last {
                        return Step::Gap;
                    }
                }
            }
        } else {
            if ids.last <= last {
                return Step::Stale;
            }
            let continuous = match self.rule {
                SyncRule::Spot => last.checked_add(1) == Some(ids.first),
                SyncRule::UsdM => ids.prev == Some(last),
            };
            if !continuous {
                return Step::Gap;
            }
        }
        for l in bids {
            if !self.book.apply(Side::Buy, l.price, l.qty) {
                return Step::Invalid;
            }
        }
        for l in asks {
            if !self.book.apply(Side::Sell, l.price, l.qty) {
                return Step::Invalid;
            }
        }
        let crossed = is_crossed(&self.book);
        if crossed && self.crossed_diffs >= MAX_CROSSED_DIFFS {
            return Step::Invalid;
        }
        self.last_id = Some(ids.last);
        self.awaiting_first = false;
        if crossed {
            if self.crossed_diffs == 0 {
                self.counters.crossings += 1;
            }
            self.crossed_diffs += 1;
            return Step::Crossed;
        }
        if self.crossed_diffs > 0 {
            self.crossed_diffs = 0;
            self.counters.crossings_repaired += 1;
        }
        Step::Applied
    }

    /// Counts a bad snapshot; a synced book is lost, an unsynced one keeps its buffer for the
    /// next snapshot.
    fn reject_snapshot(&mut self) {
        self.counters.invalid += 1;
        if self.state == SyncState::Synced {
            self.lose_sync();
        } else {
            self.book.clear();
        }
    }

    /// Counts an invalid diff and drops what it broke: the synced book, or the buffer.
    fn invalid_diff(&mut self) -> DiffOutcome {
        self.counters.invalid += 1;
        if self.state == SyncState::Synced {
            self.lose_sync();
        } else {
            self.pending.clear();
            self.pending_levels.clear();
        }
        DiffOutcome::Invalid
    }

    /// Clears the book; a synced book moves to `Resyncing`.
    /// The stream was interrupted (a disconnect or a stall): diffs may have been missed, so the
    /// book can no longer be trusted. Clears it (and any buffered diffs) and waits for a new
    /// snapshot.
    pub fn invalidate(&mut self) {
        self.lose_sync();
    }

    fn lose_sync(&mut self) {
        if self.state == SyncState::Synced {
            self.state = SyncState::Resyncing;
            self.counters.resyncs += 1;
        }
        self.book.clear();
        self.last_id = None;
        self.awaiting_first = false;
        self.crossed_diffs = 0;
        self.pending.clear();
        self.pending_levels.clear();
    }

    /// Buffers a diff while not synced, keeping the buffer one unbroken chain.
    fn buffer(&mut self, ids: Ids, bids: &[Level], asks: &[Level]) -> DiffOutcome {
        if bids.iter().chain(asks).any(|l| l.qty.0 < 0) {
            return self.invalid_diff();
        }
        if let Some(prev) = self.pending.last() {
            if ids.last <= prev.ids.last {
                // A duplicate or a replay of what is buffered already.
                self.counters.stale += 1;
                return DiffOutcome::Stale;
            }
            let continuous = match self.rule {
                SyncRule::Spot => prev.ids.last.checked_add(1) == Some(ids.first),
                SyncRule::UsdM => ids.prev == Some(prev.ids.last),
            };
            if !continuous {
                // Whatever snapshot comes next cannot use the diffs before a hole.
                self.pending.clear();
                self.pending_levels.clear();
            }
        }
        self.push_pending(ids, bids, asks);
        self.counters.buffered += 1;
        DiffOutcome::Buffered
    }

    fn push_pending(&mut self, ids: Ids, bids: &[Level], asks: &[Level]) {
        if self.pending.len() >= MAX_PENDING_DIFFS
            || self.pending_levels.len() + bids.len() + asks.len() > MAX_PENDING_LEVELS
        {
            let half = self.pending.len().div_ceil(2);
            self.drop_oldest_pending(half);
        }
        let start = self.pending_levels.len();
        self.pending_levels.extend_from_slice(bids);
        let mid = self.pending_levels.len();
        self.pending_levels.extend_from_slice(asks);
        let end = self.pending_levels.len();
        self.pending.push(PendingDiff {
            ids,
            start,
            mid,
            end,
        });
    }

    /// Drops the first `n` buffered diffs and their levels.
    fn drop_oldest_pending(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        if n == 0 {
            return;
        }
        let offset = self
            .pending
            .get(n)
            .map_or(self.pending_levels.len(), |p| p.start);
        self.pending.drain(..n);
        self.pending_levels.drain(..offset);
        for p in &mut self.pending {
            p.start -= offset;
            p.mid -= offset;
            p.end -= offset;
        }
    }
}

fn is_crossed(book: &OrderBook) -> bool {
    matches!((book.best_bid(), book.best_ask()), (Some(b), Some(a)) if b.price >= a.price)
}

fn pending_slices<'a>(levels: &'a [Level], p: &PendingDiff) -> (&'a [Level], &'a [Level]) {
    (
        levels.get(p.start..p.mid).unwrap_or_default(),
        levels.get(p.mid..p.end).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Header;
    use crate::types::{Price, Qty};

    fn lv(price: i64, qty: i64) -> Level {
        Level::new(Price::from_int(price), Qty::from_int(qty))
    }

    fn diff<'a>(
        first: u64,
        last: u64,
        prev: Option<u64>,
        bids: &'a [Level],
        asks: &'a [Level],
    ) -> DepthDiff<'a> {
        DepthDiff {
            header: Header::default(),
            first_id: first,
            final_id: last,
            prev_final_id: prev,
            bids,
            asks,
        }
    }

    fn snap<'a>(lid: u64, bids: &'a [Level], asks: &'a [Level]) -> Snapshot<'a> {
        Snapshot {
            header: Header::default(),
            last_update_id: lid,
            bids,
            asks,
        }
    }

    const BIDS: [Level; 2] = [
        Level::new(Price::from_int(99), Qty::from_int(1)),
        Level::new(Price::from_int(98), Qty::from_int(2)),
    ];
    const ASKS: [Level; 2] = [
        Level::new(Price::from_int(101), Qty::from_int(1)),
        Level::new(Price::from_int(102), Qty::from_int(2)),
    ];

    fn best(s: &BookSync) -> (Option<Level>, Option<Level>) {
        (s.book().best_bid(), s.book().best_ask())
    }

    #[test]
    fn spot_buffers_then_replays_from_the_bridging_diff() {
        let mut s = BookSync::new(SyncRule::Spot);
        assert_eq!(s.state(), SyncState::AwaitingSnapshot);
        let b1 = [lv(99, 5)];
        let b2 = [lv(99, 7)];
        let b3 = [lv(99, 9)];
        assert_eq!(
            s.on_diff(&diff(1, 10, None, &b1, &[])),
            DiffOutcome::Buffered
        );
        assert_eq!(
            s.on_diff(&diff(11, 20, None, &b2, &[])),
            DiffOutcome::Buffered
        );
        assert_eq!(
            s.on_diff(&diff(21, 30, None, &b3, &[])),
            DiffOutcome::Buffered
        );
        // L = 15: the diff 1..10 is stale, 11..20 bridges (U <= 16 <= u), 21..30 follows.
        s.on_snapshot(&snap(15, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(30));
        assert_eq!(best(&s).0, Some(lv(99, 9)));
        let c = s.counters();
        assert_eq!((c.buffered, c.applied, c.stale, c.snapshots), (3, 2, 1, 1));
        assert_eq!(s.pending_diffs(), 0);
    }

    #[test]
    fn spot_first_diff_edges() {
        // u == L is stale; U == L + 1 bridges.
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(100));
        assert_eq!(
            s.on_diff(&diff(90, 100, None, &[], &[])),
            DiffOutcome::Stale
        );
        assert_eq!(
            s.on_diff(&diff(101, 105, None, &[], &[])),
            DiffOutcome::Applied
        );
        // After that, U must be the previous u + 1.
        assert_eq!(
            s.on_diff(&diff(106, 106, None, &[], &[])),
            DiffOutcome::Applied
        );
        assert_eq!(s.on_diff(&diff(108, 110, None, &[], &[])), DiffOutcome::Gap);
        assert_eq!(s.state(), SyncState::Resyncing);
        assert!(s.book().is_empty());
        assert_eq!(s.last_update_id(), None);
        let c = s.counters();
        assert_eq!((c.gaps, c.resyncs), (1, 1));
        // The gap diff starts the buffer: a snapshot at 108 is bridged by it.
        s.on_snapshot(&snap(108, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(110));
    }

    #[test]
    fn spot_first_diff_that_does_not_bridge_is_a_gap() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        assert_eq!(s.on_diff(&diff(102, 110, None, &[], &[])), DiffOutcome::Gap);
        assert_eq!(s.state(), SyncState::Resyncing);
    }

    #[test]
    fn snapshot_older_than_the_buffer_keeps_waiting() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_diff(&diff(50, 60, None, &[], &[]));
        s.on_diff(&diff(61, 70, None, &[], &[]));
        s.on_snapshot(&snap(40, &BIDS, &ASKS));
        assert_eq!(s.state(), SyncState::AwaitingSnapshot);
        assert!(s.book().is_empty());
        assert_eq!(s.pending_diffs(), 2);
        s.on_snapshot(&snap(65, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(70));
        assert_eq!(s.counters().snapshots, 2);
    }

    #[test]
    fn a_hole_in_the_buffer_drops_what_came_before_it() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_diff(&diff(1, 10, None, &[], &[]));
        s.on_diff(&diff(20, 30, None, &[], &[]));
        assert_eq!(s.pending_diffs(), 1);
        assert_eq!(s.on_diff(&diff(25, 30, None, &[], &[])), DiffOutcome::Stale);
        s.on_snapshot(&snap(25, &BIDS, &ASKS));
        assert_eq!(s.last_update_id(), Some(30));
    }

    #[test]
    fn usdm_rules() {
        let mut s = BookSync::new(SyncRule::UsdM);
        // Buffered chain linked by pu.
        assert_eq!(
            s.on_diff(&diff(10, 20, Some(5), &[], &[])),
            DiffOutcome::Buffered
        );
        assert_eq!(
            s.on_diff(&diff(25, 30, Some(20), &[], &[])),
            DiffOutcome::Buffered
        );
        // L = 20: u < L is stale, so 10..20 (u == L) is the first, U <= L <= u.
        s.on_snapshot(&snap(20, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(30));
        assert_eq!(s.counters().applied, 2);
        // Ids are not contiguous under USD-M, only pu matters.
        assert_eq!(
            s.on_diff(&diff(40, 50, Some(30), &[], &[])),
            DiffOutcome::Applied
        );
        // A duplicate is stale.
        assert_eq!(
            s.on_diff(&diff(40, 50, Some(30), &[], &[])),
            DiffOutcome::Stale
        );
        // pu != previous u is a gap.
        assert_eq!(
            s.on_diff(&diff(60, 70, Some(55), &[], &[])),
            DiffOutcome::Gap
        );
        assert_eq!(s.state(), SyncState::Resyncing);
    }

    #[test]
    fn usdm_first_diff_edges() {
        let mut s = BookSync::new(SyncRule::UsdM);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        assert_eq!(
            s.on_diff(&diff(90, 99, Some(80), &[], &[])),
            DiffOutcome::Stale
        );
        assert_eq!(
            s.on_diff(&diff(100, 100, Some(99), &[], &[])),
            DiffOutcome::Applied
        );
        let mut s = BookSync::new(SyncRule::UsdM);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        assert_eq!(
            s.on_diff(&diff(101, 120, Some(100), &[], &[])),
            DiffOutcome::Gap
        );
        // A USD-M diff without pu cannot be sequenced.
        let mut s = BookSync::new(SyncRule::UsdM);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        assert_eq!(
            s.on_diff(&diff(100, 120, None, &[], &[])),
            DiffOutcome::Invalid
        );
        assert_eq!(s.state(), SyncState::Resyncing);
    }

    #[test]
    fn a_transient_crossing_is_kept_unusable_then_repaired_by_the_next_diff() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        let (best_bid, best_ask) = best(&s);
        // A bid above the best ask: the book crosses, stays in sequence, is not usable.
        let cross = [lv(103, 1)];
        assert_eq!(
            s.on_diff(&diff(101, 101, None, &cross, &[])),
            DiffOutcome::Crossed
        );
        assert!(s.is_synced() && s.is_crossed());
        assert_eq!(s.last_update_id(), Some(101));
        // The venue's next diff removes it: the book is what the venue says, usable again.
        let gone = [Level::new(cross[0].price, Qty(0))];
        assert_eq!(
            s.on_diff(&diff(102, 102, None, &gone, &[])),
            DiffOutcome::Applied
        );
        assert!(s.is_synced() && !s.is_crossed());
        assert_eq!(best(&s), (best_bid, best_ask));
        let c = s.counters();
        assert_eq!((c.crossings, c.crossings_repaired, c.resyncs), (1, 1, 0));
    }

    #[test]
    fn a_persistent_crossing_resyncs() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        let cross = [lv(103, 1)];
        assert_eq!(
            s.on_diff(&diff(101, 101, None, &cross, &[])),
            DiffOutcome::Crossed
        );
        for id in 102..101 + u64::from(MAX_CROSSED_DIFFS) {
            assert_eq!(
                s.on_diff(&diff(id, id, None, &[], &[])),
                DiffOutcome::Crossed
            );
        }
        let next = 101 + u64::from(MAX_CROSSED_DIFFS);
        assert_eq!(
            s.on_diff(&diff(next, next, None, &[], &[])),
            DiffOutcome::Invalid
        );
        assert_eq!(s.state(), SyncState::Resyncing);
        assert!(s.book().is_empty() && !s.is_crossed());
        let c = s.counters();
        assert_eq!(
            (c.crossings, c.crossings_repaired, c.resyncs, c.invalid),
            (1, 0, 1, 1)
        );
        // A fresh snapshot starts uncrossed.
        s.on_snapshot(&snap(200, &BIDS, &ASKS));
        assert!(s.is_synced() && !s.is_crossed());
    }

    #[test]
    fn negative_diffs_are_invalid_and_clear_the_book() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        let negative = [Level::new(Price::from_int(97), Qty(-1))];
        assert_eq!(
            s.on_diff(&diff(101, 101, None, &[], &negative)),
            DiffOutcome::Invalid
        );
        assert!(s.book().is_empty());
        // Buffered negative sizes are refused too, and break the buffer.
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_diff(&diff(1, 5, None, &[], &[]));
        assert_eq!(
            s.on_diff(&diff(6, 9, None, &negative, &[])),
            DiffOutcome::Invalid
        );
        assert_eq!(s.pending_diffs(), 0);
        assert_eq!(s.state(), SyncState::AwaitingSnapshot);
        // U > u is malformed.
        assert_eq!(s.on_diff(&diff(9, 6, None, &[], &[])), DiffOutcome::Invalid);
    }

    #[test]
    fn bad_snapshots_do_not_sync() {
        let mut s = BookSync::new(SyncRule::Spot);
        let crossed_bids = [lv(103, 1)];
        s.on_snapshot(&snap(10, &crossed_bids, &ASKS));
        assert!(!s.is_synced());
        assert!(s.book().is_empty());
        let negative = [Level::new(Price::from_int(97), Qty(-1))];
        s.on_snapshot(&snap(10, &negative, &ASKS));
        assert!(!s.is_synced());
        assert_eq!(s.counters().invalid, 2);
    }

    #[test]
    fn an_older_snapshot_does_not_rewind_a_synced_book() {
        let mut s = BookSync::new(SyncRule::Spot);
        s.on_snapshot(&snap(100, &BIDS, &ASKS));
        let b = [lv(99, 4)];
        s.on_diff(&diff(101, 110, None, &b, &[]));
        s.on_snapshot(&snap(105, &BIDS, &ASKS));
        assert_eq!(s.last_update_id(), Some(110));
        assert_eq!(best(&s).0, Some(lv(99, 4)));
        assert_eq!(s.counters().snapshots, 1);
        // A newer one is loaded and then bridged as usual.
        s.on_snapshot(&snap(120, &BIDS, &ASKS));
        assert_eq!(s.last_update_id(), Some(120));
        assert_eq!(best(&s).0, Some(lv(99, 1)));
        assert_eq!(
            s.on_diff(&diff(115, 121, None, &[], &[])),
            DiffOutcome::Applied
        );
    }

    #[test]
    fn extreme_ids_do_not_panic() {
        for rule in [SyncRule::Spot, SyncRule::UsdM] {
            let mut s = BookSync::new(rule);
            s.on_diff(&diff(u64::MAX, u64::MAX, Some(u64::MAX), &[], &[]));
            s.on_diff(&diff(0, u64::MAX, Some(0), &[], &[]));
            s.on_snapshot(&snap(u64::MAX, &BIDS, &ASKS));
            s.on_diff(&diff(u64::MAX, u64::MAX, Some(u64::MAX), &[], &[]));
            s.on_diff(&diff(0, 0, Some(0), &[], &[]));
            s.on_snapshot(&snap(0, &[], &[]));
            s.on_diff(&diff(0, 0, None, &[], &[]));
            s.on_diff(&diff(1, u64::MAX, Some(0), &[], &[]));
        }
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut s = BookSync::new(SyncRule::Spot);
        let b = [lv(99, 1)];
        for i in 0..(MAX_PENDING_DIFFS as u64 * 2) {
            s.on_diff(&diff(i + 1, i + 1, None, &b, &[]));
        }
        assert!(s.pending_diffs() <= MAX_PENDING_DIFFS);
        s.on_snapshot(&snap(MAX_PENDING_DIFFS as u64 * 2 - 5, &BIDS, &ASKS));
        assert!(s.is_synced());
        assert_eq!(s.last_update_id(), Some(MAX_PENDING_DIFFS as u64 * 2));
    }
}
