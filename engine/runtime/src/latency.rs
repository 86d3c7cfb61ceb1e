//! Latency per pipeline stage, in HDR histograms (3 significant digits, 1 ns .. 60 s).
//!
//! Each thread records into its own [`Stages`] (no sharing on the hot path) and hands a copy
//! to the housekeeping thread about once a second, which merges them for heartbeats and the
//! table printed at shutdown.

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

/// One histogram per stage.
#[derive(Debug, Clone)]
pub struct Stages {
    hist: Vec<Histogram<u64>>,
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
        let hist = Stage::ALL
            .iter()
            .map(|_| Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("constant, valid bounds"))
            .collect();
        Stages { hist }
    }

    /// Records `ns` (clamped to the histogram's range; a negative interval, which a clock
    /// cannot give but a bad stamp could, counts as 0).
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: i64) {
        let v = u64::try_from(ns).unwrap_or(0).clamp(1, HIGHEST_NS);
        self.hist[stage as usize].saturating_record(v);
    }

    /// A copy of what was recorded since the last call, and a reset.
    pub fn take(&mut self) -> Stages {
        let copy = self.clone();
        for h in &mut self.hist {
            h.reset();
        }
        copy
    }

    pub fn merge(&mut self, other: &Stages) {
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            // Same bounds on both sides: add cannot fail.
            let _ = mine.add(theirs);
        }
    }

    /// One stage's histogram (values in ns), since start or the last `take`.
    pub fn histogram(&self, stage: Stage) -> &Histogram<u64> {
        &self.hist[stage as usize]
    }

    pub fn figures(&self, stage: Stage) -> Figures {
        let h = &self.hist[stage as usize];
        Figures {
            count: h.len(),
            p50_ns: if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.5)
            },
            p99_ns: if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.99)
            },
            max_ns: if h.is_empty() { 0 } else { h.max() },
        }
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
}
