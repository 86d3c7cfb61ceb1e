//! Prometheus metrics: everything the heartbeat carries, in the Prometheus text exposition
//! format (version 0.0.4), served over HTTP at `GET /metrics` on the manifest's
//! `engine.metrics.listen` address (loopback in the bundled deployments).
//!
//! Off the hot path: the housekeeping thread renders the page once per heartbeat (about once a
//! second) from the heartbeat it just published and the merged latency histograms, and swaps it
//! into a shared slot; the `metrics` thread only copies that page out to whoever connects. A
//! scrape never touches the trading threads, and a slow or stuck scraper only holds the metrics
//! thread (each connection has a read and a write timeout).
//!
//! Names follow Prometheus's conventions: the `rt_` prefix, base units in the name (`_seconds`),
//! `_total` on counters, labels for what varies (exchange, symbol, stage, reason, state).
//! Latencies are histograms with buckets from 1 us to 1 s (`rt_stage_latency_seconds`), made
//! from the engine's HDR histograms since start.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bus::pb;
use crate::latency::{Stage, Stages};

/// Bucket upper bounds of the latency histograms, in seconds: microseconds to a second.
pub const BUCKETS_S: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2,
    0.25, 1.0,
];

/// How long a scraper may take to send its request or read the page.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle metrics thread looks for a stop.
const POLL: Duration = Duration::from_millis(50);
/// The longest request head read.
const MAX_REQUEST: usize = 8192;

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "engine.metrics.listen {addr:?} is not an address and port (for example 127.0.0.1:9464)"
    )]
    Address { addr: String },
    #[error("engine.metrics.listen {addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The last rendered page, shared between the housekeeping thread and the server thread.
#[derive(Debug, Clone, Default)]
pub struct Page(Arc<Mutex<Arc<str>>>);

impl Page {
    pub fn set(&self, text: String) {
        if let Ok(mut page) = self.0.lock() {
            *page = Arc::from(text);
        }
    }

    pub fn get(&self) -> Arc<str> {
        self.0
            .lock()
            .map_or_else(|_| Arc::from(""), |p| Arc::clone(&p))
    }
}

/// The running exporter: its page, its address and its thread.
#[derive(Debug)]
pub struct Exporter {
    pub page: Page,
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Listens on `listen` (port 0: any free port, see [`Exporter::addr`]) and serves the page
    /// from a thread of its own.
    pub fn start(listen: &str) -> Result<Exporter, MetricsError> {
        let addr: SocketAddr = listen.parse().map_err(|_| MetricsError::Address {
            addr: listen.to_owned(),
        })?;
        let bind = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let page = Page::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (page, stop) = (page.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("metrics".to_owned())
                .spawn(move || serve(&listener, &page, &stop))
                .map_err(bind)?
        };
        Ok(Exporter {
            page,
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, page: &Page, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A scraper that misbehaves costs this thread a timeout, nothing else.
                let _ = answer(stream, page);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Reads one request head and answers it; the connection is closed after.
fn answer(mut stream: TcpStream, page: &Page) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    let (status, body): (&str, Arc<str>) = match (method, path) {
        (b"GET" | b"HEAD", Some(b"/metrics")) => ("200 OK", page.get()),
        (b"GET" | b"HEAD", Some(_)) => ("404 Not Found", Arc::from("not found: try /metrics\n")),
        _ => ("405 Method Not Allowed", Arc::from("only GET /metrics\n")),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// Who the engine is, as labels on `rt_engine_info`.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub engine_id: &'a str,
    pub deployment: &'a str,
    pub mode: &'a str,
    /// The manifest's tick-to-order p99 alert threshold (microseconds).
    pub tick_to_order_p99_alert_us: u32,
}

/// The page for one heartbeat: every figure it carries, and the latency histograms.
pub fn render(hb: &pb::Heartbeat, latency: &Stages, id: Identity<'_>) -> String {
    let mut out = Builder::default();
    out.family(
        "rt_engine_info",
        "gauge",
        "The engine's identity and manifest (always 1).",
    );
    out.sample(
        "rt_engine_info",
        &[
            ("engine", id.engine_id),
            ("deployment", id.deployment),
            ("mode", id.mode),
            ("manifest_sha256", &hb.manifest_sha256),
        ],
        1.0,
    );
    out.single(
        "rt_alert_tick_to_order_p99_seconds",
        "gauge",
        "The tick-to-order p99 above which PyRtTickToOrderSlow fires (the manifest's \
         engine.metrics.tick_to_order_p99_alert_us).",
        f64::from(id.tick_to_order_p99_alert_us) / 1e6,
    );
    out.single(
        "rt_uptime_seconds",
        "gauge",
        "Time since the engine started.",
        hb.uptime_ms as f64 / 1e3,
    );
    out.family(
        "rt_risk_state",
        "gauge",
        "The risk state: 1 for the current one (active, reducing, halted), 0 for the others.",
    );
    for (state, kind) in [
        ("active", pb::RiskStateKind::Active),
        ("reducing", pb::RiskStateKind::Reducing),
        ("halted", pb::RiskStateKind::Halted),
    ] {
        let now = f64::from(u8::from(hb.risk_state == kind as i32));
        out.sample("rt_risk_state", &[("state", state)], now);
    }
    out.single(
        "rt_paused",
        "gauge",
        "1 while paused or killed by an operator.",
        f64::from(u8::from(hb.paused)),
    );
    out.single(
        "rt_open_orders",
        "gauge",
        "Orders open at the venues.",
        f64::from(hb.open_orders),
    );
    for (name, help, value) in [
        ("rt_equity", "Equity in the quote currency.", &hb.equity),
        (
            "rt_realised_pnl",
            "Realised profit and loss in the quote currency.",
            &hb.realised_pnl,
        ),
        (
            "rt_fees",
            "Fees paid in the quote currency (a running total that can fall with rebates).",
            &hb.fees,
        ),
    ] {
        out.single(name, "gauge", help, decimal(value));
    }
    counters(&mut out, hb);
    positions(&mut out, &hb.positions);
    feeds(&mut out, &hb.feeds);
    anomalies(&mut out, &hb.anomalies);
    histograms(&mut out, latency);
    out.text
}

/// Every figure anomaly detection measured (engine.anomaly): `rt_anomaly` 1 while raised, 0
/// otherwise, with the value last measured and the range expected (PyRtAnomaly pages on 1).
fn anomalies(out: &mut Builder, anomalies: &[pb::Anomaly]) {
    if anomalies.is_empty() {
        return;
    }
    type Field = fn(&pb::Anomaly) -> f64;
    let families: [(&str, &str, Field); 4] = [
        (
            "rt_anomaly",
            "A figure out of the range the backtest baseline expects (1 while raised, else 0).",
            |a| f64::from(u8::from(a.active)),
        ),
        (
            "rt_anomaly_value",
            "The figure's last value over the detection window.",
            |a| a.value,
        ),
        ("rt_anomaly_low", "The raised figure's expected low.", |a| {
            a.low
        }),
        (
            "rt_anomaly_high",
            "The raised figure's expected high.",
            |a| a.high,
        ),
    ];
    for (name, help, value) in families {
        out.family(name, "gauge", help);
        for a in anomalies {
            out.sample(name, &[("figure", &a.figure)], value(a));
        }
    }
}

/// A checksummed books' counter (`book_checksums_checked`, ... with an optional
/// `.<exchange>`): its family and exchange ("" for the total over every exchange).
fn book_counter(name: &str) -> Option<(&str, &str)> {
    const FAMILIES: [&str; 5] = [
        "book_checksums_checked",
        "book_checksums_matched",
        "book_sequence_gaps",
        "book_breaks",
        "book_resubscribes",
    ];
    let (family, exchange) = name.split_once('.').unwrap_or((name, ""));
    FAMILIES.contains(&family).then_some((family, exchange))
}

/// The heartbeat's named counters: running totals as `rt_<name>_total`, except the families
/// below, which are labelled (`rejected.<reason>`) or are levels rather than totals (`rl.*`,
/// the rate-limit usage against its limits).
fn counters(out: &mut Builder, hb: &pb::Heartbeat) {
    let mut names: Vec<(&String, &u64)> = hb.counters.iter().collect();
    names.sort();
    let mut rejected = Vec::new();
    let mut pressure = Vec::new();
    let mut invalid = Vec::new();
    // Checksummed books' totals: family -> (exchange, "" for every exchange), value.
    let mut books: std::collections::BTreeMap<&str, Vec<(&str, u64)>> = Default::default();
    for (name, &value) in names {
        if let Some(reason) = name.strip_prefix("rejected.") {
            rejected.push((reason, value));
        } else if let Some(rest) = name.strip_prefix("rl.") {
            let (exchange, figure) = rest.split_once('.').unwrap_or(("", rest));
            pressure.push((exchange, figure, value));
        } else if let Some((family, exchange)) = book_counter(name) {
            books.entry(family).or_default().push((exchange, value));
        } else if name == "books_invalid" || name.starts_with("books_invalid.") {
            // A level, not a total: the books dropped now and waiting to be verified again.
            invalid.push((name.strip_prefix("books_invalid.").unwrap_or(""), value));
        } else if name == "journal_unsynced_records" {
            out.single(
                "rt_journal_unsynced_records",
                "gauge",
                "Journal records written but not yet known to be on stable storage.",
                value as f64,
            );
        } else if name == "bus_subscriber_overflows" {
            out.single(
                "rt_bus_subscriber_overflows_total",
                "counter",
                "Times a bus subscriber's queue was at the high-water mark: from each, it misses \
                 events until it catches up (it sees the gap in sequence numbers).",
                value as f64,
            );
        } else if name == "journal_fsync_errors" {
            out.single(
                "rt_journal_fsync_errors_total",
                "counter",
                "Journal fsyncs that failed (what they covered is not durable; retried).",
                value as f64,
            );
        } else if name == "journal_fsync_interval_ms" {
            out.single(
                "rt_journal_fsync_interval_seconds",
                "gauge",
                "The journal's sync interval (engine.journal.fsync_interval_ms; 0: every append).",
                value as f64 / 1e3,
            );
        } else if name == "journal_unsynced_age_ms" {
            out.single(
                "rt_journal_unsynced_age_seconds",
                "gauge",
                "Age of the oldest journal record not yet known to be on stable storage (at most).",
                value as f64 / 1e3,
            );
        } else {
            let metric = format!("rt_{}_total", metric_name(name));
            out.single(
                &metric,
                "counter",
                &format!("The engine's `{name}` counter."),
                value as f64,
            );
        }
    }
    if !rejected.is_empty() {
        out.family(
            "rt_orders_rejected_by_reason_total",
            "counter",
            "Orders refused, by reason.",
        );
        for (reason, value) in rejected {
            out.sample(
                "rt_orders_rejected_by_reason_total",
                &[("reason", reason)],
                value as f64,
            );
        }
    }
    for (family, values) in books {
        // Per exchange when the feeds report it (a sum over the label is the total); the
        // total alone otherwise.
        let labelled = values.iter().any(|(x, _)| !x.is_empty());
        let metric = format!("rt_{family}_total");
        out.family(
            &metric,
            "counter",
            &format!("Checksummed books' `{family}` counter, per exchange."),
        );
        for (exchange, value) in values {
            if labelled && exchange.is_empty() {
                continue;
            }
            let labels: &[(&str, &str)] = if exchange.is_empty() {
                &[]
            } else {
                &[("exchange", exchange)]
            };
            out.sample(&metric, labels, value as f64);
        }
    }
    if !invalid.is_empty() {
        out.family(
            "rt_books_invalid",
            "gauge",
            "Checksummed books dropped and waiting to be verified again (no label: every \
             exchange).",
        );
        for (exchange, value) in invalid {
            let labels: &[(&str, &str)] = if exchange.is_empty() {
                &[]
            } else {
                &[("exchange", exchange)]
            };
            out.sample("rt_books_invalid", labels, value as f64);
        }
    }
    if !pressure.is_empty() {
        out.family(
            "rt_rate_limit",
            "gauge",
            "Rate-limit usage and limits per venue, as the venue's headers and the config give them.",
        );
        for (exchange, figure, value) in pressure {
            out.sample(
                "rt_rate_limit",
                &[("exchange", exchange), ("figure", figure)],
                value as f64,
            );
        }
    }
}

fn positions(out: &mut Builder, positions: &[pb::Position]) {
    if positions.is_empty() {
        return;
    }
    type Field = fn(&pb::Position) -> f64;
    let families: [(&str, &str, Field); 5] = [
        (
            "rt_position",
            "Position size (base units; negative: short).",
            |p| decimal(&p.qty),
        ),
        (
            "rt_position_avg_entry_price",
            "Average entry price of the position.",
            |p| decimal(&p.avg_entry_price),
        ),
        (
            "rt_position_realised_pnl",
            "Realised P&L of the instrument, quote currency.",
            |p| decimal(&p.realised_pnl),
        ),
        (
            "rt_position_unrealised_pnl",
            "Unrealised P&L at the mark, quote currency.",
            |p| decimal(&p.unrealised_pnl),
        ),
        (
            "rt_position_mark_age_seconds",
            "Age of the mark the position is valued at (-1: none).",
            |p| {
                if p.mark_age_ms < 0 {
                    -1.0
                } else {
                    p.mark_age_ms as f64 / 1e3
                }
            },
        ),
    ];
    for (name, help, field) in families {
        out.family(name, "gauge", help);
        for p in positions {
            out.sample(
                name,
                &[("exchange", &p.exchange), ("symbol", &p.symbol)],
                field(p),
            );
        }
    }
}

fn feeds(out: &mut Builder, feeds: &[pb::FeedState]) {
    if feeds.is_empty() {
        return;
    }
    out.family(
        "rt_feed_state",
        "gauge",
        "Each market-data feed's state: 1 for the current one, 0 for the others.",
    );
    for f in feeds {
        for (state, kind) in [
            ("connecting", pb::FeedStateKind::Connecting),
            ("syncing", pb::FeedStateKind::Syncing),
            ("live", pb::FeedStateKind::Live),
            ("stale", pb::FeedStateKind::Stale),
            ("resyncing", pb::FeedStateKind::Resyncing),
        ] {
            let now = f64::from(u8::from(f.state == kind as i32));
            out.sample(
                "rt_feed_state",
                &[("exchange", &f.exchange), ("state", state)],
                now,
            );
        }
    }
    type Field = fn(&pb::FeedState) -> u64;
    let totals: [(&str, &str, Field); 5] = [
        (
            "rt_feed_reconnects_total",
            "Market-data reconnections.",
            |f| f.reconnects,
        ),
        (
            "rt_feed_gaps_total",
            "Sequence gaps seen in the market data.",
            |f| f.gaps,
        ),
        (
            "rt_feed_malformed_total",
            "Market-data frames that could not be decoded.",
            |f| f.malformed,
        ),
        (
            "rt_feed_ring_overflows_total",
            "Market-data events dropped on a full ring to the strategy thread.",
            |f| f.ring_overflows,
        ),
        ("rt_feed_snapshots_total", "Book snapshots fetched.", |f| {
            f.snapshots
        }),
    ];
    for (name, help, field) in totals {
        out.family(name, "counter", help);
        for f in feeds {
            out.sample(name, &[("exchange", &f.exchange)], field(f) as f64);
        }
    }
}

fn histograms(out: &mut Builder, latency: &Stages) {
    let name = "rt_stage_latency_seconds";
    out.family(
        name,
        "histogram",
        "Latency of each pipeline stage since start (frame_to_parsed ... tick_to_order, order_to_ack).",
    );
    for stage in Stage::ALL {
        let h = latency.histogram(stage);
        let label = stage.name();
        for bound in BUCKETS_S {
            // A bound in whole ns; the HDR histogram's 3 significant digits decide the edge.
            let ns = (bound * 1e9).round() as u64;
            let below = h.count_between(0, ns);
            out.sample(
                &format!("{name}_bucket"),
                &[("stage", label), ("le", &format_float(bound))],
                below as f64,
            );
        }
        out.sample(
            &format!("{name}_bucket"),
            &[("stage", label), ("le", "+Inf")],
            h.len() as f64,
        );
        let sum = if h.is_empty() {
            0.0
        } else {
            h.mean() * h.len() as f64 / 1e9
        };
        out.sample(&format!("{name}_sum"), &[("stage", label)], sum);
        out.sample(
            &format!("{name}_count"),
            &[("stage", label)],
            h.len() as f64,
        );
    }
}

/// A counter's name as a metric name: `[a-zA-Z0-9_]`, anything else an underscore.
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The heartbeat's decimal strings; an empty or unreadable one is NaN (Prometheus's "no value").
fn decimal(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// Writes families and samples in the text format, each family's HELP and TYPE once.
#[derive(Debug, Default)]
pub struct Builder {
    text: String,
}

impl Builder {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_float(value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn heartbeat() -> pb::Heartbeat {
        pb::Heartbeat {
            uptime_ms: 12_500,
            risk_state: pb::RiskStateKind::Reducing as i32,
            paused: false,
            open_orders: 2,
            equity: "10012.5".to_owned(),
            realised_pnl: "-1.25".to_owned(),
            fees: "0.75".to_owned(),
            counters: [
                ("orders_sent", 7u64),
                ("md.messages", 1000),
                ("rejected.max_position", 3),
                ("rl.binance_spot.weight_used", 40),
                ("book_breaks", 3),
                ("book_breaks.okx", 2),
                ("book_breaks.kraken", 1),
                ("book_resubscribes", 0),
                ("books_invalid", 1),
                ("books_invalid.okx", 1),
                ("journal_records", 12),
                ("journal_unsynced_records", 3),
                ("journal_unsynced_age_ms", 1500),
                ("journal_fsync_interval_ms", 50),
                ("journal_fsync_errors", 1),
                ("bus_subscriber_overflows", 4),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            latency: Vec::new(),
            positions: vec![pb::Position {
                exchange: "binance_spot".to_owned(),
                symbol: "BTCUSDT".to_owned(),
                qty: "-0.004".to_owned(),
                avg_entry_price: "61000.5".to_owned(),
                realised_pnl: "1".to_owned(),
                unrealised_pnl: "-0.5".to_owned(),
                fees: "0.1".to_owned(),
                mark_age_ms: 1500,
            }],
            feeds: vec![pb::FeedState {
                exchange: "binance_spot".to_owned(),
                state: pb::FeedStateKind::Live as i32,
                reconnects: 1,
                gaps: 2,
                malformed: 0,
                ring_overflows: 0,
                snapshots: 3,
            }],
            manifest_sha256: "ab".repeat(32),
            anomalies: vec![pb::Anomaly {
                figure: "md_messages_per_s.binance_spot".to_owned(),
                value: 0.0,
                low: 52.5,
                high: 261.6,
                window_s: 60,
                active: true,
                derivation: "a backtest".to_owned(),
                baseline_sha256: "cd".repeat(32),
            }],
        }
    }

    const ID: Identity<'static> = Identity {
        engine_id: "eng\"1",
        deployment: "paper_local",
        mode: "paper",
        tick_to_order_p99_alert_us: 250,
    };

    #[test]
    fn every_heartbeat_figure_is_a_metric() {
        let mut latency = Stages::new();
        for ns in [800, 3_000, 3_000, 40_000, 2_000_000_000] {
            latency.record(Stage::TickToOrder, ns);
        }
        let text = render(&heartbeat(), &latency, ID);
        for line in [
            "rt_uptime_seconds 12.5",
            "rt_alert_tick_to_order_p99_seconds 0.00025",
            "rt_risk_state{state=\"active\"} 0",
            "rt_risk_state{state=\"reducing\"} 1",
            "rt_open_orders 2",
            "rt_equity 10012.5",
            "rt_realised_pnl -1.25",
            "rt_orders_sent_total 7",
            "rt_md_messages_total 1000",
            "rt_orders_rejected_by_reason_total{reason=\"max_position\"} 3",
            "rt_rate_limit{exchange=\"binance_spot\",figure=\"weight_used\"} 40",
            "rt_position{exchange=\"binance_spot\",symbol=\"BTCUSDT\"} -0.004",
            "rt_position_mark_age_seconds{exchange=\"binance_spot\",symbol=\"BTCUSDT\"} 1.5",
            "rt_feed_state{exchange=\"binance_spot\",state=\"live\"} 1",
            "rt_feed_state{exchange=\"binance_spot\",state=\"stale\"} 0",
            "rt_feed_gaps_total{exchange=\"binance_spot\"} 2",
            "rt_book_breaks_total{exchange=\"okx\"} 2",
            "rt_book_breaks_total{exchange=\"kraken\"} 1",
            "rt_book_resubscribes_total 0",
            "rt_books_invalid 1",
            "rt_books_invalid{exchange=\"okx\"} 1",
            "rt_journal_records_total 12",
            "rt_journal_unsynced_records 3",
            "rt_journal_unsynced_age_seconds 1.5",
            "rt_journal_fsync_interval_seconds 0.05",
            "rt_journal_fsync_errors_total 1",
            "rt_bus_subscriber_overflows_total 4",
            "rt_anomaly{figure=\"md_messages_per_s.binance_spot\"} 1",
            "rt_anomaly_value{figure=\"md_messages_per_s.binance_spot\"} 0",
            "rt_anomaly_low{figure=\"md_messages_per_s.binance_spot\"} 52.5",
            "rt_anomaly_high{figure=\"md_messages_per_s.binance_spot\"} 261.6",
            // Buckets are cumulative: 800 ns under 1 us, the two 3 us under 5 us, 40 us under
            // 50 us, the 2 s one only in +Inf.
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"0.000001\"} 1",
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"0.0000025\"} 1",
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"0.000005\"} 3",
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"0.00005\"} 4",
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"1\"} 4",
            "rt_stage_latency_seconds_bucket{stage=\"tick_to_order\",le=\"+Inf\"} 5",
            "rt_stage_latency_seconds_count{stage=\"tick_to_order\"} 5",
            "rt_stage_latency_seconds_count{stage=\"order_to_ack\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Per exchange when the feeds report it: no unlabelled total beside (sum() would count
        // it twice).
        assert!(
            !text.lines().any(|l| l == "rt_book_breaks_total 3"),
            "{text}"
        );
        // Label values are escaped; each family is declared once, before its samples.
        assert!(text.contains("engine=\"eng\\\"1\""), "{text}");
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(declared.insert(name.to_owned()), "{name} declared twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{name} has no TYPE before it");
            }
        }
        let sum = text
            .lines()
            .find(|l| l.starts_with("rt_stage_latency_seconds_sum{stage=\"tick_to_order\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default();
        assert!((sum - 2.0000468).abs() < 0.01, "sum {sum}");
    }

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_last_page_over_http() {
        let exporter = Exporter::start("127.0.0.1:0").unwrap();
        exporter.page.set("rt_up 1\n".to_owned());
        let reply = get(exporter.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("Content-Type: text/plain; version=0.0.4"),
            "{reply}"
        );
        assert!(reply.ends_with("\r\n\r\nrt_up 1\n"), "{reply}");
        exporter.page.set("rt_up 2\n".to_owned());
        let reply = get(exporter.addr, "GET /metrics?x=1 HTTP/1.1\r\n\r\n");
        assert!(reply.ends_with("rt_up 2\n"), "{reply}");
        let reply = get(exporter.addr, "GET / HTTP/1.1\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        let reply = get(exporter.addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
        // A client that connects and says nothing costs a timeout, not the server.
        let idle = TcpStream::connect(exporter.addr).unwrap();
        let reply = get(exporter.addr, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(reply.ends_with("rt_up 2\n"), "{reply}");
        drop(idle);
    }

    #[test]
    fn a_bad_or_taken_address_is_named() {
        let err = Exporter::start("localhost").unwrap_err();
        assert!(
            err.to_string()
                .contains("\"localhost\" is not an address and port"),
            "{err}"
        );
        let first = Exporter::start("127.0.0.1:0").unwrap();
        let err = Exporter::start(&first.addr.to_string()).unwrap_err();
        assert!(err.to_string().contains("cannot listen"), "{err}");
    }
}
