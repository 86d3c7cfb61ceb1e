//! Shared by the integration tests and `benches/backtest.rs`: a deterministic synthetic market
//! (a random-walk L2 book with trades), the example manifest, and a scripted strategy.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rt_core::{
    Action, Bbo, DepthDiff, FillReport, Header, InstrumentId, Level, MarketEvent, OrderBook,
    OrderUpdate, Price, Qty, Side, Snapshot, Strategy, StrategyContext, Trade,
};

/// The example manifest of the contract tests (binance_spot BTCUSDT, a market maker).
pub fn example_manifest() -> rt_manifest::Manifest {
    rt_manifest::load(include_str!(
        "../../../../tests/contract/example.manifest.json"
    ))
    .expect("the example manifest loads")
}

/// xorshift64*: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Snapshot {
        last_update_id: u64,
    },
    Depth {
        first: u64,
        last: u64,
        prev: Option<u64>,
    },
    Trade {
        id: u64,
        price: Price,
        qty: Qty,
        aggressor: Side,
    },
}

#[derive(Clone, Copy, Debug)]
struct Ev {
    header: Header,
    kind: Kind,
    /// Bids in `levels[start..mid]`, asks in `levels[mid..end]`.
    start: u32,
    mid: u32,
    end: u32,
}

/// A recorded-like stream of events with their levels in one flat buffer.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    events: Vec<Ev>,
    levels: Vec<Level>,
}

impl Tape {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Level changes + trades (+ snapshot levels), counted as hftbacktest counts rows.
    pub fn rows(&self) -> usize {
        self.levels.len()
            + self
                .events
                .iter()
                .filter(|e| matches!(e.kind, Kind::Trade { .. }))
                .count()
    }

    pub fn event(&self, i: usize) -> MarketEvent<'_> {
        let e = &self.events[i];
        let bids = &self.levels[e.start as usize..e.mid as usize];
        let asks = &self.levels[e.mid as usize..e.end as usize];
        match e.kind {
            Kind::Snapshot { last_update_id } => MarketEvent::Snapshot(Snapshot {
                header: e.header,
                last_update_id,
                bids,
                asks,
            }),
            Kind::Depth { first, last, prev } => MarketEvent::Depth(DepthDiff {
                header: e.header,
                first_id: first,
                final_id: last,
                prev_final_id: prev,
                bids,
                asks,
            }),
            Kind::Trade {
                id,
                price,
                qty,
                aggressor,
            } => MarketEvent::Trade(Trade {
                header: e.header,
                id,
                price,
                qty,
                aggressor,
            }),
        }
    }

    /// Appends a raw depth diff with explicit ids (for gap tests).
    pub fn push_depth(&mut self, t: i64, first: u64, last: u64, bids: &[Level], asks: &[Level]) {
        self.push_depth_at(header(t), first, last, None, bids, asks);
    }

    fn push_depth_at(
        &mut self,
        header: Header,
        first: u64,
        last: u64,
        prev: Option<u64>,
        bids: &[Level],
        asks: &[Level],
    ) {
        let start = self.levels.len() as u32;
        self.levels.extend_from_slice(bids);
        let mid = self.levels.len() as u32;
        self.levels.extend_from_slice(asks);
        self.events.push(Ev {
            header,
            kind: Kind::Depth { first, last, prev },
            start,
            mid,
            end: self.levels.len() as u32,
        });
    }

    pub fn push_snapshot(&mut self, t: i64, last_update_id: u64, bids: &[Level], asks: &[Level]) {
        self.push_snapshot_at(header(t), last_update_id, bids, asks);
    }

    fn push_snapshot_at(
        &mut self,
        header: Header,
        last_update_id: u64,
        bids: &[Level],
        asks: &[Level],
    ) {
        let start = self.levels.len() as u32;
        self.levels.extend_from_slice(bids);
        let mid = self.levels.len() as u32;
        self.levels.extend_from_slice(asks);
        self.events.push(Ev {
            header,
            kind: Kind::Snapshot { last_update_id },
            start,
            mid,
            end: self.levels.len() as u32,
        });
    }

    pub fn push_trade(&mut self, t: i64, price: Price, qty: Qty, aggressor: Side) {
        self.push_trade_at(header(t), price, qty, aggressor);
    }

    fn push_trade_at(&mut self, header: Header, price: Price, qty: Qty, aggressor: Side) {
        let at = self.levels.len() as u32;
        self.events.push(Ev {
            header,
            kind: Kind::Trade {
                id: self.events.len() as u64,
                price,
                qty,
                aggressor,
            },
            start: at,
            mid: at,
            end: at,
        });
    }
}

fn header(t: i64) -> Header {
    Header {
        symbol: 0,
        exchange_ns: t - 1_000_000,
        local_ns: t,
    }
}

/// 0.01 price tick, 0.00001 lot (Binance spot BTCUSDT, as in the example manifest).
pub const TICK: i64 = 1_000_000;
/// Generated sizes are multiples of 0.001.
pub const SIZE_UNIT: i64 = 100_000;
/// Level sizes are 1..=MAX_SIZE units (0.001 to 1 BTC).
const MAX_SIZE: u64 = 1_000;

/// A random walk of a BTCUSDT-like book around 60000: a 20-level snapshot, then level updates
/// near the top (74%: sizes change by up to a quarter, a spread wider than a tick fills first),
/// trades at the best with the depth update that follows them (25%: most take a small part of
/// the level, one in 20 sweeps it), and moves of the best prices by 1-6 ticks (1%). Event times
/// advance 0-25 ms (about 100 events a second); a depth diff carries 1-3 levels (real ones
/// carry 10-17, so per-event costs weigh more here). Never crossed; update ids contiguous
/// (spot rule).
///
/// Calibrated on the real captures in `shared/data` (USD-M / spot): 81 / 38 events a second,
/// the mid changes on 1.7 / 2.1% of events, and the example market maker sends 2.7 / 1.4
/// orders and gets 1.3 / 0.9 fills a second. Here: 98 events a second, the mid changes on 3.1%
/// of events, 1.7 orders and 0.4 fills a second.
pub fn random_walk(seed: u64, events: usize, start_ns: i64) -> Tape {
    let mut rng = Rng::new(seed);
    let mut tape = Tape::default();
    let mut bids: BTreeMap<i64, i64> = BTreeMap::new();
    let mut asks: BTreeMap<i64, i64> = BTreeMap::new();
    let best = 6_000_000i64; // ticks: 60000.00
    for k in 0..20 {
        bids.insert(best - k, 1 + rng.below(MAX_SIZE) as i64);
        asks.insert(best + 1 + k, 1 + rng.below(MAX_SIZE) as i64);
    }
    let lv = |tick: i64, size: i64| Level::new(Price(tick * TICK), Qty(size * SIZE_UNIT));
    let mut t = start_ns;
    let mut id = 1_000u64;
    let snap_bids: Vec<Level> = bids.iter().rev().map(|(&p, &q)| lv(p, q)).collect();
    let snap_asks: Vec<Level> = asks.iter().map(|(&p, &q)| lv(p, q)).collect();
    tape.push_snapshot(t, id, &snap_bids, &snap_asks);
    let mut b: Vec<Level> = Vec::with_capacity(4);
    let mut a: Vec<Level> = Vec::with_capacity(4);
    while tape.len() < events {
        t += rng.below(25_000_001) as i64;
        b.clear();
        a.clear();
        let r = rng.below(1_000);
        let bid_top = *bids.keys().next_back().unwrap();
        let ask_top = *asks.keys().next().unwrap();
        if r < 740 && ask_top - bid_top > 1 {
            // A wide spread fills quickly: a new level one tick inside it.
            let size = 1 + rng.below(MAX_SIZE) as i64;
            if rng.below(2) == 0 {
                set(&mut bids, bid_top + 1, size);
                b.push(lv(bid_top + 1, size));
            } else {
                set(&mut asks, ask_top - 1, size);
                a.push(lv(ask_top - 1, size));
            }
        } else if r < 740 {
            for _ in 0..1 + rng.below(3) {
                let buy = rng.below(2) == 0;
                let depth = (rng.below(8) * rng.below(8) / 4) as i64;
                let (book, tick) = if buy {
                    (&mut bids, bid_top - depth)
                } else {
                    (&mut asks, ask_top + depth)
                };
                // An order added to or cancelled from a level changes it by up to a quarter;
                // an empty price gets a fresh level; one in ten changes below the top deletes.
                let size = match book.get(&tick) {
                    _ if rng.below(10) == 0 && depth > 0 => 0,
                    Some(&old) => {
                        let step = 1 + rng.below(old as u64 / 4 + 1) as i64;
                        if rng.below(2) == 0 {
                            old + step
                        } else {
                            (old - step).max(1)
                        }
                    }
                    None => 1 + rng.below(MAX_SIZE) as i64,
                };
                set(book, tick, size);
                push_unique(if buy { &mut b } else { &mut a }, lv(tick, size));
            }
        } else if r < 990 {
            // A trade at the best, then the depth update that reflects it.
            let buy_aggressor = rng.below(2) == 0;
            let (book, tick) = if buy_aggressor {
                (&mut asks, ask_top)
            } else {
                (&mut bids, bid_top)
            };
            // Most trades take a small part of the level; one in 20 sweeps it.
            let size = book[&tick];
            let traded = if rng.below(20) == 0 {
                size
            } else {
                1 + rng.below((size as u64 / 10).max(1)) as i64
            };
            let side = if buy_aggressor { Side::Buy } else { Side::Sell };
            tape.push_trade(t, Price(tick * TICK), Qty(traded * SIZE_UNIT), side);
            if tape.len() >= events {
                break;
            }
            t += rng.below(2_000_000) as i64;
            let left = size - traded;
            if left == 0 && book.len() <= 5 {
                // Keep some depth: refill instead of emptying the level.
                set(book, tick, 1);
            } else {
                set(book, tick, left);
            }
            let level = lv(tick, book.get(&tick).copied().unwrap_or(0));
            if buy_aggressor {
                a.push(level);
            } else {
                b.push(level);
            }
        } else {
            // The best moves by 1-6 ticks: one side loses its levels up to there, the other
            // gets a new best just behind.
            let up = rng.below(2) == 0;
            let k = 1 + rng.below(6) as i64;
            if up {
                for tick in ask_top..ask_top + k {
                    if asks.len() > 5 && asks.contains_key(&tick) {
                        set(&mut asks, tick, 0);
                        a.push(lv(tick, 0));
                    }
                }
                let new_ask = *asks.keys().next().unwrap();
                if bid_top + 1 < new_ask {
                    let size = 1 + rng.below(MAX_SIZE) as i64;
                    set(&mut bids, new_ask - 1, size);
                    b.push(lv(new_ask - 1, size));
                }
            } else {
                for tick in (bid_top - k + 1..=bid_top).rev() {
                    if bids.len() > 5 && bids.contains_key(&tick) {
                        set(&mut bids, tick, 0);
                        b.push(lv(tick, 0));
                    }
                }
                let new_bid = *bids.keys().next_back().unwrap();
                if ask_top - 1 > new_bid {
                    let size = 1 + rng.below(MAX_SIZE) as i64;
                    set(&mut asks, new_bid + 1, size);
                    a.push(lv(new_bid + 1, size));
                }
            }
            // Keep the depth near 20 levels a side.
            if bids.len() < 15 {
                let far = *bids.keys().next().unwrap() - 1;
                set(&mut bids, far, 10);
                b.push(lv(far, 10));
            }
            if asks.len() < 15 {
                let far = *asks.keys().next_back().unwrap() + 1;
                set(&mut asks, far, 10);
                a.push(lv(far, 10));
            }
        }
        if b.is_empty() && a.is_empty() {
            continue;
        }
        let first = id + 1;
        id += 1 + rng.below(3);
        tape.push_depth(t, first, id, &b, &a);
    }
    tape
}

fn set(book: &mut BTreeMap<i64, i64>, tick: i64, size: i64) {
    if size == 0 {
        book.remove(&tick);
    } else {
        book.insert(tick, size);
    }
}

/// Replaces an earlier change of the same price in one diff (the last one wins anyway, but a
/// diff lists a price once).
fn push_unique(levels: &mut Vec<Level>, level: Level) {
    match levels.iter_mut().find(|l| l.price == level.price) {
        Some(l) => *l = level,
        None => levels.push(level),
    }
}

/// What a [`Scripted`] strategy saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Book {
        now: i64,
        best_ask: Option<Price>,
    },
    Trade {
        now: i64,
    },
    /// A real-time top of book (`on_bbo`) and its update id.
    Bbo {
        now: i64,
        update_id: u64,
    },
    Fill {
        now: i64,
        report: FillReport,
    },
    Update {
        now: i64,
        update: OrderUpdate,
    },
    Lost {
        now: i64,
    },
}

/// A strategy for tests: logs every callback and, on its `n`-th book callback, sends the
/// actions scripted for `n`.
#[derive(Debug)]
pub struct Scripted {
    pub instruments: Vec<InstrumentId>,
    pub log: Arc<Mutex<Vec<Seen>>>,
    pub script: Vec<(usize, Action)>,
    pub books: usize,
}

impl Scripted {
    pub fn new(
        instrument: InstrumentId,
        script: Vec<(usize, Action)>,
    ) -> (Scripted, Arc<Mutex<Vec<Seen>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            Scripted {
                instruments: vec![instrument],
                log: log.clone(),
                script,
                books: 0,
            },
            log,
        )
    }
}

impl Strategy for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }

    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        self.log.lock().unwrap().push(Seen::Book {
            now: ctx.now,
            best_ask: book.best_ask().map(|l| l.price),
        });
        for (n, action) in &self.script {
            if *n == self.books {
                out.push(*action);
            }
        }
        self.books += 1;
    }

    fn on_trade(
        &mut self,
        ctx: &StrategyContext,
        _book: &OrderBook,
        _trade: &Trade,
        _out: &mut Vec<Action>,
    ) {
        self.log.lock().unwrap().push(Seen::Trade { now: ctx.now });
    }

    fn wants_bbo(&self) -> bool {
        true
    }

    fn on_bbo(
        &mut self,
        ctx: &StrategyContext,
        _book: &OrderBook,
        bbo: &Bbo,
        _out: &mut Vec<Action>,
    ) {
        self.log.lock().unwrap().push(Seen::Bbo {
            now: ctx.now,
            update_id: bbo.update_id,
        });
    }

    fn on_fill(&mut self, ctx: &StrategyContext, fill: &FillReport, _out: &mut Vec<Action>) {
        self.log.lock().unwrap().push(Seen::Fill {
            now: ctx.now,
            report: *fill,
        });
    }

    fn on_order_update(
        &mut self,
        ctx: &StrategyContext,
        update: &OrderUpdate,
        _out: &mut Vec<Action>,
    ) {
        self.log.lock().unwrap().push(Seen::Update {
            now: ctx.now,
            update: *update,
        });
    }

    fn on_book_lost(&mut self, ctx: &StrategyContext, _out: &mut Vec<Action>) {
        self.log.lock().unwrap().push(Seen::Lost { now: ctx.now });
    }
}

/// `shared/data/binance/<name>` beside the project (CI has it there), if present.
pub fn shared_capture(name: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join("../../../shared/data/binance").join(name),
        root.join("../../data/binance").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Loads an hftbacktest-format capture (`<local_ns> <frame>` lines, gzip): the REST snapshot,
/// depth diffs and trades; `bookTicker` lines are skipped. A minimal extractor (rt-core cannot
/// depend on the venue codec); enough for the captures in `shared/data`.
pub fn load_capture(path: &std::path::Path) -> Tape {
    use std::io::{BufRead, BufReader};
    let file = std::fs::File::open(path).expect("the capture is readable");
    let lines = BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))).lines();
    let mut tape = Tape::default();
    let (mut bids, mut asks) = (Vec::new(), Vec::new());
    for line in lines {
        let line = line.expect("a line");
        let Some((ts, frame)) = line.split_once(' ') else {
            continue;
        };
        let local_ns: i64 = ts.parse().expect("a receive time");
        let exchange_ns =
            |key: &str| after(frame, key).map_or(0, |_| uint(frame, key) as i64 * 1_000_000);
        if frame.starts_with("{\"lastUpdateId\"") {
            levels(frame, "\"bids\":[", &mut bids);
            levels(frame, "\"asks\":[", &mut asks);
            let h = Header {
                symbol: 0,
                exchange_ns: exchange_ns("\"E\":"),
                local_ns,
            };
            tape.push_snapshot_at(h, uint(frame, "\"lastUpdateId\":"), &bids, &asks);
        } else if frame.contains("\"e\":\"depthUpdate\"") {
            levels(frame, "\"b\":[", &mut bids);
            levels(frame, "\"a\":[", &mut asks);
            let prev = after(frame, "\"pu\":").map(|_| uint(frame, "\"pu\":"));
            let h = Header {
                symbol: 0,
                exchange_ns: exchange_ns("\"E\":"),
                local_ns,
            };
            tape.push_depth_at(
                h,
                uint(frame, "\"U\":"),
                uint(frame, "\"u\":"),
                prev,
                &bids,
                &asks,
            );
        } else if frame.contains("\"e\":\"trade\"") {
            let h = Header {
                symbol: 0,
                exchange_ns: exchange_ns("\"T\":"),
                local_ns,
            };
            let aggressor = if frame.contains("\"m\":true") {
                Side::Sell
            } else {
                Side::Buy
            };
            tape.push_trade_at(
                h,
                Price::parse(text(frame, "\"p\":\"")).unwrap(),
                Qty::parse(text(frame, "\"q\":\"")).unwrap(),
                aggressor,
            );
        }
    }
    tape
}

fn after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.find(key).map(|i| &s[i + key.len()..])
}

fn uint(s: &str, key: &str) -> u64 {
    let rest = after(s, key).expect("the key is present");
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().expect("an integer")
}

fn text<'a>(s: &'a str, key: &str) -> &'a [u8] {
    let rest = after(s, key).expect("the key is present");
    &rest.as_bytes()[..rest.find('"').expect("a closing quote")]
}

/// `[["p","q"],...]` after `key`.
fn levels(s: &str, key: &str, out: &mut Vec<Level>) {
    out.clear();
    let mut rest = after(s, key).expect("the levels are present");
    while let Some(r) = rest.strip_prefix("[\"") {
        let (p, r) = r.split_once("\",\"").expect("a price");
        let (q, r) = r.split_once("\"]").expect("a qty");
        out.push(Level::new(
            Price::parse(p.as_bytes()).unwrap(),
            Qty::parse(q.as_bytes()).unwrap(),
        ));
        rest = r.strip_prefix(',').unwrap_or(r);
    }
}
