//! `appliance._engine`: the engine's Rust code, callable from Python (built by maturin).
//!
//! Only bindings live here; the contract itself is `rt-manifest`, which knows nothing of Python.
//! Python code imports these through `appliance`, never `_engine` directly.
//!
//! - `load_manifest(text: str) -> dict`: loads a manifest exactly as `rt-engine` does and returns
//!   a summary; raises `ManifestError` (a `ValueError`) listing every problem, one per line.
//! - `validate_manifest(text: str, base: str | None = None) -> list[dict]`: the semantic rules
//!   of the contract (`rt_manifest::validate`, the one implementation of the manifest-level
//!   rules) as a list of `{"path", "rule", "message"}`, empty for a valid manifest; with `base`,
//!   also the files the manifest names, resolved against it. Raises `ManifestError` for a
//!   structural problem (JSON, version, hash, a field of the wrong shape).
//! - `manifest_schema() -> str`: the manifest's JSON Schema as JSON text.
//! - `run_backtest(manifest_text, files, progress=None, start_ns=None, end_ns=None,
//!   onnx_library=None) -> dict`:
//!   replays recorded files (one stream) through the manifest's strategies with the core's
//!   backtest driver, the GIL released, trading only in the window `[start_ns, end_ns)` of
//!   local receive time (earlier events warm the books up); returns columns (lists) of orders,
//!   fills, equity and marks, plus summary, counters and window (asked for, and the first and
//!   last events traded). Model strategies run their ONNX models through rt-model on
//!   `onnx_library`. Raises `ManifestError` for a bad manifest (a model file missing or changed
//!   included), `WindowError` (a `BacktestError`) for a window without data, `ModelError` for a
//!   model or library that cannot be loaded or does not fit, and `BacktestError` (a
//!   `RuntimeError`) otherwise.
//! - `capture_info(path) -> dict`: what a capture or native file holds (format, symbols, time
//!   range, counts by kind, decode errors, sequence gaps, market).
//! - `compute_features(...) -> dict`, `FeatureError`: feature rows over recorded data (`features.rs`).
//! - `onnx_predict`, `onnx_runtime_info`, `ModelError`: ONNX inference through rt-model (`onnx.rs`).
//! - `parity_replay(manifest_text, log_files, md_files, config_diff, keep=200, onnx_library=None)
//!   -> dict`: a live run replayed from its flight recording with the recorded execution
//!   reports, decision by decision (`parity.rs`); raises `RecordingError` (a `ValueError`) for a
//!   recording that cannot be replayed, naming the file and line.
//! - `__version__`: the crate version.
//! - `MANIFEST_VERSION`: the manifest contract version this engine reads (`manifest_version`).

mod features;
mod onnx;
pub mod parity;

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rt_core::trader::side_as_str;
use rt_core::{Price, SCALE};
use rt_venues::replay::{self, Replay, ReplayError, Window};

create_exception!(
    appliance._engine,
    ManifestError,
    PyValueError,
    "A manifest the engine refuses. str(err) lists every problem, one per line: `path: message`."
);

create_exception!(
    appliance._engine,
    BacktestError,
    PyRuntimeError,
    "A backtest that could not run: its setup or its data files."
);

create_exception!(
    appliance._engine,
    WindowError,
    BacktestError,
    "A backtest window that is empty or holds no events of the data; the message names the \
     window and the data's time range."
);

create_exception!(
    appliance._engine,
    RecordingError,
    PyValueError,
    "A flight recording that cannot be replayed: str(err) names the file (and line) and why."
);

/// The one place where Rust errors become Python exceptions.
fn to_py_err(err: rt_manifest::ManifestError) -> PyErr {
    ManifestError::new_err(err.to_string())
}

fn replay_err(err: ReplayError) -> PyErr {
    use rt_core::trader::TraderError as SetupError;
    use rt_core::StrategyError;
    match err {
        ReplayError::BadWindow(_) | ReplayError::EmptyWindow { .. } => {
            WindowError::new_err(err.to_string())
        }
        // A model that cannot be loaded, or that does not fit its strategy.
        ReplayError::Setup(SetupError::Strategy {
            source: StrategyError::Model(_),
            ..
        }) => onnx::ModelError::new_err(err.to_string()),
        _ => BacktestError::new_err(err.to_string()),
    }
}

/// A 10^-8 fixed-point amount as a float, for analysis columns (exact values stay in Rust;
/// the summary carries exact decimal strings).
fn f(units: i64) -> f64 {
    units as f64 / SCALE as f64
}

/// Exact decimal string of a 10^-8 amount.
fn dec(units: i64) -> String {
    Price(units).to_string()
}

/// Replays recorded files (captures or native files) through the manifest's strategies,
/// trading in `[start_ns, end_ns)` (either side open when `None`).
/// `progress(done, total)` is called from time to time with bytes (or rows) read.
/// Model strategies load their models (paths relative to the working directory) through
/// rt-model on `onnx_library` (`None`: `ORT_DYLIB_PATH`, then beside the executable).
/// `exchange_files`: instead of `files`, one stream per manifest exchange (in name order), for
/// an engine of several exchanges; the streams are rebased onto one clock (the result's
/// `offsets_ns`, by exchange name).
#[pyfunction]
#[pyo3(signature = (manifest_text, files, progress=None, start_ns=None, end_ns=None, onnx_library=None, exchange_files=None))]
#[allow(clippy::too_many_arguments)]
fn run_backtest<'py>(
    py: Python<'py>,
    manifest_text: &str,
    files: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
    start_ns: Option<i64>,
    end_ns: Option<i64>,
    onnx_library: Option<PathBuf>,
    exchange_files: Option<Vec<Vec<PathBuf>>>,
) -> PyResult<Bound<'py, PyDict>> {
    let manifest = rt_manifest::load(manifest_text).map_err(to_py_err)?;
    let window = Window { start_ns, end_ns };
    let mut callback_error: Option<PyErr> = None;
    let mut models = rt_model::manifest_loader(PathBuf::from("."), onnx_library);
    let replay = py.detach(|| {
        let on_progress = |done, total| {
            if let (Some(cb), None) = (&progress, &callback_error) {
                if let Err(err) = Python::attach(|py| cb.call1(py, (done, total))) {
                    callback_error = Some(err);
                }
            }
        };
        match &exchange_files {
            Some(streams) => replay::run_exchanges_with(
                &manifest,
                streams,
                window,
                &mut models,
                50_000,
                on_progress,
            )
            .map(|m| (m.replay, m.offsets_ns)),
            None => {
                replay::run_window_with(&manifest, &files, window, &mut models, 50_000, on_progress)
                    .map(|r| (r, Vec::new()))
            }
        }
    });
    if let Some(err) = callback_error {
        return Err(err);
    }
    let (replay, offsets) = replay.map_err(replay_err)?;
    let out = to_dict(py, &replay)?;
    let shifted = PyDict::new(py);
    for (name, offset) in manifest.exchanges.keys().zip(&offsets) {
        shifted.set_item(name, offset)?;
    }
    out.set_item("offsets_ns", shifted)?;
    // The window asked for, and the first and last events traded in it.
    let w = PyDict::new(py);
    w.set_item("start_ns", start_ns)?;
    w.set_item("end_ns", end_ns)?;
    w.set_item("first_event_ns", replay.result.summary.start_ns)?;
    w.set_item("last_event_ns", replay.result.summary.end_ns)?;
    out.set_item("window", w)?;
    Ok(out)
}

/// Reads a capture or native file once and describes it: format, symbols, first and last
/// local receive and exchange times (ns, `None` without events), counts by kind, decode
/// errors, sequence gaps of the depth diffs, out-of-order events and the market the diffs look
/// like (`spot`, `usdm` or `None`).
#[pyfunction]
fn capture_info(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let info = py
        .detach(|| rt_venues::info(&path))
        .map_err(|e| BacktestError::new_err(e.to_string()))?;
    let c = &info.counts;
    let out = PyDict::new(py);
    out.set_item("format", info.format)?;
    out.set_item("symbols", &info.symbols)?;
    out.set_item("first_local_ns", info.first_local_ns)?;
    out.set_item("last_local_ns", info.last_local_ns)?;
    out.set_item("first_exchange_ns", info.first_exchange_ns)?;
    out.set_item("last_exchange_ns", info.last_exchange_ns)?;
    out.set_item("events", c.events)?;
    out.set_item("depth_diffs", c.depth_diffs)?;
    out.set_item("depth_levels", c.depth_levels)?;
    out.set_item("snapshots", c.snapshots)?;
    out.set_item("snapshot_levels", c.snapshot_levels)?;
    out.set_item("trades", c.trades)?;
    out.set_item("bbos", c.bbos)?;
    out.set_item("decode_errors", c.decode_errors)?;
    out.set_item("gaps", info.gaps)?;
    out.set_item("out_of_order", info.out_of_order)?;
    out.set_item("market", info.market.map(|m| m.as_str()))?;
    out.set_item("venue", info.venue.map(|v| v.name()))?;
    Ok(out)
}

/// Rebuilds every instrument's book of a capture (one file, or the chained files of one) and
/// checks it against the oracle the data carries: Binance bookTicker checkpoints, OKX and
/// Kraken checksums (rt_venues::verify). Returns the venue, decode errors and one dict per
/// instrument; raises BacktestError when a file cannot be read.
#[pyfunction]
fn verify_capture(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Bound<'_, PyDict>> {
    let v = py
        .detach(|| rt_venues::verify::verify(&paths))
        .map_err(|e| BacktestError::new_err(e.to_string()))?;
    let out = PyDict::new(py);
    out.set_item("venue", v.venue.name())?;
    out.set_item("passed", v.passed())?;
    out.set_item("decode_errors", v.decode_errors)?;
    out.set_item("first_decode_error", v.first_decode_error)?;
    let rows = pyo3::types::PyList::empty(py);
    for i in &v.instruments {
        let row = PyDict::new(py);
        row.set_item("instrument", &i.instrument)?;
        row.set_item("oracle", i.oracle)?;
        row.set_item("messages", i.messages)?;
        row.set_item("checked", i.checked)?;
        row.set_item("matched", i.matched)?;
        row.set_item("gaps", i.gaps)?;
        row.set_item("resyncs", i.resyncs)?;
        row.set_item("unverified", i.unverified)?;
        row.set_item("first_mismatch", &i.first_mismatch)?;
        rows.append(row)?;
    }
    out.set_item("instruments", rows)?;
    Ok(out)
}

/// Converts a recorded capture into the native event file; returns its counts and venue.
#[pyfunction]
fn convert_capture<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let (stats, venue) = py
        .detach(|| {
            let venue = rt_venues::verify::detect_venue(&src)?;
            rt_venues::convert(&src, &dst).map(|stats| (stats, venue))
        })
        .map_err(|e| BacktestError::new_err(e.to_string()))?;
    let out = PyDict::new(py);
    out.set_item("venue", venue.name())?;
    out.set_item("events", stats.events)?;
    out.set_item("rows", stats.rows)?;
    out.set_item("depth_diffs", stats.depth_diffs)?;
    out.set_item("depth_levels", stats.depth_levels)?;
    out.set_item("snapshots", stats.snapshots)?;
    out.set_item("snapshot_levels", stats.snapshot_levels)?;
    out.set_item("trades", stats.trades)?;
    out.set_item("bbos", stats.bbos)?;
    out.set_item("decode_errors", stats.decode_errors)?;
    Ok(out)
}

fn to_dict<'py>(py: Python<'py>, replay: &Replay) -> PyResult<Bound<'py, PyDict>> {
    let r = &replay.result;
    // The symbol, or `exchange:symbol` when two exchanges list the same name (OKX's and
    // Binance's BTCUSDT in one engine).
    let symbol = |id: u32| {
        r.instruments.get(id as usize).map_or_else(
            || format!("#{id}"),
            |i| {
                let shared = r
                    .instruments
                    .iter()
                    .any(|o| o.symbol == i.symbol && o.exchange != i.exchange);
                if shared {
                    format!("{}:{}", i.exchange, i.symbol)
                } else {
                    i.symbol.clone()
                }
            },
        )
    };
    let strategy = |id: u32| {
        r.strategies
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    };
    let out = PyDict::new(py);

    let orders = PyDict::new(py);
    orders.set_item("ts_ns", r.orders.iter().map(|o| o.ts).collect::<Vec<_>>())?;
    orders.set_item(
        "order_id",
        r.orders.iter().map(|o| o.order_id).collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "strategy",
        r.orders
            .iter()
            .map(|o| strategy(o.strategy))
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "client_id",
        r.orders.iter().map(|o| o.client_id).collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "symbol",
        r.orders
            .iter()
            .map(|o| symbol(o.instrument))
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "side",
        r.orders
            .iter()
            .map(|o| side_as_str(o.side))
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "price",
        r.orders.iter().map(|o| f(o.price.0)).collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "qty",
        r.orders.iter().map(|o| f(o.qty.0)).collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "kind",
        r.orders.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "status",
        r.orders
            .iter()
            .map(|o| o.status.as_str())
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "filled_qty",
        r.orders
            .iter()
            .map(|o| f(o.filled_qty.0))
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "reject_reason",
        r.orders
            .iter()
            .map(|o| o.reject_reason.map(|x| x.as_str()))
            .collect::<Vec<_>>(),
    )?;
    orders.set_item(
        "updated_ts_ns",
        r.orders.iter().map(|o| o.updated_ts).collect::<Vec<_>>(),
    )?;
    out.set_item("orders", orders)?;

    let fills = PyDict::new(py);
    fills.set_item("ts_ns", r.fills.iter().map(|x| x.ts).collect::<Vec<_>>())?;
    fills.set_item(
        "match_ts_ns",
        r.fills.iter().map(|x| x.match_ts).collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "order_id",
        r.fills.iter().map(|x| x.order_id).collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "strategy",
        r.fills
            .iter()
            .map(|x| strategy(x.strategy))
            .collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "symbol",
        r.fills
            .iter()
            .map(|x| symbol(x.instrument))
            .collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "side",
        r.fills
            .iter()
            .map(|x| side_as_str(x.side))
            .collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "price",
        r.fills.iter().map(|x| f(x.price.0)).collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "qty",
        r.fills.iter().map(|x| f(x.qty.0)).collect::<Vec<_>>(),
    )?;
    fills.set_item(
        "liquidity",
        r.fills
            .iter()
            .map(|x| if x.maker { "maker" } else { "taker" })
            .collect::<Vec<_>>(),
    )?;
    fills.set_item("fee", r.fills.iter().map(|x| f(x.fee)).collect::<Vec<_>>())?;
    out.set_item("fills", fills)?;

    let equity = PyDict::new(py);
    equity.set_item("ts_ns", r.equity.iter().map(|e| e.ts).collect::<Vec<_>>())?;
    equity.set_item(
        "equity",
        r.equity.iter().map(|e| f(e.equity)).collect::<Vec<_>>(),
    )?;
    equity.set_item(
        "realised_pnl",
        r.equity
            .iter()
            .map(|e| f(e.realised_pnl))
            .collect::<Vec<_>>(),
    )?;
    equity.set_item(
        "unrealised_pnl",
        r.equity
            .iter()
            .map(|e| f(e.unrealised_pnl))
            .collect::<Vec<_>>(),
    )?;
    equity.set_item(
        "fees",
        r.equity.iter().map(|e| f(e.fees)).collect::<Vec<_>>(),
    )?;
    equity.set_item(
        "gross_exposure",
        r.equity
            .iter()
            .map(|e| f(e.gross_exposure))
            .collect::<Vec<_>>(),
    )?;
    out.set_item("equity", equity)?;

    let marks = PyDict::new(py);
    marks.set_item(
        "ts_ns",
        replay.marks.iter().map(|m| m.ts).collect::<Vec<_>>(),
    )?;
    marks.set_item(
        "symbol",
        replay
            .marks
            .iter()
            .map(|m| symbol(m.instrument))
            .collect::<Vec<_>>(),
    )?;
    marks.set_item(
        "mid",
        replay.marks.iter().map(|m| f(m.mid.0)).collect::<Vec<_>>(),
    )?;
    marks.set_item(
        "position",
        replay
            .marks
            .iter()
            .map(|m| f(m.position.0))
            .collect::<Vec<_>>(),
    )?;
    out.set_item("marks", marks)?;

    let risk = PyDict::new(py);
    risk.set_item(
        "ts_ns",
        r.risk_events.iter().map(|e| e.ts).collect::<Vec<_>>(),
    )?;
    risk.set_item(
        "from",
        r.risk_events
            .iter()
            .map(|e| e.from.as_str())
            .collect::<Vec<_>>(),
    )?;
    risk.set_item(
        "to",
        r.risk_events
            .iter()
            .map(|e| e.to.as_str())
            .collect::<Vec<_>>(),
    )?;
    risk.set_item(
        "cause",
        r.risk_events
            .iter()
            .map(|e| e.cause.as_str())
            .collect::<Vec<_>>(),
    )?;
    out.set_item("risk_events", risk)?;

    let s = &r.summary;
    let summary = PyDict::new(py);
    summary.set_item("pnl", dec(s.pnl))?;
    summary.set_item("realised_pnl", dec(s.realised_pnl))?;
    summary.set_item("unrealised_pnl", dec(s.unrealised_pnl))?;
    summary.set_item("fees", dec(s.fees))?;
    summary.set_item("turnover", dec(s.turnover))?;
    summary.set_item("max_drawdown", dec(s.max_drawdown))?;
    summary.set_item("orders_placed", r.counters.orders_placed)?;
    summary.set_item("orders_sent", s.orders_sent)?;
    summary.set_item("orders_rejected", s.orders_rejected)?;
    summary.set_item("fills", s.fills)?;
    summary.set_item("fill_ratio", s.fill_ratio)?;
    summary.set_item("open_orders", s.open_orders)?;
    summary.set_item("final_risk_state", s.final_risk_state.as_str())?;
    let positions = PyDict::new(py);
    for (i, qty) in s.positions.iter().enumerate() {
        positions.set_item(symbol(i as u32), qty.to_string())?;
    }
    summary.set_item("final_position", positions)?;
    // The engine's own P&L per instrument (contracts valued by their terms), exact decimals.
    let by_instrument = PyDict::new(py);
    for (i, pnl) in s.pnl_by_instrument.iter().enumerate() {
        by_instrument.set_item(symbol(i as u32), dec(*pnl))?;
    }
    summary.set_item("pnl_by_instrument", by_instrument)?;
    let rejections = PyDict::new(py);
    for (reason, n) in &s.rejections {
        rejections.set_item(reason.as_str(), n)?;
    }
    summary.set_item("rejections", rejections)?;
    out.set_item("summary", summary)?;

    let c = &r.counters;
    let counters = PyDict::new(py);
    for (name, value) in [
        ("events", c.events),
        ("rows", c.rows()),
        ("book_updates", c.book_updates),
        ("diffs_applied", c.diffs_applied),
        ("diffs_stale", c.diffs_stale),
        ("gaps", c.gaps),
        ("invalid", c.invalid),
        ("book_crossings", c.crossings),
        ("book_crossings_repaired", c.crossings_repaired),
        ("resyncs", c.resyncs),
        ("trades", c.trades),
        ("bbos", c.bbos),
        ("bbos_stale", c.bbos_stale),
        ("strategy_calls", c.strategy_calls),
        ("orders_placed", c.orders_placed),
        ("orders_rejected", c.orders_rejected),
        ("fills", c.fills),
        ("risk_transitions", c.risk_transitions),
        ("records_dropped", c.records_dropped),
        ("warmup_events", c.warmup_events),
        ("model_predictions", c.model_predictions),
        ("model_errors", c.model_errors),
        ("data_errors", replay.data_errors),
    ] {
        counters.set_item(name, value)?;
    }
    out.set_item("counters", counters)?;
    Ok(out)
}

/// Loads and validates a manifest (JSON text) and returns its summary: engine_id, host, mode,
/// deployment, content_sha256, exchanges, strategies, instruments ("exchange:symbol").
#[pyfunction]
fn load_manifest<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let manifest = rt_manifest::load(text).map_err(to_py_err)?;
    let summary = PyDict::new(py);
    summary.set_item("engine_id", &manifest.engine.id)?;
    summary.set_item("host", &manifest.host.name)?;
    summary.set_item("mode", manifest.deployment.mode.as_str())?;
    summary.set_item("deployment", &manifest.deployment.name)?;
    summary.set_item("content_sha256", &manifest.content_sha256)?;
    summary.set_item("exchanges", manifest.exchanges.keys().collect::<Vec<_>>())?;
    summary.set_item("strategies", manifest.strategies.keys().collect::<Vec<_>>())?;
    summary.set_item("instruments", manifest.instrument_ids())?;
    Ok(summary)
}

/// Every semantic violation of a manifest (JSON text), in document order, each as a dict of
/// `path`, `rule` and `message`; the files it names are checked too when `base` is given.
/// Structural problems raise `ManifestError`: there is no manifest to check the rules on.
#[pyfunction]
#[pyo3(signature = (text, base=None))]
fn validate_manifest<'py>(
    py: Python<'py>,
    text: &str,
    base: Option<PathBuf>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let manifest = rt_manifest::parse(text).map_err(to_py_err)?;
    let mut violations = rt_manifest::validate(&manifest);
    if let Some(base) = base {
        violations.extend(rt_manifest::files::check_files(&manifest, &base));
    }
    violations
        .into_iter()
        .map(|v| {
            let item = PyDict::new(py);
            item.set_item("path", v.path)?;
            item.set_item("rule", v.rule)?;
            item.set_item("message", v.message)?;
            Ok(item)
        })
        .collect()
}

/// The JSON Schema (draft 2020-12) of a manifest, as JSON text.
#[pyfunction]
fn manifest_schema() -> String {
    rt_manifest::schema().to_string()
}

/// Replays a flight recording with the recorded execution reports and compares decisions
/// (see `parity.rs`). `md_files`: each exchange's captures, in the manifest's exchange order.
#[pyfunction]
#[pyo3(signature = (manifest_text, log_files, md_files, config_diff, keep=200, onnx_library=None))]
fn parity_replay<'py>(
    py: Python<'py>,
    manifest_text: &str,
    log_files: Vec<PathBuf>,
    md_files: Vec<Vec<PathBuf>>,
    config_diff: Vec<String>,
    keep: usize,
    onnx_library: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    use parity::ParityError;
    let manifest = rt_manifest::load(manifest_text).map_err(to_py_err)?;
    let mut models = rt_model::manifest_loader(PathBuf::from("."), onnx_library);
    let out = py
        .detach(|| {
            parity::replay(
                &manifest,
                &mut models,
                &log_files,
                &md_files,
                &config_diff,
                keep,
            )
        })
        .map_err(|e| match e {
            ParityError::Setup(s) => replay_err(ReplayError::Setup(s)),
            other => RecordingError::new_err(other.to_string()),
        })?;
    let d = PyDict::new(py);
    for (k, v) in [
        ("inputs", out.inputs),
        ("md_events", out.md_events),
        ("md_skipped", out.md_skipped),
        ("execs", out.execs),
        ("fills", out.fills),
        ("timers", out.timers),
        ("commands", out.commands),
        ("gaps", out.gaps),
        ("live_decisions", out.live_decisions),
        ("replay_decisions", out.replay_decisions),
        ("matched", out.matched),
        ("divergence_count", out.divergence_count),
    ] {
        d.set_item(k, v)?;
    }
    d.set_item("matched_before_first", out.matched_before_first)?;
    d.set_item("first_ns", out.first_ts)?;
    d.set_item("last_ns", out.last_ts)?;
    if let Some(sm) = &out.summary {
        let summary = PyDict::new(py);
        summary.set_item("pnl", dec(sm.pnl))?;
        summary.set_item("realised_pnl", dec(sm.realised_pnl))?;
        summary.set_item("unrealised_pnl", dec(sm.unrealised_pnl))?;
        summary.set_item("fees", dec(sm.fees))?;
        summary.set_item("orders_sent", sm.orders_sent)?;
        summary.set_item("fills", sm.fills)?;
        summary.set_item("maker_fills", sm.maker_fills)?;
        summary.set_item("fill_ratio", sm.fill_ratio)?;
        summary.set_item("final_risk_state", sm.final_risk_state.as_str())?;
        let positions = PyDict::new(py);
        for (sym, qty) in out.symbols.iter().zip(&sm.positions) {
            positions.set_item(sym, qty.to_string())?;
        }
        summary.set_item("final_position", positions)?;
        d.set_item("summary", summary)?;
    }
    let mut divs = Vec::new();
    for v in &out.divergences {
        let x = PyDict::new(py);
        x.set_item("input", v.input)?;
        x.set_item("input_ns", v.input_ts)?;
        x.set_item("after", &v.input_text)?;
        x.set_item("slot", v.slot)?;
        x.set_item("live", v.live.as_ref().map(parity::describe))?;
        x.set_item("replay", v.replay.as_ref().map(parity::describe))?;
        x.set_item(
            "live_context",
            v.live.as_ref().and_then(parity::describe_context),
        )?;
        x.set_item(
            "replay_context",
            v.replay.as_ref().and_then(parity::describe_context),
        )?;
        x.set_item("cause", v.cause.as_str())?;
        x.set_item("detail", &v.detail)?;
        divs.push(x);
    }
    d.set_item("divergences", divs)?;
    Ok(d)
}

#[pymodule]
fn _engine(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(load_manifest, module)?)?;
    module.add_function(wrap_pyfunction!(validate_manifest, module)?)?;
    module.add_function(wrap_pyfunction!(manifest_schema, module)?)?;
    module.add_function(wrap_pyfunction!(run_backtest, module)?)?;
    module.add_function(wrap_pyfunction!(convert_capture, module)?)?;
    module.add_function(wrap_pyfunction!(capture_info, module)?)?;
    module.add_function(wrap_pyfunction!(verify_capture, module)?)?;
    module.add_function(wrap_pyfunction!(parity_replay, module)?)?;
    module.add("RecordingError", module.py().get_type::<RecordingError>())?;
    module.add("BacktestError", module.py().get_type::<BacktestError>())?;
    module.add("WindowError", module.py().get_type::<WindowError>())?;
    module.add("ManifestError", module.py().get_type::<ManifestError>())?;
    onnx::register(module)?;
    features::register(module)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MANIFEST_VERSION", rt_manifest::SUPPORTED_VERSION)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EXAMPLE: &str = include_str!("../../../tests/contract/example.manifest.json");

    /// `text` with its content hash brought up to date.
    fn rehash(text: &str) -> String {
        let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
        value["content_sha256"] = rt_manifest::content_sha256(&value).into();
        value.to_string()
    }

    #[test]
    fn module_loads_manifests_and_raises_manifest_error() {
        Python::initialize();
        Python::attach(|py| {
            let module = PyModule::new(py, "_engine").unwrap();
            _engine(&module).unwrap();
            let load = module.getattr("load_manifest").unwrap();

            let summary = load.call1((EXAMPLE,)).unwrap();
            let summary = summary.cast::<PyDict>().unwrap();
            let get = |key: &str| summary.get_item(key).unwrap().unwrap().to_string();
            assert_eq!(get("engine_id"), "spot_a");
            assert_eq!(get("mode"), "live");
            assert_eq!(get("instruments"), "['binance_spot:BTCUSDT']");

            let err = load.call1(("{",)).unwrap_err();
            assert!(err.is_instance_of::<ManifestError>(py));
            assert!(err.is_instance_of::<PyValueError>(py));
            assert_eq!(
                err.value(py).to_string(),
                "not valid JSON at line 1 column 1: EOF while parsing an object"
            );
            let validate = module.getattr("validate_manifest").unwrap();
            assert_eq!(validate.call1((EXAMPLE,)).unwrap().to_string(), "[]");
            let bad = EXAMPLE.replace("\"gateway\": 4", "\"gateway\": 9");
            let bad = rehash(&bad);
            let found = validate.call1((bad.as_str(),)).unwrap();
            assert_eq!(
                found.to_string(),
                "[{'path': 'host.threads.gateway', 'rule': 'thread.hot_core_isolated', \
                 'message': 'core 9 is not in cpu.isolated [2, 3, 4, 5, 6, 7] (hot threads must \
                 run on isolated cores)'}]"
            );
            let err = validate.call1(("{",)).unwrap_err();
            assert!(err.is_instance_of::<ManifestError>(py));
            let schema = module.getattr("manifest_schema").unwrap().call0().unwrap();
            assert!(schema
                .to_string()
                .contains("\"title\":\"py_rt engine manifest (version 1)\""));
        });
    }
}
