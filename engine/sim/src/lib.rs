//! rt-sim: the sim venue, a local exchange that speaks Binance Spot's protocols on loopback.
//!
//! It replays a recorded capture (`exchanges.<name>.sim.capture`) and serves, on the
//! exchange's manifest endpoints:
//!
//! - **WebSocket market data** (`endpoints.ws`): the combined stream
//!   `/stream?streams=btcusdt@depth@100ms/btcusdt@trade/...` (frames as recorded, in the
//!   `{"stream":..,"data":..}` envelope) and the raw form `/ws/<stream>` (the `data` part),
//!   plus `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` messages. One shared replay,
//!   started with the sim, paced by the recorded `local_ns` spacing at the replay speed: a
//!   client connecting later gets frames from the current position.
//! - **REST** (`endpoints.rest`): `GET /api/v3/depth` answered from the sim's own book (a
//!   `BookSync` seeded by the capture's snapshots and advanced by the replayed diffs) with
//!   `lastUpdateId` = the last applied diff's `u`, so a client syncing by Binance's rules
//!   bridges exactly; order entry (`POST`/`DELETE /api/v3/order`, `GET`/`DELETE
//!   /api/v3/openOrders`) matched by rt-core's `Matcher` (one per symbol, queue-position model,
//!   fees from the instrument) after `sim.latency_us` on the capture clock (an order received
//!   when the replay is at capture time `t` reaches the matcher at `t + latency`: after the
//!   frames recorded before that, before the ones recorded at or after it, as in backtests; at
//!   speed `k` that is `latency / k` of wall time); `POST /api/v3/userDataStream` and the
//!   user data stream `/ws/<listenKey>` with `executionReport`s; for recovering what a client
//!   missed, `GET /api/v3/order` (an open order, or a finished one the venue still remembers;
//!   `-2013` otherwise) and `GET /api/v3/myTrades` (the account's fills, with the trade ids,
//!   commissions and maker flags their reports carried; `orderId`, `fromId`, `limit` as on
//!   Binance). Requests are verified with the exchange's credentials when the manifest has
//!   them (HMAC-SHA256 or Ed25519 keys, `X-MBX-APIKEY`), and accepted unsigned when it has none
//!   (paper_local).
//! - **Rate limits** as Binance's (`limits`): every REST answer carries the used weight
//!   (`X-MBX-USED-WEIGHT-1M`), order answers the order counts (`X-MBX-ORDER-COUNT-10S`,
//!   `-1D`); past the manifest's `rate_limits` a request gets HTTP 429 with `Retry-After`, and
//!   one asking again before then HTTP 418 (an IP ban, `Retry-After` until it ends).
//! - **Faults** ([`Fault`]), from [`SimOptions::faults`] or at runtime with
//!   `POST /sim/fault?kind=...` on the REST port; `GET /sim/status` shows the counters.
//!
//! [`run_blocking`] is the whole thing for `rt-engine sim`; [`Sim::bind`] + [`Sim::run`] let a
//! caller (a test) bind port 0 and learn the addresses first.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rt_manifest::model::{Exchange, Venue as VenueKind};
use rt_manifest::{Fixed, Manifest};
use rt_venues::binance::signing::Verifier;

mod books;
mod fault;
pub mod futures_account;
mod kraken;
mod limits;
mod metadata;
mod okx;
mod okx_account;
mod okx_orders;
mod server;
pub mod venue;

pub use fault::{Fault, ScheduledFault};
pub use limits::RateLimitFault;

/// Speeds at or above this factor replay as fast as possible (the manifest's convention:
/// `speed: "1000000"`).
pub const MAX_SPEED_FACTOR: i64 = 1_000_000;

/// Everything that can go wrong setting up or running the sim.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("manifest {}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        source: rt_manifest::ManifestError,
    },
    #[error("manifest {}: {source}", path.display())]
    ManifestIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no exchange {exchange:?} in the manifest (it has: {known})")]
    UnknownExchange { exchange: String, known: String },
    #[error(
        "exchanges.{exchange}: venue is {venue}, not sim (the simulator serves sim venues only)"
    )]
    NotSim {
        exchange: String,
        venue: &'static str,
    },
    #[error("exchanges.{exchange}.sim is null (a sim venue needs capture, speed, latency_us)")]
    NoSimSection { exchange: String },
    #[error("exchanges.{exchange}.endpoints.{key} = {url:?}: {reason}")]
    Endpoint {
        exchange: String,
        key: &'static str,
        url: String,
        reason: String,
    },
    #[error("exchanges.{exchange}.credentials.{field} = {reference:?}: {reason}")]
    Credentials {
        exchange: String,
        field: &'static str,
        reference: String,
        reason: String,
    },
    #[error("capture: {0}")]
    Capture(#[from] rt_venues::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error("fault {spec:?}: {reason}")]
    Fault { spec: String, reason: String },
    #[error("speed {text:?}: {reason}")]
    Speed { text: String, reason: String },
    #[error("the capture reader thread failed: {0}")]
    Reader(String),
}

/// How fast the capture is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// Recorded spacing divided by this factor (1 = real time); positive.
    Factor(Fixed),
    /// No pacing: as fast as the slowest market-data client reads.
    Max,
}

impl Speed {
    /// The manifest's `sim.speed` (factors from [`MAX_SPEED_FACTOR`] up mean [`Speed::Max`]).
    pub fn from_fixed(speed: Fixed) -> Speed {
        if speed.raw() >= MAX_SPEED_FACTOR * Fixed::SCALE || speed.raw() <= 0 {
            Speed::Max
        } else {
            Speed::Factor(speed)
        }
    }
}

impl FromStr for Speed {
    type Err = SimError;
    /// `"0"` or `"max"` for as fast as possible, otherwise a positive decimal factor.
    fn from_str(text: &str) -> Result<Speed, SimError> {
        if text == "max" {
            return Ok(Speed::Max);
        }
        let fixed = Fixed::parse(text).map_err(|e| SimError::Speed {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        if fixed.raw() < 0 {
            return Err(SimError::Speed {
                text: text.to_owned(),
                reason: "must be 0 (as fast as possible) or positive".into(),
            });
        }
        Ok(Speed::from_fixed(fixed))
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(x) => write!(f, "{x}x"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// Options on top of the manifest.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Overrides `sim.speed`.
    pub speed: Option<Speed>,
    /// Overrides `sim.capture` (relative paths are relative to the working directory).
    pub capture: Option<PathBuf>,
    /// Overrides `sim.latency_us`.
    pub latency_us: Option<u64>,
    /// Faults applied at given frame counts.
    pub faults: Vec<ScheduledFault>,
    /// Stop when the capture is replayed (and the orders in flight are answered); otherwise
    /// keep serving (frozen book, orders still matched) until the stop signal.
    pub exit_at_end: bool,
    /// Checksummed venues' captures to serve beside Binance's (venue `okx` or `kraken`, path);
    /// see `books`. A manifest exchange of such a venue whose `endpoints.ws` is this sim's
    /// WebSocket address is served too, from the bundled capture beside its metadata file.
    pub book_captures: Vec<(String, PathBuf)>,
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Capture lines replayed (frames and snapshots).
    pub frames_replayed: u64,
    /// Market-data frames published to the stream (after injected gaps).
    pub frames_published: u64,
    /// Frames written to client connections (summed over connections).
    pub frames_sent: u64,
    /// Depth diffs held back by `gap` faults.
    pub diffs_skipped: u64,
    /// Frames sent a second time by `duplicate` faults.
    pub frames_duplicated: u64,
    /// Malformed frames sent by `malformed` faults.
    pub malformed_sent: u64,
    /// Capture lines the decoder refused (still published as recorded).
    pub decode_errors: u64,
    pub ws_connections: u64,
    /// WebSocket API: `session.logon`s accepted, requests verified by their signature, and
    /// requests without one on a logged-on connection.
    pub ws_api_logons: u64,
    pub ws_api_signed: u64,
    pub ws_api_unsigned: u64,
    /// Connections closed by `drop` faults.
    pub ws_dropped: u64,
    /// Connections closed because they fell too far behind the stream.
    pub ws_lagged: u64,
    pub http_requests: u64,
    pub snapshots_served: u64,
    /// New orders received (accepted or not).
    pub orders: u64,
    pub orders_rejected: u64,
    pub cancels: u64,
    pub fills: u64,
    pub exec_reports: u64,
    pub faults_applied: u64,
    /// The whole capture was replayed.
    pub replay_finished: bool,
}

/// API key and what verifies its signatures (the HMAC secret, or the Ed25519 public key
/// derived from the private key), resolved from their references. Never printed.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub api_key: String,
    pub key: rt_venues::binance::signing::Verifier,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Everything the server needs, checked.
#[derive(Debug)]
pub(crate) struct Config {
    pub exchange_name: String,
    pub exchange: Exchange,
    pub capture: PathBuf,
    pub speed: Speed,
    pub latency_us: u64,
    pub credentials: Option<Credentials>,
    pub faults: Vec<ScheduledFault>,
    pub exit_at_end: bool,
    /// OKX and Kraken books served beside Binance's (`books`).
    pub books: books::BookVenues,
    /// OKX order entry on the OKX books (`okx_orders`), for a manifest OKX exchange whose
    /// `endpoints.rest` is the sim's.
    pub okx: Option<Arc<okx_orders::OkxDesk>>,
    /// OKX's and Kraken's instrument metadata (`metadata`), for their manifest exchanges whose
    /// `endpoints.rest` is the sim's.
    pub metadata: Arc<metadata::Served>,
}

/// A bound simulator, ready to [`run`](Sim::run).
#[derive(Debug)]
pub struct Sim {
    config: Config,
    ws: TcpListener,
    rest: TcpListener,
    ws_addr: SocketAddr,
    rest_addr: SocketAddr,
}

impl Sim {
    /// Checks the exchange's settings, resolves its credentials, opens the capture's path
    /// check, and binds both endpoints (port 0 picks a free port).
    pub fn bind(manifest: &Manifest, exchange: &str, opts: SimOptions) -> Result<Sim, SimError> {
        let ex = manifest
            .exchanges
            .get(exchange)
            .ok_or_else(|| SimError::UnknownExchange {
                exchange: exchange.to_owned(),
                known: manifest
                    .exchanges
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if ex.venue != VenueKind::Sim {
            return Err(SimError::NotSim {
                exchange: exchange.to_owned(),
                venue: ex.venue.as_str(),
            });
        }
        let sim = ex.sim.as_ref().ok_or_else(|| SimError::NoSimSection {
            exchange: exchange.to_owned(),
        })?;
        let ws_addr = endpoint(exchange, "ws", &ex.endpoints.ws, "ws://")?;
        let rest_addr = endpoint(exchange, "rest", &ex.endpoints.rest, "http://")?;
        if ws_addr == rest_addr && ws_addr.port() != 0 {
            return Err(SimError::Endpoint {
                exchange: exchange.to_owned(),
                key: "rest",
                url: ex.endpoints.rest.clone(),
                reason: "the same address as endpoints.ws; give them different ports".into(),
            });
        }
        let credentials = match &ex.credentials {
            None => None,
            Some(c) => {
                let secret = resolve(exchange, "api_secret", &c.api_secret)?;
                let key = Verifier::new(c.key_type.unwrap_or_default(), &secret).map_err(|e| {
                    SimError::Credentials {
                        exchange: exchange.to_owned(),
                        field: "api_secret",
                        reference: c.api_secret.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Some(Credentials {
                    api_key: resolve(exchange, "api_key", &c.api_key)?,
                    key,
                })
            }
        };
        let capture = opts
            .capture
            .clone()
            .unwrap_or_else(|| PathBuf::from(&sim.capture));
        // Fail now, not after binding, when the capture cannot be read.
        rt_venues::FrameReader::open(&capture)?;
        let books = books::BookVenues::load(
            &books::captures(manifest, ws_addr, &opts.book_captures),
            opts.speed.unwrap_or(Speed::from_fixed(sim.speed)),
        )?;
        let okx = okx_desk(manifest, rest_addr, &books)?;
        let metadata = Arc::new(metadata::Served::load(manifest, rest_addr)?);
        let config = Config {
            exchange_name: exchange.to_owned(),
            exchange: ex.clone(),
            capture,
            speed: opts.speed.unwrap_or(Speed::from_fixed(sim.speed)),
            latency_us: opts.latency_us.unwrap_or(sim.latency_us),
            credentials,
            faults: opts.faults,
            exit_at_end: opts.exit_at_end,
            books,
            okx,
            metadata,
        };
        let bind = |addr: SocketAddr| -> Result<(TcpListener, SocketAddr), SimError> {
            let listener =
                TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
            listener
                .set_nonblocking(true)
                .map_err(|source| SimError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| SimError::Bind { addr, source })?;
            Ok((listener, local))
        };
        let (ws, ws_addr) = bind(ws_addr)?;
        let (rest, rest_addr) = bind(rest_addr)?;
        Ok(Sim {
            config,
            ws,
            rest,
            ws_addr,
            rest_addr,
        })
    }

    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// `ws://host:port` as bound.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// `http://host:port` as bound.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// The replay speed in effect.
    pub fn speed(&self) -> Speed {
        self.config.speed
    }

    /// Serves until `stop` is set (or the capture ends, with `exit_at_end`), then stops
    /// cleanly and returns the counters. Blocks the calling thread (a current-thread tokio
    /// runtime inside).
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<SimReport, SimError> {
        server::run(self.config, self.ws, self.rest, stop)
    }
}

/// Binds the exchange's endpoints, prints `sim <exchange> listening ws=... rest=...`, and
/// serves until `stop` (see [`Sim::run`]).
pub fn run_blocking(
    manifest: &Manifest,
    exchange: &str,
    opts: SimOptions,
    stop: Arc<AtomicBool>,
) -> Result<SimReport, SimError> {
    let sim = Sim::bind(manifest, exchange, opts)?;
    println!(
        "sim {exchange} listening ws={} rest={}",
        sim.ws_url(),
        sim.rest_url()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    sim.run(stop)
}

/// Reads and loads a manifest with `rt_manifest::load` (hash and rules checked).
pub fn load_manifest(path: &Path) -> Result<Manifest, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::ManifestIo {
        path: path.to_owned(),
        source,
    })?;
    rt_manifest::load(&text).map_err(|source| SimError::Manifest {
        path: path.to_owned(),
        source,
    })
}

/// `ws://127.0.0.1:18443` -> a loopback socket address.
fn endpoint(
    exchange: &str,
    key: &'static str,
    url: &str,
    scheme: &str,
) -> Result<SocketAddr, SimError> {
    let fail = |reason: String| SimError::Endpoint {
        exchange: exchange.to_owned(),
        key,
        url: url.to_owned(),
        reason,
    };
    let rest = url.strip_prefix(scheme).ok_or_else(|| {
        fail(format!(
            "the simulator serves plain {scheme} (no TLS) on loopback"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| fail("no port".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| fail(format!("port {port:?} is not a number 0-65535")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse()
            .map_err(|_| fail(format!("host {host:?} is not an IP address or localhost")))?
    };
    if !ip.is_loopback() {
        return Err(fail(format!(
            "{ip} is not a loopback address (the simulator binds loopback only)"
        )));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Resolves `env:NAME` or `file:PATH`. The error names the reference, never the value.
/// OKX order entry for the manifest's OKX exchange whose `endpoints.rest` is the sim's REST
/// address `rest`, on the OKX books the sim replays; its credentials (key, secret, passphrase)
/// verify requests when it has them.
fn okx_desk(
    manifest: &Manifest,
    rest: SocketAddr,
    books: &books::BookVenues,
) -> Result<Option<Arc<okx_orders::OkxDesk>>, SimError> {
    for (name, ex) in &manifest.exchanges {
        let here = endpoint(name, "rest", &ex.endpoints.rest, "http://")
            .is_ok_and(|addr| addr == rest && addr.port() != 0);
        if ex.venue != VenueKind::Okx || !here {
            continue;
        }
        let keys = match &ex.credentials {
            None => None,
            Some(c) => Some(okx_orders::OkxKeys {
                key: resolve(name, "api_key", &c.api_key)?,
                secret: resolve(name, "api_secret", &c.api_secret)?.into_bytes(),
                passphrase: resolve(name, "passphrase", c.passphrase.as_deref().unwrap_or(""))?,
            }),
        };
        let desk = Arc::new(okx_orders::OkxDesk::new(ex, keys)?);
        if !books.attach_desk("okx", Arc::clone(&desk)) {
            return Err(SimError::Endpoint {
                exchange: name.clone(),
                key: "ws",
                url: ex.endpoints.ws.clone(),
                reason: "OKX order entry on the sim needs its OKX books: the same WebSocket \
                         address as the sim's"
                    .into(),
            });
        }
        return Ok(Some(desk));
    }
    Ok(None)
}

fn resolve(exchange: &str, field: &'static str, reference: &str) -> Result<String, SimError> {
    let fail = |reason: String| SimError::Credentials {
        exchange: exchange.to_owned(),
        field,
        reference: reference.to_owned(),
        reason,
    };
    let value = if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name).map_err(|e| fail(format!("environment variable {name}: {e}")))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read {path}: {e}")))?
    } else {
        return Err(fail(
            "not a reference (expected env:NAME or file:PATH)".into(),
        ));
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(fail("the referenced value is empty".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_must_be_plain_loopback() {
        assert_eq!(
            endpoint("x", "ws", "ws://127.0.0.1:18443", "ws://").unwrap(),
            "127.0.0.1:18443".parse().unwrap()
        );
        assert_eq!(
            endpoint("x", "rest", "http://localhost:0/", "http://").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            endpoint("x", "ws", "ws://[::1]:9", "ws://").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        for (url, needle) in [
            ("wss://127.0.0.1:1", "plain ws://"),
            ("ws://10.0.0.1:1", "not a loopback"),
            ("ws://127.0.0.1", "no port"),
            ("ws://127.0.0.1:x", "not a number"),
            ("ws://example.com:1", "not an IP"),
        ] {
            let err = endpoint("x", "ws", url, "ws://").unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.starts_with("exchanges.x.endpoints.ws"), "{err}");
        }
    }

    #[test]
    fn credential_references_resolve_without_showing_values() {
        let dir = std::env::temp_dir().join(format!("rt-sim-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let reference = format!("file:{}", file.display());
        assert_eq!(resolve("x", "api_secret", &reference).unwrap(), "s3cret");
        let err = resolve("x", "api_secret", "env:RT_SIM_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .to_string();
        assert!(err.contains("RT_SIM_SURELY_UNSET_VARIABLE"), "{err}");
        let err = resolve("x", "api_key", "literal").unwrap_err().to_string();
        assert!(err.contains("not a reference"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let creds = Credentials {
            api_key: "k".into(),
            key: Verifier::Hmac(b"s3cret".to_vec()),
        };
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn speeds() {
        assert_eq!("0".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("max".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!("1000000".parse::<Speed>().unwrap(), Speed::Max);
        assert_eq!(
            "2.5".parse::<Speed>().unwrap(),
            Speed::Factor(Fixed::from_raw(250_000_000))
        );
        assert!("-1".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
