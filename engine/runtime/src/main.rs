//! rt-engine: the py_rt engine binary.
//!
//! - `rt-engine check --manifest FILE` loads a manifest exactly as the engine will at start-up
//!   (models included: `--onnxruntime PATH`, see `models`) and prints what it would run, or
//!   every reason the manifest is refused.
//! - `rt-engine run --manifest FILE` trades it (see `engine`).
//! - `rt-engine sim --manifest FILE --exchange NAME` runs the sim venue of an exchange.
//! - `rt-engine record --manifest FILE --exchange NAME --out DIR` records an exchange's market
//!   data to capture files (see `record`).
//! - `rt-engine ctl --endpoint E status|pause|resume|flatten|kill|tighten` talks to a
//!   running engine's control socket (the roll-out's health gate).
//! - `rt-engine schema` prints the manifest's JSON Schema.
//!
//! Exit codes: 0 success; 1 I/O or an unreachable engine; 2 a refused manifest, a refused
//! command or a usage error; 3 (ctl status) reachable but not as expected.

mod anomaly;
mod bus;
mod catchup;
mod clock;
mod ctl;
mod delivery;
mod engine;
mod feed;
mod fees;
mod flight;
mod gateway;
mod http;
mod journal;
mod journal_ring;
mod latency;
mod metrics;
mod models;
mod ratelimit;
mod reconcile;
mod record;
mod shared;
mod summary;
mod sys;
mod tls;
mod trader;
mod wire;
mod ws_orders;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// `--version`: the crate version and the build profile, so that whoever reads a latency figure
/// (`appliance run` labels its table with it) knows whether a debug build measured it.
const VERSION: &str = if cfg!(debug_assertions) {
    concat!(env!("CARGO_PKG_VERSION"), " (debug build)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (release build)")
};

#[derive(Debug, Parser)]
#[command(name = "rt-engine", version = VERSION, about = "The py_rt trading engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate a manifest; print what the engine would run, or why it is refused.
    Check {
        /// The manifest JSON file (build/<deployment>/<host>.manifest.json).
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The ONNX Runtime library for model strategies (default: ORT_DYLIB_PATH, then the
        /// release's lib/ beside this executable).
        #[arg(long, value_name = "PATH")]
        onnxruntime: Option<PathBuf>,
    },
    /// Trade a manifest: feeds, strategy, gateway, bus, journal, until SIGTERM.
    Run {
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// Lock the process's memory (mlockall); an error in live mode if it fails.
        #[arg(long)]
        mlockall: bool,
        /// Stop by itself after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Log feed state changes.
        #[arg(long, short)]
        verbose: bool,
        /// The ONNX Runtime library for model strategies (default: ORT_DYLIB_PATH, then the
        /// release's lib/ beside this executable).
        #[arg(long, value_name = "PATH")]
        onnxruntime: Option<PathBuf>,
    },
    /// Run the sim venue of one exchange of a manifest (its venue must be `sim`).
    Sim {
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The exchange (manifest `exchanges.<name>`); default: the only sim exchange.
        #[arg(long)]
        exchange: Option<String>,
        /// Replay speed: 1 real time, k times faster, 0 or `max` as fast as possible
        /// (default: the manifest's `sim.speed`).
        #[arg(long)]
        speed: Option<String>,
        /// Inject a fault at a market-data frame count, e.g. `2000:kind=gap`,
        /// `5000:kind=drop`, `1000:kind=stall&ms=3000` (repeatable).
        #[arg(long = "fault", value_name = "FRAME:FAULT")]
        faults: Vec<String>,
        /// Stop when the capture ends (default: keep serving, with no more market data).
        #[arg(long)]
        exit_at_end: bool,
    },
    /// Record an exchange's market data (raw frames and REST snapshots) to rotated gzip
    /// captures in the format of data/, listed with their sha256 in DIR/manifest.json.
    Record {
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The exchange (manifest `exchanges.<name>`).
        #[arg(long)]
        exchange: String,
        /// The directory of the files and their manifest.json.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Stop by itself after this many seconds (default: at SIGINT/SIGTERM).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Start a new file after this many MB (10^6 bytes) compressed.
        #[arg(long, value_name = "N")]
        rotate_mb: Option<f64>,
        /// Start a new file after this many minutes.
        #[arg(long, value_name = "M")]
        rotate_minutes: Option<f64>,
    },
    /// Talk to a running engine's control socket; prints the reply as JSON.
    Ctl {
        /// The control endpoint (manifest `engine.bus.control`).
        #[arg(long)]
        endpoint: String,
        /// Per-attempt timeout.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        timeout_ms: u64,
        #[command(subcommand)]
        ask: CtlAsk,
    },
    /// Print the JSON Schema (draft 2020-12) of the manifest.
    Schema,
}

#[derive(Debug, Subcommand)]
enum CtlAsk {
    /// The engine's status; with expectations, the health gate.
    Status {
        /// Healthy only when this manifest hash is running.
        #[arg(long, value_name = "SHA256")]
        expect_hash: Option<String>,
        /// Healthy only in this risk state.
        #[arg(long, value_parser = ["active", "reducing", "halted"])]
        expect_state: Option<String>,
        /// Retry until healthy for up to this long (0: one attempt).
        #[arg(long, default_value_t = 0, value_name = "MS")]
        wait_ms: u64,
    },
    /// Cancel every open order and send no new ones until resumed.
    Pause,
    /// Trade again (also lifts a HALTED state).
    Resume,
    /// Cancel every open order and close every position.
    Flatten,
    /// Engage the kill switch: cancel everything, HALTED until resumed.
    Kill,
    /// Tighten a risk limit (a looser value is refused), e.g. `instruments.BTCUSDT.max_position 0.001`.
    Tighten { limit: String, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// A refused manifest.
const EXIT_REFUSED: u8 = 2;

fn main() -> ExitCode {
    tls::install_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Check {
            manifest,
            format,
            onnxruntime,
        } => check(&manifest, format, onnxruntime.as_deref(), &mut stdout),
        Command::Run {
            manifest,
            mlockall,
            duration,
            verbose,
            onnxruntime,
        } => {
            drop(stdout);
            // The TLS config for https:// and wss:// venues, with RT_ENGINE_EXTRA_CA's CAs.
            tls::shared().map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
            let duration = match duration {
                Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
                Some(s) => anyhow::bail!("--duration: {s} is not a positive number of seconds"),
                None => None,
            };
            let code = engine::run(&engine::RunOptions {
                manifest_path: manifest,
                mlockall,
                duration,
                verbose,
                onnxruntime,
            })?;
            Ok(ExitCode::from(code))
        }
        Command::Sim {
            manifest,
            exchange,
            speed,
            faults,
            exit_at_end,
        } => {
            drop(stdout);
            sim(&manifest, exchange, speed, &faults, exit_at_end)
        }
        Command::Record {
            manifest,
            exchange,
            out,
            duration,
            rotate_mb,
            rotate_minutes,
        } => {
            drop(stdout);
            tls::shared().map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
            let positive = |v: Option<f64>, what: &str| match v {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                Some(x) => Err(format!("{what}: {x} is not a positive number")),
                None => Ok(None),
            };
            let checked = (|| {
                Ok::<_, String>((
                    positive(duration, "--duration")?,
                    positive(rotate_mb, "--rotate-mb")?,
                    positive(rotate_minutes, "--rotate-minutes")?,
                ))
            })();
            let (duration, rotate_mb, rotate_minutes) = match checked {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_REFUSED));
                }
            };
            let Some(manifest) = load_or_refuse(&manifest)? else {
                return Ok(ExitCode::from(EXIT_REFUSED));
            };
            let rotation = record::Rotation {
                max_bytes: rotate_mb.map(|mb| (mb * 1e6) as u64),
                max_age_ns: rotate_minutes.map(|m| (m * 60e9) as i64),
            };
            record::run(
                &manifest,
                &record::RecordOptions {
                    exchange,
                    out,
                    duration: duration.map(Duration::from_secs_f64),
                    rotation,
                },
            )
        }
        Command::Ctl {
            endpoint,
            timeout_ms,
            ask,
        } => {
            drop(stdout);
            let (ask, expect, wait) = match ask {
                CtlAsk::Status {
                    expect_hash,
                    expect_state,
                    wait_ms,
                } => (
                    ctl::Ask::Status,
                    ctl::Expect {
                        hash: expect_hash,
                        state: expect_state,
                    },
                    wait_ms,
                ),
                CtlAsk::Pause => (ctl::Ask::Pause, ctl::Expect::default(), 0),
                CtlAsk::Resume => (ctl::Ask::Resume, ctl::Expect::default(), 0),
                CtlAsk::Flatten => (ctl::Ask::Flatten, ctl::Expect::default(), 0),
                CtlAsk::Kill => (ctl::Ask::Kill, ctl::Expect::default(), 0),
                CtlAsk::Tighten { limit, value } => (
                    ctl::Ask::Tighten { limit, value },
                    ctl::Expect::default(),
                    0,
                ),
            };
            Ok(ExitCode::from(ctl::run(
                &endpoint,
                &ask,
                &expect,
                Duration::from_millis(timeout_ms.max(1)),
                Duration::from_millis(wait),
            )))
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&rt_manifest::schema())?;
            writeln!(stdout, "{schema}").context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a manifest; `None` (the reasons printed) when it is refused.
fn load_or_refuse(path: &Path) -> anyhow::Result<Option<rt_manifest::Manifest>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    match rt_manifest::load(&text) {
        Ok(m) => Ok(Some(m)),
        Err(err) => {
            eprintln!("error: {}: refused:", path.display());
            for p in err.violations() {
                eprintln!("  - {p}");
            }
            Ok(None)
        }
    }
}

fn sim(
    path: &Path,
    exchange: Option<String>,
    speed: Option<String>,
    faults: &[String],
    exit_at_end: bool,
) -> anyhow::Result<ExitCode> {
    let Some(manifest) = load_or_refuse(path)? else {
        return Ok(ExitCode::from(EXIT_REFUSED));
    };
    let exchange = match exchange {
        Some(x) => x,
        None => {
            let sims: Vec<&String> = manifest
                .exchanges
                .iter()
                .filter(|(_, x)| x.venue == rt_manifest::model::Venue::Sim)
                .map(|(name, _)| name)
                .collect();
            match sims.as_slice() {
                [one] => (*one).clone(),
                [] => anyhow::bail!("{}: no exchange has venue sim", path.display()),
                _ => anyhow::bail!(
                    "{}: several sim exchanges ({}): choose one with --exchange",
                    path.display(),
                    sims.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let mut opts = rt_sim::SimOptions {
        exit_at_end,
        ..rt_sim::SimOptions::default()
    };
    if let Some(s) = speed {
        opts.speed = Some(s.parse().map_err(|e| anyhow::anyhow!("--speed: {e}"))?);
    }
    for f in faults {
        opts.faults
            .push(f.parse().map_err(|e| anyhow::anyhow!("--fault: {e}"))?);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("cannot install the SIGTERM handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("cannot install the SIGINT handler")?;
    match rt_sim::run_blocking(&manifest, &exchange, opts, stop) {
        Ok(report) => {
            println!("sim {exchange} stopped: {report:?}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: sim {exchange}: {e}");
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

fn check(
    path: &Path,
    format: Format,
    onnxruntime: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let start = Instant::now();
    let loaded = rt_manifest::load(&text);
    let load_time = start.elapsed();

    // A model that cannot be loaded refuses the manifest like any other problem.
    let loaded = loaded.and_then(|manifest| {
        let models = models::check(&manifest, onnxruntime);
        if models.problems.is_empty() {
            Ok((manifest, models))
        } else {
            Err(rt_manifest::ManifestError::Invalid(models.problems))
        }
    });
    let (manifest, models) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            let problems = err.violations();
            // stderr always gets the human form; --format json adds a machine form on stdout.
            let mut report = format!("error: {}: refused:\n", path.display());
            for problem in &problems {
                report.push_str(&format!("  - {problem}\n"));
            }
            eprint!("{report}");
            if format == Format::Json {
                let json = summary::refusal_json(path, &problems);
                writeln!(out, "{json}").context("cannot write to stdout")?;
            }
            return Ok(ExitCode::from(EXIT_REFUSED));
        }
    };
    let shown = match format {
        Format::Text => {
            let mut text = summary::text(path, &manifest, load_time);
            for line in &models.lines {
                text.push_str(line);
                text.push('\n');
            }
            text
        }
        Format::Json => {
            let mut json = summary::json(path, &manifest, load_time);
            json["models"] = models.json;
            json.to_string()
        }
    };
    writeln!(out, "{}", shown.trim_end()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
