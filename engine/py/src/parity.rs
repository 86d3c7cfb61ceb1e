//! `parity_replay`: a live run replayed from its flight recording, decision by decision.
//!
//! The recording holds the raw market data each feed received (captures, `data/` format) and the
//! strategy thread's decision log (`rt_core::flightlog`): every input it consumed, in order (a
//! market event by its frame's receive time, an execution report as the gateway delivered it,
//! a timer turn, a command), and every order and cancel it sent with the book and risk state it
//! decided on. The replay builds the core exactly as the engine does (the manifest's strategies
//! and risk, every exchange an external venue) and feeds it the same inputs in the same order:
//! the market events decoded again from the captures, the *recorded* acknowledgements and fills
//! at their recorded times instead of the simulated venue's model. After each input it takes the
//! requests the core made (when the live driver did) and compares them with the recorded ones.
//!
//! A divergence is a recorded decision the replay did not make, or one it made that live did
//! not, or the same slot with a different order (side, kind, price, size, order id). Its first
//! cause is named from what the replay can see at that point: a different book (the best bid or
//! ask the strategy decided on differs), a different risk state or position, the same book and
//! risk state under a different configuration (the manifests' differing keys, given by the
//! caller), or a timing difference: the other side took the same decision at another input, or
//! nothing else differs (a decision that depends on the clock, e.g. a timer or a staleness
//! guard). Within one input both sides' decisions are aligned in order first.

use std::collections::VecDeque;
use std::path::PathBuf;

use rt_core::flightlog::{self, Command, Context, Entry};
use rt_core::{Nanos, Trader, VenueRequest};
use rt_manifest::Manifest;
use rt_venues::recording::{CaptureReader, FrameReader};
use rt_venues::Decoder;

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    #[error("{path}: {reason}")]
    Recording { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{0}")]
    Setup(#[from] rt_core::TraderError),
    #[error("{0}")]
    Capture(#[from] rt_venues::Error),
}

/// What differed first at a divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Book,
    Risk,
    Config,
    Timing,
}

impl Cause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Book => "book",
            Cause::Risk => "risk",
            Cause::Config => "config",
            Cause::Timing => "timing",
        }
    }
}

/// One decision that differs.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The position of the input (0-based over the log's inputs) after which it was decided.
    pub input: u64,
    pub input_ts: Nanos,
    pub input_text: String,
    /// Its position among that input's decisions.
    pub slot: usize,
    pub live: Option<Entry>,
    pub replay: Option<Entry>,
    pub cause: Cause,
    pub detail: String,
}

/// The replay's figures.
#[derive(Debug, Default)]
pub struct Outcome {
    pub inputs: u64,
    pub md_events: u64,
    /// Events in the captures the live strategy never consumed (lost in a full ring, or after
    /// the engine stopped).
    pub md_skipped: u64,
    pub execs: u64,
    pub fills: u64,
    pub timers: u64,
    pub commands: u64,
    pub gaps: u64,
    pub live_decisions: u64,
    pub replay_decisions: u64,
    pub matched: u64,
    pub divergence_count: u64,
    /// Decisions reproduced before the first divergence.
    pub matched_before_first: Option<u64>,
    /// The first `keep` divergences.
    pub divergences: Vec<Divergence>,
    pub first_ts: Option<Nanos>,
    pub last_ts: Option<Nanos>,
    /// The core's headline numbers after the replay (with the recorded fills: live's).
    pub summary: Option<rt_core::BacktestSummary>,
    /// Instrument symbols, by instrument id.
    pub symbols: Vec<String>,
}

/// Replays `log_files` (the decision log, in order) with each exchange's captures (`md_files`,
/// in the manifest's exchange order) through `manifest`'s core. `config_diff` names the keys in
/// which the manifest differs from the one the engine ran (empty: the same). Keeps the first
/// `keep` divergences in detail; counts all.
pub fn replay(
    manifest: &Manifest,
    models: &mut rt_core::ModelLoader<'_>,
    log_files: &[PathBuf],
    md_files: &[Vec<PathBuf>],
    config_diff: &[String],
    keep: usize,
) -> Result<Outcome, ParityError> {
    let first = log_files.first().ok_or_else(|| ParityError::Recording {
        path: PathBuf::new(),
        reason: "no decision log files".into(),
    })?;
    if md_files.len() != manifest.exchanges.len() {
        return Err(ParityError::Recording {
            path: first.clone(),
            reason: format!(
                "captures of {} exchange(s) for a manifest of {}",
                md_files.len(),
                manifest.exchanges.len()
            ),
        });
    }
    let mut config = rt_core::TraderConfig::from_manifest(manifest);
    config.max_records = 0;
    let mut bt = Trader::with_models(config, models)?;
    for x in 0..manifest.exchanges.len() {
        bt.set_external(x)?;
    }
    let mut feeds = Vec::new();
    for (files, ex) in md_files.iter().zip(manifest.exchanges.values()) {
        let symbols: Vec<String> = ex.instruments.keys().cloned().collect();
        feeds.push(if files.is_empty() {
            None
        } else {
            Some(CaptureReader::open_many(files)?.with_decoder(Decoder::with_symbols(&symbols)))
        });
    }
    let mut r = Replayer {
        bt,
        feeds,
        out: Outcome::default(),
        recorded: Vec::new(),
        produced: Vec::new(),
        current: None,
        config_diff,
        keep,
        requests: Vec::new(),
        started: false,
        unmatched_live: VecDeque::new(),
        unmatched_replay: VecDeque::new(),
    };
    for path in log_files {
        let mut reader = FrameReader::open(path)?;
        while let Some(frame) = reader.next_frame() {
            let frame = frame?;
            let line = frame.line;
            let bad = |reason: String| ParityError::Line {
                path: path.clone(),
                line,
                reason,
            };
            let text = std::str::from_utf8(frame.bytes).map_err(|e| bad(e.to_string()))?;
            let entry = Entry::parse(text).map_err(|e| bad(format!("{e}: {text:?}")))?;
            r.step(frame.local_ns, entry).map_err(bad)?;
        }
    }
    r.settle();
    let mut out = r.out;
    out.symbols =
        r.bt.instruments()
            .iter()
            .map(|i| i.symbol.clone())
            .collect();
    out.summary = Some(r.bt.finish().summary);
    Ok(out)
}

/// The input being compared: (position, time, description).
type Current = (u64, Nanos, String);

struct Replayer<'a> {
    bt: Trader,
    feeds: Vec<Option<CaptureReader>>,
    out: Outcome,
    /// The decisions live made after the current input, and those the replay made.
    recorded: Vec<Entry>,
    produced: Vec<Entry>,
    current: Option<Current>,
    config_diff: &'a [String],
    keep: usize,
    requests: Vec<VenueRequest>,
    started: bool,
    /// The last unmatched decisions of each side, with their input and time: a decision one
    /// side made at another input than the other is a timing difference.
    unmatched_live: VecDeque<(u64, Nanos, Entry)>,
    unmatched_replay: VecDeque<(u64, Nanos, Entry)>,
}

/// How many unmatched decisions of each side are remembered for the timing check.
const TIMING_WINDOW: usize = 64;

impl Replayer<'_> {
    fn step(&mut self, ts: Nanos, entry: Entry) -> Result<(), String> {
        if entry.is_decision() {
            if self.current.is_none() {
                return Err("a decision before any input".into());
            }
            self.recorded.push(entry);
            self.out.live_decisions += 1;
            return Ok(());
        }
        self.settle();
        if !self.started {
            let Entry::Start {
                next_order_id,
                restored_fills,
                paused,
                risk,
            } = entry
            else {
                return Err("the decision log does not begin with its start line: the \
                            oldest files were deleted over the budget (parity needs the \
                            whole run)"
                    .into());
            };
            if restored_fills > 0 || paused || risk != rt_core::RiskState::Active {
                return Err(format!(
                    "the run began from a restored state ({restored_fills} fill(s) from the \
                     journal, paused {paused}, risk {}): parity replays runs that start flat \
                     and active (move the journal aside before recording)",
                    risk.as_str()
                ));
            }
            self.bt.set_next_order_id(next_order_id);
            self.started = true;
            return Ok(());
        }
        let index = self.out.inputs;
        self.out.inputs += 1;
        self.out.first_ts = Some(self.out.first_ts.map_or(ts, |t| t.min(ts)));
        self.out.last_ts = Some(self.out.last_ts.map_or(ts, |t| t.max(ts)));
        let drain = match entry {
            Entry::Md { exchange } => {
                self.market_event(exchange, ts)?;
                self.out.md_events += 1;
                true
            }
            Entry::Gap { exchange, .. } | Entry::Down { exchange } => {
                self.out.gaps += 1;
                self.bt.feed_lost(exchange as usize);
                false
            }
            Entry::Exec {
                exec,
                base_commission,
                ..
            } => {
                self.out.execs += 1;
                self.out.fills += u64::from(matches!(exec.kind, rt_core::ExecKind::Fill { .. }));
                self.bt.on_exec_charged(ts, exec, base_commission);
                true
            }
            Entry::Timer => {
                self.out.timers += 1;
                self.bt.advance(ts);
                true
            }
            Entry::Ban => {
                self.bt.halt(rt_core::RiskCause::VenueBan);
                false
            }
            Entry::Funding { instrument, amount } => {
                self.bt
                    .book_funding(instrument, amount)
                    .map_err(|e| format!("a funding payment: {e}"))?;
                false
            }
            Entry::VenueMark { instrument, price } => {
                self.bt
                    .venue_mark(instrument, price)
                    .map_err(|e| format!("a venue mark: {e}"))?;
                false
            }
            Entry::Delivery { instrument, price } => {
                self.bt
                    .book_delivery(instrument, price)
                    .map_err(|e| format!("a delivery: {e}"))?;
                false
            }
            Entry::Cmd(cmd) => {
                self.out.commands += 1;
                self.command(cmd)?;
                true
            }
            Entry::Start { .. } => return Err("a second start line".into()),
            Entry::New { .. }
            | Entry::Cancel { .. }
            | Entry::CancelAll { .. }
            | Entry::Amend { .. } => {
                unreachable!("decisions are handled above")
            }
        };
        if drain {
            self.drain();
        }
        self.current = Some((index, ts, describe_input(&entry)));
        Ok(())
    }

    /// The next event of `exchange`'s captures received at `ts`; earlier ones were never
    /// consumed live (counted).
    fn market_event(&mut self, exchange: u32, ts: Nanos) -> Result<(), String> {
        let x = exchange as usize;
        let reader = self
            .feeds
            .get_mut(x)
            .and_then(Option::as_mut)
            .ok_or_else(|| format!("a market event of exchange {x}, which has no capture"))?;
        loop {
            match reader.next_event() {
                None => {
                    return Err(format!(
                        "the strategy consumed a market event of exchange {x} received at \
                         {ts}, which its captures do not hold (the recording is incomplete)"
                    ))
                }
                Some(Err(_)) => self.out.md_skipped += 1,
                Some(Ok(ev)) => {
                    let at = ev.header().local_ns;
                    if at < ts {
                        self.out.md_skipped += 1;
                        continue;
                    }
                    if at > ts {
                        return Err(format!(
                            "the strategy consumed a market event of exchange {x} received at \
                             {ts}; its captures go from {at} on without it (the recording is \
                             incomplete)"
                        ));
                    }
                    self.bt.on_event(x, &ev);
                    let _ = self.bt.take_snapshot_request(x);
                    return Ok(());
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Result<(), String> {
        match cmd {
            Command::Pause => self.bt.set_paused(true),
            Command::Resume => {
                self.bt.set_paused(false);
                if self.bt.risk_state() == rt_core::RiskState::Halted {
                    self.bt.resume();
                }
            }
            Command::Flatten => {
                self.bt.flatten();
            }
            Command::Kill => {
                self.bt.kill();
                self.bt.set_paused(true);
            }
            Command::Stop => self.bt.set_paused(true),
            Command::Halt(cause) => self.bt.halt(cause),
            Command::Tighten(instrument, field, units) => {
                let symbol = match instrument {
                    None => None,
                    Some(i) => Some(
                        self.bt
                            .instruments()
                            .get(i as usize)
                            .map(|i| i.symbol.clone())
                            .ok_or_else(|| format!("a tightening of instrument {i}, unknown"))?,
                    ),
                };
                // Refused here when the replay's limit is already tighter: as live, nothing
                // changes then.
                let _ = self.bt.tighten_risk(symbol.as_deref(), field.0, units);
            }
            Command::TightenAsset(asset, units) => {
                let _ = self.bt.tighten_asset_at(asset as usize, units);
            }
        }
        if matches!(
            cmd,
            Command::Pause | Command::Flatten | Command::Kill | Command::Stop
        ) {
            for i in self.bt.instruments() {
                if let Some(x) = self.bt.exchange_id(&i.exchange) {
                    self.produced.push(Entry::CancelAll {
                        exchange: x as u32,
                        instrument: i.id,
                    });
                }
            }
        }
        Ok(())
    }

    /// The requests the core made, as the live driver would have sent them.
    fn drain(&mut self) {
        if !self.bt.has_requests() {
            return;
        }
        self.bt.drain_requests(&mut self.requests);
        for r in std::mem::take(&mut self.requests) {
            self.produced.push(flightlog::decision(&self.bt, &r));
        }
    }

    /// Compares the current input's recorded and replayed decisions.
    fn settle(&mut self) {
        let Some((index, ts, text)) = self.current.take() else {
            return;
        };
        self.out.replay_decisions += self.produced.len() as u64;
        // Both sides' decisions aligned in order (a decision one side lacks does not shift the
        // rest); what is left over on either side diverges, paired in order.
        let mut used = vec![false; self.produced.len()];
        let mut from = 0;
        let mut live_left = Vec::new();
        for (slot, l) in self.recorded.iter().enumerate() {
            match (from..self.produced.len()).find(|&k| same_decision(l, &self.produced[k])) {
                Some(k) => {
                    used[k] = true;
                    from = k + 1;
                    self.out.matched += 1;
                }
                None => live_left.push((slot, *l)),
            }
        }
        let replay_left: Vec<(usize, Entry)> = self
            .produced
            .iter()
            .enumerate()
            .filter(|(k, _)| !used[*k])
            .map(|(k, e)| (k, *e))
            .collect();
        for n in 0..live_left.len().max(replay_left.len()) {
            let live = live_left.get(n).map(|x| x.1);
            let replay = replay_left.get(n).map(|x| x.1);
            let slot = live_left.get(n).or(replay_left.get(n)).map_or(0, |x| x.0);
            self.out.divergence_count += 1;
            self.out
                .matched_before_first
                .get_or_insert(self.out.matched);
            let timing = self.timing(live, replay, index, ts);
            if self.out.divergences.len() < self.keep {
                let (cause, detail) = timing.unwrap_or_else(|| self.cause(live, replay));
                self.out.divergences.push(Divergence {
                    input: index,
                    input_ts: ts,
                    input_text: text.clone(),
                    slot,
                    live,
                    replay,
                    cause,
                    detail,
                });
            }
        }
        self.recorded.clear();
        self.produced.clear();
    }

    /// A timing difference: a decision the other side took at another input (one of the last
    /// [`TIMING_WINDOW`] it took unmatched). Pairs are taken from the lists; the rest of this
    /// input's decisions join them.
    fn timing(
        &mut self,
        live: Option<Entry>,
        replay: Option<Entry>,
        index: u64,
        ts: Nanos,
    ) -> Option<(Cause, String)> {
        let take = |list: &mut VecDeque<(u64, Nanos, Entry)>, e: Option<Entry>| {
            let e = e?;
            let at = list.iter().position(|(_, _, x)| same_decision(x, &e))?;
            list.remove(at).map(|(input, when, _)| (input, when))
        };
        let live_pair = take(&mut self.unmatched_replay, live);
        let replay_pair = take(&mut self.unmatched_live, replay);
        if live_pair.is_none() {
            remember(&mut self.unmatched_live, live.map(|e| (index, ts, e)));
        }
        if replay_pair.is_none() {
            remember(&mut self.unmatched_replay, replay.map(|e| (index, ts, e)));
        }
        let ((input, when), other, this) = match (live_pair, replay_pair) {
            (Some(p), _) => (p, "the replay", "live"),
            (None, Some(p)) => (p, "live", "the replay"),
            (None, None) => return None,
        };
        Some((
            Cause::Timing,
            format!(
                "a timing difference: {other} took the same decision at input #{input}, {} ms \
                 {}; {this} at input #{index}",
                (ts - when).abs() / 1_000_000,
                if when <= ts { "earlier" } else { "later" }
            ),
        ))
    }

    /// The first thing that differs at a divergence (see the module documentation).
    fn cause(&self, live: Option<Entry>, replay: Option<Entry>) -> (Cause, String) {
        let seen = |e: Option<Entry>| match e {
            Some(
                Entry::New {
                    instrument, ctx, ..
                }
                | Entry::Cancel {
                    instrument, ctx, ..
                }
                | Entry::Amend {
                    instrument, ctx, ..
                },
            ) => Some((instrument, ctx)),
            _ => None,
        };
        // What live decided on, against what the replay sees now on that instrument.
        let compared = seen(live)
            .map(|(i, live_ctx)| (live_ctx, flightlog::context(&self.bt, i)))
            .or_else(|| seen(replay).map(|(_, c)| (c, c)));
        if let Some((l, r)) = compared {
            if (l.bid, l.bid_qty, l.ask, l.ask_qty) != (r.bid, r.bid_qty, r.ask, r.ask_qty) {
                return (
                    Cause::Book,
                    format!("a different book: live {}, replay {}", top(&l), top(&r)),
                );
            }
            if l.risk != r.risk || l.position != r.position {
                return (
                    Cause::Risk,
                    format!(
                        "a different risk state: live {} position {}, replay {} position {}",
                        risk_str(&l),
                        dec(l.position.0),
                        risk_str(&r),
                        dec(r.position.0)
                    ),
                );
            }
        }
        if !self.config_diff.is_empty() {
            return (
                Cause::Config,
                format!(
                    "the same book and risk state, a different configuration: {}",
                    self.config_diff.join(", ")
                ),
            );
        }
        (
            Cause::Timing,
            "the same book, risk state and configuration: a decision that depends on the \
             clock (a timer, a staleness guard) was taken at a different input"
                .into(),
        )
    }
}

/// Keeps the last [`TIMING_WINDOW`] unmatched decisions.
fn remember(list: &mut VecDeque<(u64, Nanos, Entry)>, item: Option<(u64, Nanos, Entry)>) {
    if let Some(item) = item {
        if list.len() == TIMING_WINDOW {
            list.pop_front();
        }
        list.push_back(item);
    }
}

/// The same order or cancel (the context aside).
fn same_decision(a: &Entry, b: &Entry) -> bool {
    match (a, b) {
        (
            Entry::New {
                exchange: x1,
                instrument: i1,
                order_id: o1,
                side: s1,
                kind: k1,
                price: p1,
                qty: q1,
                ..
            },
            Entry::New {
                exchange: x2,
                instrument: i2,
                order_id: o2,
                side: s2,
                kind: k2,
                price: p2,
                qty: q2,
                ..
            },
        ) => (x1, i1, o1, s1, k1, p1, q1) == (x2, i2, o2, s2, k2, p2, q2),
        (
            Entry::Cancel {
                exchange: x1,
                instrument: i1,
                order_id: o1,
                ..
            },
            Entry::Cancel {
                exchange: x2,
                instrument: i2,
                order_id: o2,
                ..
            },
        ) => (x1, i1, o1) == (x2, i2, o2),
        (
            Entry::Amend {
                exchange: x1,
                instrument: i1,
                order_id: o1,
                price: p1,
                qty: q1,
                ..
            },
            Entry::Amend {
                exchange: x2,
                instrument: i2,
                order_id: o2,
                price: p2,
                qty: q2,
                ..
            },
        ) => (x1, i1, o1, p1, q1) == (x2, i2, o2, p2, q2),
        _ => a == b,
    }
}

fn dec(units: i64) -> String {
    rt_core::Price(units).to_string()
}

fn risk_str(c: &Context) -> &'static str {
    c.risk.map_or("unknown", rt_core::RiskState::as_str)
}

fn top(c: &Context) -> String {
    format!(
        "bid {} x {} / ask {} x {}",
        dec(c.bid.0),
        dec(c.bid_qty.0),
        dec(c.ask.0),
        dec(c.ask_qty.0)
    )
}

/// A decision in words: `new buy limit 0.001 @ 60000.1 (order 12)`.
pub fn describe(e: &Entry) -> String {
    match e {
        Entry::New {
            order_id,
            side,
            kind,
            price,
            qty,
            instrument,
            ..
        } => format!(
            "new {} {} {} @ {} (order {order_id}, instrument {instrument})",
            flightlog::side_str(*side),
            flightlog::kind_str(*kind),
            dec(qty.0),
            dec(price.0)
        ),
        Entry::Cancel {
            order_id,
            instrument,
            ..
        } => format!("cancel order {order_id} (instrument {instrument})"),
        Entry::CancelAll { instrument, .. } => {
            format!("cancel everything (instrument {instrument})")
        }
        Entry::Amend {
            order_id,
            instrument,
            price,
            qty,
            ..
        } => format!(
            "amend order {order_id} to {} @ {} (instrument {instrument})",
            dec(qty.0),
            dec(price.0)
        ),
        other => describe_input(other),
    }
}

/// The decision's context in words, if it has one.
pub fn describe_context(e: &Entry) -> Option<String> {
    match e {
        Entry::New { ctx, .. } | Entry::Cancel { ctx, .. } | Entry::Amend { ctx, .. } => {
            Some(format!(
                "{}, position {}, risk {}",
                top(ctx),
                dec(ctx.position.0),
                risk_str(ctx)
            ))
        }
        _ => None,
    }
}

fn describe_input(e: &Entry) -> String {
    match e {
        Entry::Md { exchange } => format!("market event (exchange {exchange})"),
        Entry::Exec { exec, .. } => {
            let kind = match exec.kind {
                rt_core::ExecKind::Accepted => "accepted".to_owned(),
                rt_core::ExecKind::Rejected(r) => format!("rejected ({})", r.as_str()),
                rt_core::ExecKind::Fill { price, qty, .. } => {
                    format!("fill {} @ {}", dec(qty.0), dec(price.0))
                }
                rt_core::ExecKind::Cancelled => "cancelled".to_owned(),
                rt_core::ExecKind::Expired => "expired".to_owned(),
                rt_core::ExecKind::CancelRejected => "cancel rejected".to_owned(),
                rt_core::ExecKind::Amended { price, qty } => {
                    format!("amended to {} @ {}", dec(qty.0), dec(price.0))
                }
                rt_core::ExecKind::AmendRejected(r) => {
                    format!("amendment refused ({})", r.as_str())
                }
            };
            format!("execution report: order {} {kind}", exec.order_id)
        }
        Entry::Timer => "timer".to_owned(),
        Entry::Ban => "venue ban".to_owned(),
        Entry::Funding { instrument, amount } => {
            format!("funding payment (instrument {instrument}, {amount} units)")
        }
        Entry::VenueMark { instrument, price } => {
            format!(
                "venue mark price (instrument {instrument}, {} units)",
                price.0
            )
        }
        Entry::Delivery { instrument, price } => {
            format!(
                "futures delivery (instrument {instrument}, {} units)",
                price.0
            )
        }
        Entry::Gap { exchange, lost } => {
            format!("market-data ring gap (exchange {exchange}, {lost} lost)")
        }
        Entry::Down { exchange } => format!("feed down (exchange {exchange})"),
        Entry::Cmd(c) => format!("command {c:?}").to_lowercase(),
        Entry::Start { .. } => "start".to_owned(),
        Entry::New { .. }
        | Entry::Cancel { .. }
        | Entry::CancelAll { .. }
        | Entry::Amend { .. } => describe(e),
    }
}
