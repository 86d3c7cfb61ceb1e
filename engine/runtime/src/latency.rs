//! Latency per pipeline stage, in HDR histograms (3 significant digits, 1 ns .. 60 s).
//!
//! Each thread records into its own [`Stages`] (no sharing on the hot path) and hands a copy
//! to the housekeeping thread about once a second, which merges them for heartbeats and the
//! table printed at shutdown. `frame_to_strategy` is also kept per exchange
//! ([`Stages::record_venue`]; on the heartbeat as `frame_to_strategy.<exchange>`), so that an
//! engine of several venues shows each one's.

use hdrhistogram::Histogram;

/// The stages, in pipeline order (the names are the bus contract's `StageLatency.stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    FrameToParsed,
    FrameToStrategy,
    BookStrategyRisk,
    DecisionToWire,
    TickToOrder,
    OrderToAck,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::FrameToParsed,
        Stage::FrameToStrategy,
        Stage::BookStrategyRisk,
        Stage::DecisionToWire,
        Stage::TickToOrder,
        Stage::OrderToAck,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::FrameToParsed => "frame_to_parsed",
            Stage::FrameToStrategy => "frame_to_strategy",
            Stage::BookStrategyRisk => "book_strategy_risk",
            Stage::DecisionToWire => "decision_to_wire",
            Stage::TickToOrder => "tick_to_order",
            Stage::OrderToAck => "order_to_ack",
        }
    }
}

const HIGHEST_NS: u64 = 60_000_000_000;

/// One histogram per stage, and `frame_to_strategy` per exchange.
#[derive(Debug, Clone)]
pub struct Stages {
    hist: Vec<Histogram<u64>>,
    /// By exchange index: frame read by its feed -> popped by the strategy thread.
    venues: Vec<Histogram<u64>>,
    /// A hot thread's stages ([`Stages::recycled`]): the histograms taken once a second come
    /// back here when dropped, emptied by whoever drops them (the housekeeping thread).
    pool: Option<Pool>,
}

/// Histograms of stages handed over and emptied, ready to record again: a hot thread's
/// [`Stages::take`] neither allocates nor zeroes (a stage's histogram is ~220 KiB: a copy and
/// a reset of them all, once a second, stalled the thread for a fraction of a millisecond,
/// its page faults included).
type Pool = std::sync::Arc<std::sync::Mutex<Vec<Parts>>>;
type Parts = (Vec<Histogram<u64>>, Vec<Histogram<u64>>);

/// Emptied histograms kept for reuse, at most (one per second is taken, and given back within
/// the housekeeping thread's next turn).
const POOL_KEEP: usize = 2;

/// A stage's histograms, every page written once (a histogram's counts are allocated zeroed
/// and untouched: the first record in each page would fault on the recording thread).
fn prefaulted(stages: usize, venues: usize) -> Parts {
    let warm = |_| {
        let mut h = histogram();
        h.reset();
        h
    };
    (
        (0..stages).map(warm).collect(),
        (0..venues).map(warm).collect(),
    )
}

impl Drop for Stages {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_KEEP {
            let mut parts = (
                std::mem::take(&mut self.hist),
                std::mem::take(&mut self.venues),
            );
            for h in parts.0.iter_mut().chain(parts.1.iter_mut()) {
                h.reset();
            }
            pool.push(parts);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("constant, valid bounds")
}

fn figures_of(h: &Histogram<u64>) -> Figures {
    if h.is_empty() {
        return Figures {
            count: 0,
            p50_ns: 0,
            p99_ns: 0,
            max_ns: 0,
        };
    }
    Figures {
        count: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        max_ns: h.max(),
    }
}

impl Default for Stages {
    fn default() -> Stages {
        Stages::new()
    }
}

/// One stage's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Stages {
    pub fn new() -> Stages {
        let hist = Stage::ALL.iter().map(|_| histogram()).collect();
        Stages {
            hist,
            venues: Vec::new(),
            pool: None,
        }
    }

    /// A hot thread's stages: [`Stages::take`] swaps in emptied histograms given back by the
    /// stages it took before (dropped by the housekeeping thread once merged), with one set
    /// ready from the start; every page written once here, at start.
    pub fn recycled() -> Stages {
        let (hist, venues) = prefaulted(Stage::ALL.len(), 0);
        let pool: Pool =
            std::sync::Arc::new(std::sync::Mutex::new(vec![prefaulted(Stage::ALL.len(), 0)]));
        Stages {
            hist,
            venues,
            pool: Some(pool),
        }
    }

    /// Records a `frame_to_strategy` of exchange `x` (beside [`Stage::FrameToStrategy`]).
    #[inline]
    pub fn record_venue(&mut self, x: usize, ns: i64) {
        if self.venues.len() <= x {
            self.venues.resize_with(x + 1, histogram);
        }
        let v = u64::try_from(ns).unwrap_or(0).clamp(1, HIGHEST_NS);
        self.venues[x].saturating_record(v);
    }

    /// Exchange `x`'s `frame_to_strategy` (empty figures when none was recorded).
    pub fn venue_figures(&self, x: usize) -> Figures {
        self.venues
            .get(x)
            .map_or_else(|| figures_of(&histogram()), figures_of)
    }

    /// Records `ns` (clamped to the histogram's range; a negative interval, which a clock
    /// cannot give but a bad stamp could, counts as 0).
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: i64) {
        let v = u64::try_from(ns).unwrap_or(0).clamp(1, HIGHEST_NS);
        self.hist[stage as usize].saturating_record(v);
    }

    /// What was recorded since the last call; these stages go on empty. Of
    /// [`Stages::recycled`] stages, without allocating or zeroing (emptied histograms swapped
    /// in: the returned stages give theirs back when dropped).
    pub fn take(&mut self) -> Stages {
        let Some(pool) = self.pool.clone() else {
            let copy = self.clone();
            for h in self.hist.iter_mut().chain(self.venues.iter_mut()) {
                h.reset();
            }
            return copy;
        };
        let spare = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (hist, venues) =
            spare.unwrap_or_else(|| prefaulted(Stage::ALL.len(), self.venues.len()));
        Stages {
            hist: std::mem::replace(&mut self.hist, hist),
            venues: std::mem::replace(&mut self.venues, venues),
            pool: Some(pool),
        }
    }

    pub fn merge(&mut self, other: &Stages) {
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            // Same bounds on both sides: add cannot fail.
            let _ = mine.add(theirs);
        }
        if self.venues.len() < other.venues.len() {
            self.venues.resize_with(other.venues.len(), histogram);
        }
        for (mine, theirs) in self.venues.iter_mut().zip(&other.venues) {
            let _ = mine.add(theirs);
        }
    }

    /// One stage's histogram (values in ns), since start or the last `take`.
    pub fn histogram(&self, stage: Stage) -> &Histogram<u64> {
        &self.hist[stage as usize]
    }

    pub fn figures(&self, stage: Stage) -> Figures {
        figures_of(&self.hist[stage as usize])
    }

    /// The table printed at shutdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<20} {:>10} {:>12} {:>12} {:>12}\n",
            "stage", "count", "p50", "p99", "max"
        );
        for stage in Stage::ALL {
            let f = self.figures(stage);
            out.push_str(&format!(
                "{:<20} {:>10} {:>12} {:>12} {:>12}\n",
                stage.name(),
                f.count,
                human(f.p50_ns),
                human(f.p99_ns),
                human(f.max_ns)
            ));
        }
        out
    }
}

/// `812 ns`, `3.4 µs`, `12.1 ms`.
pub fn human(ns: u64) -> String {
    if ns == 0 {
        "-".to_owned()
    } else if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_take_and_merge() {
        let mut a = Stages::new();
        for v in 1..=1000 {
            a.record(Stage::TickToOrder, v * 1000);
        }
        a.record(Stage::FrameToParsed, -5);
        let taken = a.take();
        assert_eq!(a.figures(Stage::TickToOrder).count, 0);
        let mut total = Stages::new();
        total.merge(&taken);
        total.merge(&taken);
        let f = total.figures(Stage::TickToOrder);
        assert_eq!(f.count, 2000);
        assert!((499_000..=501_000).contains(&f.p50_ns), "{f:?}");
        assert!((989_000..=991_000).contains(&f.p99_ns), "{f:?}");
        assert_eq!(total.figures(Stage::FrameToParsed).count, 2);
        assert!(total.table().contains("tick_to_order"));
    }

    #[test]
    fn recycled_stages_are_taken_and_given_back_empty() {
        let mut a = Stages::recycled();
        a.record(Stage::TickToOrder, 5_000);
        a.record_venue(1, 7_000);
        let taken = a.take();
        assert_eq!(a.figures(Stage::TickToOrder).count, 0, "going on empty");
        assert_eq!(taken.figures(Stage::TickToOrder).count, 1);
        assert_eq!(taken.venue_figures(1).count, 1);
        let mut total = Stages::new();
        total.merge(&taken);
        let pooled = |s: &Stages| {
            s.pool
                .as_ref()
                .map_or(0, |p| p.lock().map_or(0, |v| v.len()))
        };
        assert_eq!(pooled(&a), 0, "the spare made at start was swapped in");
        drop(taken);
        assert_eq!(pooled(&a), 1, "given back when dropped");
        // The next take swaps in the histograms just given back, emptied.
        a.record(Stage::TickToOrder, 9_000);
        let again = a.take();
        assert_eq!(pooled(&a), 0, "the emptied set was swapped in");
        assert_eq!(again.figures(Stage::TickToOrder).count, 1);
        assert_eq!(a.figures(Stage::TickToOrder).count, 0);
        assert_eq!(
            a.venue_figures(1).count,
            0,
            "the exchange's histogram came back empty"
        );
        total.merge(&again);
        assert_eq!(total.figures(Stage::TickToOrder).count, 2);
        // A pool keeps at most POOL_KEEP sets; none is lost while taking goes on.
        for _ in 0..5 {
            a.record(Stage::OrderToAck, 1_000);
            let t = a.take();
            assert_eq!(t.figures(Stage::OrderToAck).count, 1);
        }
        assert!((1..=POOL_KEEP).contains(&pooled(&a)));
    }

    #[test]
    fn frame_to_strategy_is_kept_per_exchange() {
        let mut a = Stages::new();
        a.record_venue(1, 5_000);
        a.record_venue(1, 7_000);
        assert_eq!(a.venue_figures(0).count, 0);
        let mut total = Stages::new();
        total.merge(&a.take());
        assert_eq!(a.venue_figures(1).count, 0, "taken");
        let f = total.venue_figures(1);
        assert_eq!(f.count, 2);
        assert!((6_990..=7_010).contains(&f.max_ns), "{f:?}");
        assert_eq!(total.venue_figures(7).count, 0);
    }
}
