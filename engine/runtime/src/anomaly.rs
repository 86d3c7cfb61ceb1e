//! Anomaly detection: the live engine's behaviour against the ranges a backtest of the same
//! manifest showed on recent data (manifest `engine.anomaly`, written by `appliance baseline`;
//! docs/operations.md).
//!
//! The housekeeping thread hands each heartbeat's running totals to [`Detector::observe`].
//! Every figure is measured over the last `window_s` seconds: the difference between the
//! newest totals and the latest ones at least a window old (so the span is `window_s` to one
//! heartbeat more; rates divide by the real span). A figure outside its range raises an
//! anomaly; once back inside for a whole window, it clears (no raise and clear every second
//! for a figure on a bound). Each change is one bus event (`Anomaly`); every figure measured
//! is in each heartbeat with its state and on `/metrics` (`rt_anomaly` 0 or 1), and
//! `PyRtAnomaly` pages. The state lives in memory: a restart begins measuring afresh.
//!
//! A figure is measured only when it means something: a ratio needs enough of its
//! denominator in the window ([`MIN_ORDERS`] orders sent, [`MIN_MESSAGES`] market-data
//! messages, [`MIN_MARKOUTS`] fills marked out, [`MIN_LATENCY_SAMPLES`] orders timed), and the
//! order figures need trading on at both ends of the window (risk ACTIVE, not paused: a halt
//! or a pause has its own event and alert). A figure that cannot be measured keeps its state.
//!
//! `markout_bps` is the mean markout of the fills marked out in the window (`rt_core::markout`:
//! the mid 1 s after each fill against its price, positive in the fill's favour): adverse
//! selection shows as a low. `tick_to_order_p99_us` is the p99 of the window's tick-to-order
//! times, from the heartbeat's cumulative histogram kept in quarter-octave buckets
//! ([`latency_counts`]): the bucket's upper bound, so it reads at most 19% high.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use rt_core::markout::MarkoutTotals;
use rt_manifest::model::{Anomaly, ANOMALY_MD_RATE};

use crate::bus::pb;

/// Orders sent in a window below which `fill_ratio` is not measured.
pub const MIN_ORDERS: u64 = 10;
/// Market-data messages in a window below which `orders_per_1k_messages` is not measured.
pub const MIN_MESSAGES: u64 = 1_000;
/// Fills marked out in a window below which `markout_bps` is not measured.
pub const MIN_MARKOUTS: u64 = 5;
/// Tick-to-order times in a window below which `tick_to_order_p99_us` is not measured (a p99
/// of fewer says little more than their maximum).
pub const MIN_LATENCY_SAMPLES: u64 = 10;
/// Quarter-octave latency buckets: bucket `k`'s upper bound is `2^(k/4)` us, 1 us .. 2^26 us
/// (67 s, above the histogram's 60 s).
const LATENCY_BUCKETS: usize = 105;

/// Bucket `k`'s upper bound in ns.
fn latency_bound_ns(k: usize) -> u64 {
    (1_000.0 * 2f64.powf(k as f64 / 4.0)).round() as u64
}

/// The values of `h` (ns) counted at or below each bucket's upper bound (cumulative, so a
/// window's counts are the difference of two heartbeats').
pub fn latency_counts(h: &Histogram<u64>) -> Vec<u64> {
    let mut per = vec![0u64; LATENCY_BUCKETS];
    for v in h.iter_recorded() {
        let ns = h.highest_equivalent(v.value_iterated_to());
        let k = (0..LATENCY_BUCKETS)
            .find(|k| ns <= latency_bound_ns(*k))
            .unwrap_or(LATENCY_BUCKETS - 1);
        per[k] += v.count_at_value();
    }
    let mut total = 0;
    for n in per.iter_mut() {
        total += *n;
        *n = total;
    }
    per
}

/// The running totals of one heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub t_ns: i64,
    pub orders_sent: u64,
    pub fills: u64,
    pub md_messages: u64,
    /// Market-data messages per exchange, by exchange index.
    pub per_exchange: Vec<u64>,
    /// Equity in the quote asset.
    pub equity: f64,
    /// Risk ACTIVE and not paused.
    pub trading: bool,
    /// The fills marked out so far.
    pub markouts: MarkoutTotals,
    /// Tick-to-order times so far, per latency bucket ([`latency_counts`]; empty: none).
    pub tick_to_order: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    FillRatio,
    OrdersPer1k,
    PnlPerHour,
    MarkoutBps,
    TickToOrderP99Us,
    MdRate(usize),
}

#[derive(Debug, Clone)]
struct Watched {
    name: String,
    kind: Kind,
    low: f64,
    high: f64,
    /// The value last measured (None: not measured yet).
    last: Option<f64>,
    raised: bool,
    /// While raised: since when the figure has been back in range (it clears after a whole
    /// window there, so a figure sitting on a bound does not raise and clear every second).
    in_range_since: Option<i64>,
}

/// What every event of a detector carries.
#[derive(Debug)]
struct Meta {
    window_s: u32,
    derivation: String,
    baseline_sha256: String,
}

/// The detector of one engine.
#[derive(Debug)]
pub struct Detector {
    window_ns: i64,
    meta: Meta,
    watched: Vec<Watched>,
    history: VecDeque<Totals>,
}

/// Why the manifest's `engine.anomaly` names a figure this engine cannot measure (the
/// manifest's validator refuses that before an engine starts).
#[derive(Debug, thiserror::Error)]
#[error("engine.anomaly.figures.{0}: not a figure this engine measures")]
pub struct UnknownFigure(String);

impl Detector {
    /// The detector of `anomaly`, for an engine with these exchanges (by index).
    pub fn new(anomaly: &Anomaly, exchanges: &[String]) -> Result<Detector, UnknownFigure> {
        let watched = anomaly
            .figures
            .iter()
            .map(|(name, range)| {
                let kind = match name.as_str() {
                    "fill_ratio" => Kind::FillRatio,
                    "orders_per_1k_messages" => Kind::OrdersPer1k,
                    "pnl_per_hour" => Kind::PnlPerHour,
                    "markout_bps" => Kind::MarkoutBps,
                    "tick_to_order_p99_us" => Kind::TickToOrderP99Us,
                    other => other
                        .strip_prefix(ANOMALY_MD_RATE)
                        .and_then(|x| exchanges.iter().position(|e| e == x))
                        .map(Kind::MdRate)
                        .ok_or_else(|| UnknownFigure(name.clone()))?,
                };
                Ok(Watched {
                    name: name.clone(),
                    kind,
                    low: float(range.low),
                    high: float(range.high),
                    last: None,
                    raised: false,
                    in_range_since: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Detector {
            window_ns: i64::from(anomaly.window_s) * 1_000_000_000,
            meta: Meta {
                window_s: anomaly.window_s,
                derivation: anomaly.derivation.clone(),
                baseline_sha256: anomaly.baseline_sha256.clone(),
            },
            watched,
            history: VecDeque::new(),
        })
    }

    /// Takes in a heartbeat's totals; returns the anomalies raised or cleared by it.
    pub fn observe(&mut self, now: Totals) -> Vec<pb::Anomaly> {
        let since = now.t_ns - self.window_ns;
        // Keep the latest totals at or before the window's start, and everything after.
        while self.history.len() >= 2 && self.history[1].t_ns <= since {
            self.history.pop_front();
        }
        let covered = self.history.front().is_some_and(|b| b.t_ns <= since);
        let mut changes = Vec::new();
        if covered {
            let base = &self.history[0];
            let values: Vec<Option<f64>> = self
                .watched
                .iter()
                .map(|w| measure(w.kind, base, &now))
                .collect();
            for (w, value) in self.watched.iter_mut().zip(values) {
                let Some(v) = value else { continue };
                w.last = Some(v);
                let outside = v < w.low || v > w.high;
                if outside {
                    w.in_range_since = None;
                    if !w.raised {
                        w.raised = true;
                        changes.push(event(w, v, true, &self.meta));
                    }
                } else if w.raised {
                    let since = *w.in_range_since.get_or_insert(now.t_ns);
                    if now.t_ns - since >= self.window_ns {
                        w.raised = false;
                        w.in_range_since = None;
                        changes.push(event(w, v, false, &self.meta));
                    }
                }
            }
        }
        self.history.push_back(now);
        changes
    }

    /// Every figure measured so far: its last value and whether it is raised now (the
    /// heartbeat's `anomalies`; /metrics serves `rt_anomaly` 0 or 1 for each).
    pub fn states(&self) -> Vec<pb::Anomaly> {
        self.watched
            .iter()
            .filter_map(|w| w.last.map(|v| event(w, v, w.raised, &self.meta)))
            .collect()
    }
}

fn event(w: &Watched, value: f64, active: bool, d: &Meta) -> pb::Anomaly {
    pb::Anomaly {
        figure: w.name.clone(),
        value,
        low: w.low,
        high: w.high,
        window_s: d.window_s,
        active,
        derivation: d.derivation.clone(),
        baseline_sha256: d.baseline_sha256.clone(),
    }
}

/// A manifest decimal as a float (the figures are statistics, compared as floats).
fn float(x: rt_manifest::Fixed) -> f64 {
    x.raw() as f64 / rt_manifest::Fixed::SCALE as f64
}

/// A figure over the window from `base` to `now`, if it can be measured.
fn measure(kind: Kind, base: &Totals, now: &Totals) -> Option<f64> {
    let seconds = (now.t_ns - base.t_ns) as f64 / 1e9;
    if seconds <= 0.0 {
        return None;
    }
    let trading = base.trading && now.trading;
    let orders = now.orders_sent.saturating_sub(base.orders_sent);
    match kind {
        Kind::FillRatio => (trading && orders >= MIN_ORDERS)
            .then(|| now.fills.saturating_sub(base.fills) as f64 / orders as f64),
        Kind::OrdersPer1k => {
            let messages = now.md_messages.saturating_sub(base.md_messages);
            (trading && messages >= MIN_MESSAGES).then(|| orders as f64 * 1000.0 / messages as f64)
        }
        Kind::PnlPerHour => Some((now.equity - base.equity) * 3600.0 / seconds),
        Kind::MarkoutBps => {
            let n = now.markouts.count.saturating_sub(base.markouts.count);
            (n >= MIN_MARKOUTS)
                .then(|| now.markouts.mean_bps_since(&base.markouts))
                .flatten()
        }
        Kind::TickToOrderP99Us => p99_us(&base.tick_to_order, &now.tick_to_order),
        Kind::MdRate(x) => {
            let at = |t: &Totals| t.per_exchange.get(x).copied().unwrap_or(0);
            Some(at(now).saturating_sub(at(base)) as f64 / seconds)
        }
    }
}

/// The p99 (us) of the latencies counted between two cumulative bucket counts: the upper bound
/// of the bucket holding it (None: fewer than [`MIN_LATENCY_SAMPLES`]).
fn p99_us(base: &[u64], now: &[u64]) -> Option<f64> {
    let at = |c: &[u64], k: usize| c.get(k).copied().unwrap_or(0);
    let delta = |k: usize| at(now, k).saturating_sub(at(base, k));
    let n = delta(LATENCY_BUCKETS - 1);
    if n < MIN_LATENCY_SAMPLES {
        return None;
    }
    // The smallest bucket holding at least 99% of the window's values.
    let need = (n * 99).div_ceil(100);
    let k = (0..LATENCY_BUCKETS)
        .find(|k| delta(*k) >= need)
        .unwrap_or(LATENCY_BUCKETS - 1);
    Some(latency_bound_ns(k) as f64 / 1_000.0)
}

/// The human line of an anomaly change, for the engine's log.
pub fn describe(a: &pb::Anomaly) -> String {
    format!(
        "anomaly {}: {} {:.4} over the last {} s, expected {:.4}..={:.4} ({})",
        if a.active { "raised" } else { "cleared" },
        a.figure,
        a.value,
        a.window_s,
        a.low,
        a.high,
        a.derivation
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rt_manifest::model::Range;
    use rt_manifest::Fixed;
    use std::collections::BTreeMap;

    fn range(low: &str, high: &str) -> Range {
        Range {
            low: Fixed::parse(low).expect("a decimal"),
            high: Fixed::parse(high).expect("a decimal"),
        }
    }

    fn detector(figures: &[(&str, Range)]) -> Detector {
        let anomaly = Anomaly {
            baseline: "baselines/e.json".into(),
            baseline_sha256: "ab".repeat(32),
            window_s: 10,
            derivation: "a backtest".into(),
            figures: figures
                .iter()
                .map(|(n, r)| ((*n).to_owned(), *r))
                .collect::<BTreeMap<_, _>>(),
        };
        Detector::new(&anomaly, &["sim".to_owned(), "other".to_owned()]).expect("known figures")
    }

    fn at(s: i64, orders: u64, fills: u64, md: u64, equity: f64) -> Totals {
        Totals {
            t_ns: s * 1_000_000_000,
            orders_sent: orders,
            fills,
            md_messages: md,
            per_exchange: vec![md, 0],
            equity,
            trading: true,
            markouts: MarkoutTotals::default(),
            tick_to_order: Vec::new(),
        }
    }

    #[test]
    fn nothing_is_measured_before_a_whole_window() {
        let mut d = detector(&[("md_messages_per_s.sim", range("100", "200"))]);
        for s in 0..10 {
            assert!(d.observe(at(s, 0, 0, 0, 0.0)).is_empty(), "second {s}");
        }
        // At 10 s the window [0, 10] is covered: 0 messages/s is below 100.
        let raised = d.observe(at(10, 0, 0, 0, 0.0));
        assert_eq!(raised.len(), 1);
        assert!(raised[0].active && raised[0].value == 0.0, "{raised:?}");
        let states = d.states();
        assert_eq!(states.len(), 1);
        assert!(states[0].active);
    }

    #[test]
    fn a_figure_is_raised_once_and_cleared_when_back_in_range() {
        let mut d = detector(&[("md_messages_per_s.sim", range("100", "200"))]);
        let mut md = 0;
        let mut changes = Vec::new();
        // 150/s for 20 s, then a stall of 15 s, then 150/s again.
        for s in 0..=60 {
            if !(20..35).contains(&s) {
                md += 150;
            }
            changes.extend(d.observe(at(s, 0, 0, md, 0.0)).into_iter().map(|a| (s, a)));
        }
        let seen: Vec<(i64, bool)> = changes.iter().map(|(s, a)| (*s, a.active)).collect();
        // Raised when the window's rate falls below 100/s (at 23 s the window (13, 23] holds
        // 6 s of 150/s: 90/s); back at 100/s or more at 41 s ((31, 41] holds 7 s: 105/s) and
        // cleared after a whole window in range, at 51 s. Nothing in between: a raised
        // figure is raised once.
        assert_eq!(seen, vec![(23, true), (51, false)], "{changes:?}");
        assert!(d.states().iter().all(|a| !a.active));
        let raised = &changes[0].1;
        assert!((changes[1].1.value - 150.0).abs() < 1e-9, "{changes:?}");
        assert_eq!(raised.figure, "md_messages_per_s.sim");
        assert!((raised.value - 90.0).abs() < 1e-9, "{raised:?}");
        assert_eq!(
            (raised.low, raised.high, raised.window_s),
            (100.0, 200.0, 10)
        );
        assert_eq!(raised.derivation, "a backtest");
    }

    #[test]
    fn ratios_need_enough_of_their_denominator_and_trading_on() {
        let mut d = detector(&[
            ("fill_ratio", range("0.2", "0.8")),
            ("orders_per_1k_messages", range("5", "50")),
        ]);
        // 5 orders per 10 s with no fills: too few orders to measure a fill ratio; 500
        // messages: too few to measure the order rate.
        for s in 0..=20 {
            let s_u = s as u64;
            assert!(d.observe(at(s, s_u / 2, 0, s_u * 50, 0.0)).is_empty());
        }
        // Now 3 orders a second with no fill: a fill ratio of 0 over 30 orders.
        let mut d = detector(&[("fill_ratio", range("0.2", "0.8"))]);
        let mut raised = Vec::new();
        for s in 0..=10 {
            raised.extend(d.observe(at(s, 3 * s as u64, 0, 0, 0.0)));
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(
            (raised[0].figure.as_str(), raised[0].value),
            ("fill_ratio", 0.0)
        );
        // While risk is not ACTIVE, the order figures are not measured (and keep their state).
        let mut d = detector(&[("fill_ratio", range("0.2", "0.8"))]);
        for s in 0..=20 {
            let mut t = at(s, 3 * s as u64, 0, 0, 0.0);
            t.trading = false;
            assert!(d.observe(t).is_empty());
        }
    }

    #[test]
    fn a_figure_that_dips_back_out_of_range_stays_raised() {
        let mut d = detector(&[("md_messages_per_s.sim", range("100", "200"))]);
        let mut md = 0;
        let mut changes = Vec::new();
        // 90/s, then 105/s for 5 s, 90/s again, then 150/s for good.
        for s in 0..=80 {
            md += match s {
                0..=20 => 150,
                21..=35 => 90,
                36..=40 => 105,
                41..=50 => 90,
                _ => 150,
            };
            changes.extend(
                d.observe(at(s, 0, 0, md, 0.0))
                    .into_iter()
                    .map(|a| (s, a.active)),
            );
        }
        // Raised once; the 5 s back in range were not a whole window: cleared once, at the end.
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].1 && !changes[1].1, "{changes:?}");
        assert!(changes[1].0 > 60, "{changes:?}");
    }

    #[test]
    fn markout_bps_is_the_mean_markout_of_the_window_s_fills() {
        let mut d = detector(&[("markout_bps", range("-2", "5"))]);
        let mut changes = Vec::new();
        // One fill marked out a second: +1 bp for 12 s (in range), then -8 bp a fill.
        for s in 0..=30 {
            let mut t = at(s, 0, 0, 0, 0.0);
            let n = s as u64;
            let adverse = n.saturating_sub(12);
            t.markouts = MarkoutTotals {
                count: n,
                favourable_cbps: 100 * n.min(12),
                adverse_cbps: 800 * adverse,
            };
            changes.extend(d.observe(t).into_iter().map(|a| (s, a)));
        }
        // At 16 s the window (6, 16] holds 6 fills at +1 and 4 at -8: -2.6 bp.
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (s, raised) = &changes[0];
        assert_eq!(
            (*s, raised.figure.as_str(), raised.active),
            (16, "markout_bps", true)
        );
        assert!((raised.value + 2.6).abs() < 1e-9, "{raised:?}");
        // Fewer than MIN_MARKOUTS fills in a window: not measured.
        let mut d = detector(&[("markout_bps", range("-2", "5"))]);
        for s in 0..=30 {
            let mut t = at(s, 0, 0, 0, 0.0);
            t.markouts.count = s as u64 / 4;
            t.markouts.adverse_cbps = 10_000 * s as u64;
            assert!(d.observe(t).is_empty());
        }
        assert!(d.states().is_empty());
    }

    #[test]
    fn tick_to_order_p99_is_taken_over_the_window_from_the_histogram() {
        let mut d = detector(&[("tick_to_order_p99_us", range("0", "500"))]);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        let mut changes = Vec::new();
        for s in 0..=40 {
            // 100 orders a second at 50 us; from 20 s on, 5 of them take 2 ms.
            for i in 0..100 {
                let slow = s >= 20 && i < 5;
                h.record(if slow { 2_000_000 } else { 50_000 })
                    .expect("in range");
            }
            let mut t = at(s, 0, 0, 0, 0.0);
            t.tick_to_order = latency_counts(&h);
            changes.extend(d.observe(t).into_iter().map(|a| (s, a)));
        }
        let states = d.states();
        assert_eq!(states.len(), 1);
        // Before the slow orders the p99 is 50 us's bucket (2^(23/4) = 53.8 us).
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (s, raised) = &changes[0];
        // At 22 s the window (12, 22] holds 15 slow of 1000: above 1% (at 21 s, 10: not).
        assert!(raised.active && *s == 22, "{changes:?}");
        // 2 ms lies in the bucket up to 2^(44/4) us = 2048 us.
        assert!((raised.value - 2048.0).abs() < 1e-9, "{raised:?}");
        let mut quiet = detector(&[("tick_to_order_p99_us", range("0", "500"))]);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for s in 0..=20 {
            if s % 2 == 0 {
                h.record(5_000_000).expect("in range");
            }
            let mut t = at(s, 0, 0, 0, 0.0);
            t.tick_to_order = latency_counts(&h);
            quiet.observe(t);
        }
        let states = quiet.states();
        // 5 samples a window, each far too slow: too few to measure.
        assert!(states.is_empty(), "{states:?}");
        // Before the slow ones it was measured in range, at 53.8 us's bucket.
        let mut d = detector(&[("tick_to_order_p99_us", range("0", "500"))]);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for s in 0..=12 {
            for _ in 0..100 {
                h.record(50_000).expect("in range");
            }
            let mut t = at(s, 0, 0, 0, 0.0);
            t.tick_to_order = latency_counts(&h);
            d.observe(t);
        }
        let v = d.states()[0].value;
        assert!((v - 53.817).abs() < 0.01, "{v}");
    }

    #[test]
    fn pnl_per_hour_is_the_equity_change_scaled_to_an_hour() {
        let mut d = detector(&[("pnl_per_hour", range("-36", "36"))]);
        // Losing 0.2 in 10 s is -72 an hour.
        let mut raised = Vec::new();
        for s in 0..=10 {
            raised.extend(d.observe(at(s, 0, 0, 0, -0.02 * s as f64)));
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert!((raised[0].value + 72.0).abs() < 1e-6, "{raised:?}");
    }

    #[test]
    fn an_unknown_figure_is_refused() {
        let anomaly = Anomaly {
            baseline: "b.json".into(),
            baseline_sha256: "ab".repeat(32),
            window_s: 10,
            derivation: "d".into(),
            figures: [("md_messages_per_s.nowhere".to_owned(), range("1", "2"))].into(),
        };
        let err = Detector::new(&anomaly, &["sim".to_owned()]).expect_err("an unknown figure");
        assert!(
            err.to_string().contains("md_messages_per_s.nowhere"),
            "{err}"
        );
    }
}
