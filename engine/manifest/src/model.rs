//! The serde types of a version 1 manifest, one per object in docs/manifest.md.
//!
//! Every struct refuses unknown fields. Nullable fields are `Option`s that must still be present
//! (`deserialize_with = "nullable"` turns off serde's "missing means None"), so a key the
//! compiler forgot is an error, not a silent default. Field-level rules that serde cannot express
//! (positive decimals, integer ranges) and all cross-field rules live in `validate`.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::features::FeatureSetDecl;
use crate::Fixed;

/// A logical CPU number.
pub type Core = u32;

/// A present-but-possibly-null field: `null` is `None`, a missing key is an error.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// The schema of a [`nullable`] field: `T` or null, and required (no serde default).
fn nullable_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<Option<T>>()
}

/// The only input of one engine instance.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "py_rt engine manifest (version 1)")]
pub struct Manifest {
    #[schemars(range(min = 1, max = 1))]
    pub manifest_version: u32,
    /// Lowercase hex SHA-256 of the canonical payload (without content_sha256 and provenance).
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub content_sha256: String,
    pub provenance: Provenance,
    pub deployment: Deployment,
    pub engine: Engine,
    pub host: Host,
    pub exchanges: BTreeMap<String, Exchange>,
    pub strategies: BTreeMap<String, Strategy>,
    pub risk: Risk,
}

/// Where a manifest came from; outside the content hash.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub compiler: String,
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<String>")]
    pub git_commit: Option<String>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<bool>")]
    pub git_dirty: Option<bool>,
    /// Hydra group choices.
    pub choices: BTreeMap<String, String>,
    pub overrides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub name: String,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Paper,
    Live,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Paper => "paper",
            Mode::Live => "live",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub id: String,
    /// Must equal `host.name`.
    pub host: String,
    pub bus: Bus,
    pub journal: Journal,
    pub metrics: Metrics,
    /// The flight recorder (market data as consumed, for research and parity); null: off.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<FlightRecorder>")]
    pub flight_recorder: Option<FlightRecorder>,
    /// Anomaly detection against a backtest baseline; null: off.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Anomaly>")]
    pub anomaly: Option<Anomaly>,
}

/// What the live engine compares its own behaviour with: the range each figure took when the
/// same manifest was backtested on recent data (`appliance baseline`, docs/operations.md). A
/// figure outside its range over the last `window_s` seconds raises an anomaly event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// The baseline file the ranges were read from (relative to the project root), and its
    /// SHA-256: provenance, so that a plan shows which baseline an engine runs.
    pub baseline: String,
    pub baseline_sha256: String,
    /// The rolling window each figure is measured over, in (wall) seconds.
    #[schemars(range(min = 5, max = 86_400))]
    pub window_s: u32,
    /// How the ranges were derived (data, windows, widening), carried into each event.
    pub derivation: String,
    /// Expected range of each figure (see [`ANOMALY_FIGURES`]; `md_messages_per_s.<exchange>`
    /// per exchange of this engine).
    pub figures: BTreeMap<String, Range>,
}

/// An expected range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub low: Fixed,
    pub high: Fixed,
}

/// The figures anomaly detection knows, besides `md_messages_per_s.<exchange>`:
/// fills per order sent, orders sent per 1,000 market-data messages, the change of equity
/// (P&L, fees included) per hour, the mean markout of fills 1 s after them in basis points
/// (adverse selection), and the p99 of tick-to-order in microseconds.
pub const ANOMALY_FIGURES: [&str; 5] = [
    "fill_ratio",
    "orders_per_1k_messages",
    "pnl_per_hour",
    "markout_bps",
    "tick_to_order_p99_us",
];
/// The per-exchange figure's prefix: market-data messages per second from that exchange.
pub const ANOMALY_MD_RATE: &str = "md_messages_per_s.";

/// What the live engine records of the market data it consumed: every raw frame with its
/// local receive time and every REST snapshot it fetched, in the capture format of `data/`
/// (one directory per exchange, rotated files listed in `manifest.json`), written by a thread
/// of its own off the feed's hot path.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlightRecorder {
    /// Directory of the recordings (relative to the engine's working directory).
    pub dir: String,
    /// A file is closed and the next begun at this compressed size, MiB.
    #[schemars(range(min = 1))]
    pub file_mb: u32,
    /// The oldest files of an exchange are deleted beyond this total, MiB (>= file_mb).
    #[schemars(range(min = 1))]
    pub budget_mb: u32,
}

/// The engine's Prometheus endpoint (`GET /metrics`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` to listen on, for example `127.0.0.1:9464` (loopback: scraped from this
    /// host only); port 0 takes any free port (the engine prints it).
    pub listen: String,
    /// The tick-to-order p99 above which the shipped `PyRtTickToOrderSlow` alert fires, in
    /// microseconds (served as `rt_alert_tick_to_order_p99_seconds`): the latency budget of
    /// this engine on its host.
    #[schemars(range(min = 1, max = 10_000_000))]
    pub tick_to_order_p99_alert_us: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bus {
    /// Events PUB endpoint, `tcp://...` or `ipc://...`.
    pub events: String,
    /// Control endpoint, `tcp://...` or `ipc://...`.
    pub control: String,
    #[schemars(range(min = 1000))]
    pub hwm: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub dir: String,
    pub fsync: Fsync,
    #[schemars(range(min = 1))]
    pub fsync_interval_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    Interval,
    Never,
}

impl Fsync {
    pub const fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Interval => "interval",
            Fsync::Never => "never",
        }
    }
}

/// The host this engine runs on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Inventory name.
    pub name: String,
    /// Address Ansible reaches the host on.
    pub address: String,
    pub cpu: Cpu,
    pub nic: Nic,
    pub memory: Memory,
    pub threads: Threads,
    pub rings: Rings,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// Online logical CPUs.
    pub cores: Vec<Core>,
    /// The isolcpus set: hot threads run here.
    pub isolated: Vec<Core>,
    /// CPUs for the OS, IRQs and the housekeeping thread.
    pub housekeeping: Vec<Core>,
    /// Hyperthread pairs.
    pub smt_siblings: Vec<[Core; 2]>,
    /// Index = NUMA node id, value = its CPUs.
    pub numa_nodes: Vec<Vec<Core>>,
}

/// The market-data NIC.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    pub numa_node: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// 2048 or 1048576.
    pub hugepage_kb: u64,
    pub hugepages: u64,
    #[schemars(range(min = 1))]
    pub shm_budget_mb: u64,
}

/// Thread placement; a `null` core means "not pinned" (paper mode only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threads {
    /// How the hot path runs: `pipeline` (the default, absent: a feed thread per exchange, a
    /// strategy thread and a gateway thread joined by rings) or `fused` (one thread, on the
    /// strategy's core, runs every feed, the strategy and the gateway: decode -> book ->
    /// strategy -> risk -> order encode -> socket write with no thread hop; for hosts with
    /// few isolated cores). In `fused`, each feed's and the gateway's core is `null` or the
    /// strategy's.
    #[serde(default, skip_serializing_if = "Layout::is_pipeline")]
    pub layout: Layout,
    /// Exchange name -> core of its feed thread.
    pub feeds: BTreeMap<String, Option<Core>>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Core>")]
    pub strategy: Option<Core>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Core>")]
    pub gateway: Option<Core>,
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Core>")]
    pub housekeeping: Option<Core>,
}

/// How the engine's hot path is laid out on threads (`host.threads.layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    // A feed thread per exchange, a strategy thread and a gateway thread, joined by rings.
    #[default]
    Pipeline,
    // One thread on the strategy's core runs the feeds, the strategy and the gateway.
    Fused,
}

impl Layout {
    pub fn is_pipeline(&self) -> bool {
        *self == Layout::Pipeline
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Layout::Pipeline => "pipeline",
            Layout::Fused => "fused",
        }
    }
}

/// Whether a thread is on the latency path (isolated cores) or housekeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRole {
    Hot,
    Housekeeping,
}

impl ThreadRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadRole::Hot => "hot",
            ThreadRole::Housekeeping => "housekeeping",
        }
    }
}

/// One engine thread and where the manifest puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSlot<'a> {
    /// `feed` (with the exchange), `strategy`, `gateway` or `housekeeping`; in the fused
    /// layout, `strategy` is the one thread that also runs the feeds and the gateway.
    pub label: &'static str,
    /// The fused layout's one hot thread (see [`Layout::Fused`]).
    pub fused: bool,
    /// The exchange of a feed thread.
    pub exchange: Option<&'a str>,
    pub core: Option<Core>,
    pub role: ThreadRole,
}

impl ThreadSlot<'_> {
    /// The manifest path of this thread's core, e.g. `host.threads.feeds.binance_spot`.
    pub fn path(&self) -> String {
        match self.exchange {
            Some(exchange) => format!("host.threads.feeds.{exchange}"),
            None => format!("host.threads.{}", self.label),
        }
    }
}

impl fmt::Display for ThreadSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exchange {
            Some(exchange) => write!(f, "{} {exchange}", self.label),
            None if self.fused => f.write_str("fused (feeds, strategy, gateway)"),
            None => f.write_str(self.label),
        }
    }
}

impl Threads {
    /// Every thread the engine starts, in a fixed order: feeds (by exchange name), strategy,
    /// gateway, housekeeping; in the fused layout, the one hot thread (at the strategy's
    /// core) and housekeeping.
    pub fn slots(&self) -> Vec<ThreadSlot<'_>> {
        let fused = self.layout == Layout::Fused;
        let feeds = self
            .feeds
            .iter()
            .filter(|_| !fused)
            .map(|(exchange, &core)| ThreadSlot {
                label: "feed",
                exchange: Some(exchange),
                fused: false,
                core,
                role: ThreadRole::Hot,
            });
        let fixed = [
            ("strategy", self.strategy, ThreadRole::Hot),
            ("gateway", self.gateway, ThreadRole::Hot),
            ("housekeeping", self.housekeeping, ThreadRole::Housekeeping),
        ]
        .into_iter()
        .filter(|(label, _, _)| !(fused && *label == "gateway"))
        .map(|(label, core, role)| ThreadSlot {
            label,
            exchange: None,
            fused: fused && label == "strategy",
            core,
            role,
        });
        feeds.chain(fixed).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rings {
    pub backing: Backing,
    pub market_data: Ring,
    pub orders: Ring,
    pub fills: Ring,
}

/// Header bytes in front of every ring's slots.
pub const RING_HEADER_BYTES: u64 = 4096;

impl Rings {
    /// The three rings with their names, in a fixed order.
    pub fn named(&self) -> [(&'static str, &Ring); 3] {
        [
            ("market_data", &self.market_data),
            ("orders", &self.orders),
            ("fills", &self.fills),
        ]
    }

    /// Bytes all rings take, headers included (saturating: an absurd size stays absurd).
    pub fn total_bytes(&self) -> u64 {
        self.named()
            .iter()
            .fold(0, |sum, (_, ring)| sum.saturating_add(ring.bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    Shm,
    Hugetlbfs,
}

impl Backing {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backing::Shm => "shm",
            Backing::Hugetlbfs => "hugetlbfs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    /// A power of two, 2..2^24.
    pub slots: u64,
    /// A multiple of 64, 64..65536.
    pub slot_bytes: u64,
}

impl Ring {
    /// Slots times slot size plus the header.
    pub fn bytes(&self) -> u64 {
        self.slots
            .saturating_mul(self.slot_bytes)
            .saturating_add(RING_HEADER_BYTES)
    }
}

impl Host {
    /// The bytes the rings may take on their backing store.
    pub fn ring_budget_bytes(&self) -> u64 {
        match self.rings.backing {
            Backing::Hugetlbfs => self
                .memory
                .hugepages
                .saturating_mul(self.memory.hugepage_kb)
                .saturating_mul(1024),
            Backing::Shm => self.memory.shm_budget_mb.saturating_mul(1 << 20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub venue: Venue,
    /// Protocol dialect; must match a binance venue.
    pub market: Market,
    pub endpoints: Endpoints,
    /// References only (`env:NAME`, `file:/absolute/path`), never secrets.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Credentials>")]
    pub credentials: Option<Credentials>,
    pub rate_limits: RateLimits,
    pub on_gap: OnGap,
    /// Symbol -> instrument; at least one.
    pub instruments: BTreeMap<String, Instrument>,
    /// Required iff the venue is `sim`.
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<SimVenue>")]
    pub sim: Option<SimVenue>,
    /// The venue's own instrument metadata file the instruments were checked against (OKX
    /// `instruments.json`, Kraken `asset_pairs.json`), relative to the engine's working
    /// directory; OKX and Kraken only, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// SHA-256 of `metadata` when it was compiled: a change of the venue's metadata changes the
    /// manifest (and shows in a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_sha256: Option<String>,
    /// Commission asset -> its price in the quote asset (each positive): how a commission paid
    /// in another asset than the instrument's (BNB) is valued when the engine has no book of
    /// `<asset><quote>` on this exchange. Empty by default.
    #[serde(default)]
    pub commission_reference_prices: BTreeMap<String, Fixed>,
    /// Binance's `selfTradePreventionMode`, sent with every order.
    #[serde(default)]
    pub self_trade_prevention: SelfTradePrevention,
    /// How new orders and cancels reach the venue: `rest` (the default), or `websocket` over
    /// the venue's WebSocket API (`endpoints.ws_api`; Binance Spot and the sim), with REST as
    /// the fallback while that connection is down and for queries and catch-up. Written only
    /// when not `rest`.
    #[serde(default, skip_serializing_if = "OrderEntry::is_rest")]
    pub order_entry: OrderEntry,
    /// OKX and Kraken: the venue's book checksum is verified on every n-th book message of
    /// an instrument (1, the default: every message; a corrupted message is then found at the
    /// next verified one). Binance and the sim send no checksum: 1 there.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub book_checksum_every: u32,
    /// Balances reconciled with the venue's account at start and while running (`null`: not
    /// reconciled).
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Reconcile>")]
    pub reconcile: Option<Reconcile>,
}

fn one() -> u32 {
    1
}

/// Balance reconciliation with the venue's account (`GET /api/v3/account`). The balance the
/// engine expects of an asset is its `starting_balances` entry (what the account held when
/// this engine's journal began) moved by every journaled fill (the base asset by the quantity,
/// the quote asset by the notional) and commission (in the asset charged). Only the assets of
/// `starting_balances` are compared, each within its absolute `tolerance`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Asset -> amount (non-negative); at least one.
    pub starting_balances: BTreeMap<String, Fixed>,
    /// Asset -> the largest `|venue - expected|` tolerated (non-negative); the same assets as
    /// `starting_balances`.
    pub tolerance: BTreeMap<String, Fixed>,
    /// How often the running engine reconciles, in ms (at least 1000).
    #[schemars(range(min = 1000))]
    pub interval_ms: u64,
}

/// Binance's self-trade prevention modes (`selfTradePreventionMode`): what the venue does when
/// an order would trade against another order of the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    // No prevention: the two orders trade.
    None,
    // The incoming (taker) order expires.
    ExpireTaker,
    // The resting (maker) order expires; Binance's default.
    #[default]
    ExpireMaker,
    // Both expire.
    ExpireBoth,
}

/// The transport of an exchange's order entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderEntry {
    // Signed REST requests.
    #[default]
    Rest,
    // Signed requests over a persistent connection to the venue's WebSocket API.
    Websocket,
}

impl OrderEntry {
    pub fn is_rest(&self) -> bool {
        *self == OrderEntry::Rest
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderEntry::Rest => "rest",
            OrderEntry::Websocket => "websocket",
        }
    }
}

/// The asset the sim venue charges commissions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimCommission {
    // The symbol's quote asset, on both sides.
    #[default]
    Quote,
    // The symbol's base asset, on both sides.
    Base,
    // The asset received (base on a buy, quote on a sell), as Binance does without BNB.
    Received,
    // BNB at `bnb_price`, from `bnb_balance`; the asset received once the balance runs short.
    Bnb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Venue {
    BinanceSpot,
    BinanceUsdm,
    Sim,
    // OKX v5: market data decoded in rt-venues; no order entry and no engine feed yet
    // (plain comments: doc comments would split the schema's enum).
    Okx,
    // Kraken WebSocket v1: market data only.
    Kraken,
}

impl Venue {
    /// The market a real venue speaks; `None` for the simulator, which speaks either.
    pub const fn required_market(self) -> Option<Market> {
        match self {
            Venue::BinanceSpot => Some(Market::Spot),
            Venue::BinanceUsdm => Some(Market::Usdm),
            // One endpoint for every instrument type (each instrument's `listing` says which).
            Venue::Okx | Venue::Kraken => Some(Market::Spot),
            Venue::Sim => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "binance_spot",
            Venue::BinanceUsdm => "binance_usdm",
            Venue::Sim => "sim",
            Venue::Okx => "okx",
            Venue::Kraken => "kraken",
        }
    }

    /// OKX and Kraken: venues whose instruments are checked against the venue's own metadata
    /// file and carry a `listing`.
    pub const fn has_metadata(self) -> bool {
        matches!(self, Venue::Okx | Venue::Kraken)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Market {
    Spot,
    Usdm,
}

impl Market {
    pub const fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Usdm => "usdm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnGap {
    Resync,
    Halt,
}

impl OnGap {
    pub const fn as_str(self) -> &'static str {
        match self {
            OnGap::Resync => "resync",
            OnGap::Halt => "halt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// `ws://` or `wss://` URL.
    pub ws: String,
    /// `http://` or `https://` URL.
    pub rest: String,
    /// The venue's WebSocket API for order entry (`wss://ws-api.binance.com:443/ws-api/v3`; the
    /// sim: `ws://<its ws address>/ws-api/v3`): needed by `order_entry: websocket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_api: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: String,
    /// OKX's API passphrase (a reference, like the key and the secret); OKX only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// The API key's type (absent: `hmac`). With `ed25519`, `api_secret` references the
    /// Ed25519 private key in PKCS#8 PEM; Binance only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<KeyType>,
}

/// How an account's requests are signed (`credentials.key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    // HMAC-SHA256 keyed by the API secret (hex signatures).
    #[default]
    Hmac,
    // Ed25519 with the account's private key (base64 signatures; Binance's WebSocket API
    // authenticates a whole connection with `session.logon`).
    Ed25519,
}

impl KeyType {
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::Hmac => "hmac",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[schemars(range(min = 1))]
    pub orders_per_10s: u32,
    #[schemars(range(min = 1))]
    pub orders_per_day: u32,
    #[schemars(range(min = 1))]
    pub request_weight_per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// Positive.
    pub tick_size: Fixed,
    /// Positive.
    pub lot_size: Fixed,
    /// Positive.
    pub min_notional: Fixed,
    /// Negative for a rebate.
    pub maker_fee_bps: Fixed,
    pub taker_fee_bps: Fixed,
    /// How the venue lists the instrument (OKX and Kraken; absent on Binance and the sim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<Listing>,
    /// A derivative's only (USD-M, or a listed swap): the symbol's leverage (1-125), set on
    /// the venue before the engine trades and verified (absent: the account's, unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<u32>,
    /// A derivative's only (USD-M, or a listed swap): the symbol's margin type, set and
    /// verified before the engine trades (OKX: each order's `tdMode` and the leverage's
    /// `mgnMode`; absent: cross on OKX, the account's on USD-M, unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_type: Option<MarginType>,
}

/// A derivative position's margin: the whole wallet behind it (cross) or only what was put
/// aside for it (isolated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarginType {
    Cross,
    Isolated,
}

/// An instrument as its venue's metadata describes it, beyond tick, lot and minimum notional.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// The venue's own symbol (`BTC-USDT`, `UNI-USD-SWAP`, `XBT/CHF`); the config name is this
    /// symbol without its `-` and `/` separators.
    pub symbol: String,
    #[serde(rename = "type")]
    pub kind: InstrumentType,
    /// The smallest order size (OKX `minSz`, Kraken `ordermin`), positive.
    pub min_size: Fixed,
    /// Present iff the instrument is a contract (swap or futures).
    #[serde(deserialize_with = "nullable")]
    #[schemars(schema_with = "nullable_schema::<Contract>")]
    pub contract: Option<Contract>,
    /// A futures contract's expiry (OKX `expTime`), ms since the epoch: the venue delivers
    /// (closes) what is open then. Present iff the instrument is a futures contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentType {
    Spot,
    Swap,
    Futures,
}

impl InstrumentType {
    pub const fn as_str(self) -> &'static str {
        match self {
            InstrumentType::Spot => "spot",
            InstrumentType::Swap => "swap",
            InstrumentType::Futures => "futures",
        }
    }
}

/// A contract's terms (OKX `ctVal`, `ctMult`, `ctType`, `settleCcy`): one contract is
/// `value * multiplier` of `value_currency`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Positive.
    pub value: Fixed,
    /// Positive.
    pub multiplier: Fixed,
    pub value_currency: String,
    #[serde(rename = "type")]
    pub kind: ContractType,
    /// The currency margin and P&L are settled in.
    pub settle_currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContractType {
    Linear,
    Inverse,
}

/// Settings of the local exchange simulator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimVenue {
    /// Path of the recorded capture to replay.
    pub capture: String,
    /// Replay speed, positive ("1000000" for as fast as possible).
    pub speed: Fixed,
    pub latency_us: u64,
    /// The asset commissions are charged in (`quote` by default).
    #[serde(default)]
    pub commission_asset: SimCommission,
    /// The account's BNB balance at start (non-negative; `commission_asset: bnb` pays from it).
    #[serde(default)]
    pub bnb_balance: Fixed,
    /// BNB's price in the quote asset the sim converts commissions at (positive when
    /// `commission_asset` is `bnb`).
    #[serde(default)]
    pub bnb_price: Fixed,
}

/// A strategy instance: a built-in kind, the exchange and instruments it trades, its parameters.
///
/// In JSON it is internally tagged by `kind`. Serde's derived internally tagged enums buffer the
/// object before choosing a variant, which loses the error path inside `params`; the manual
/// `Deserialize` below reads `kind` first (keys arrive sorted) and then deserializes `params` in
/// place, so an error still names `strategies.<name>.params.<field>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub exchange: String,
    pub instruments: Vec<String>,
    pub params: StrategyParams,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrategyParams {
    MarketMaker(MarketMakerParams),
    ImbalanceTaker(ImbalanceTakerParams),
    ModelTaker(ModelTakerParams),
}

impl StrategyParams {
    pub const fn kind(&self) -> StrategyKind {
        match self {
            StrategyParams::MarketMaker(_) => StrategyKind::MarketMaker,
            StrategyParams::ImbalanceTaker(_) => StrategyKind::ImbalanceTaker,
            StrategyParams::ModelTaker(_) => StrategyKind::ModelTaker,
        }
    }

    /// The model this strategy runs, if its kind has one.
    pub const fn model(&self) -> Option<&ModelRef> {
        match self {
            StrategyParams::ModelTaker(p) => Some(&p.model),
            StrategyParams::MarketMaker(_) | StrategyParams::ImbalanceTaker(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    MarketMaker,
    ImbalanceTaker,
    ModelTaker,
}

impl StrategyKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            StrategyKind::MarketMaker => "market_maker",
            StrategyKind::ImbalanceTaker => "imbalance_taker",
            StrategyKind::ModelTaker => "model_taker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketMakerParams {
    pub reference: Reference,
    #[schemars(range(min = 1))]
    pub half_spread_ticks: u32,
    /// Positive, a multiple of the lot size.
    pub quote_qty: Fixed,
    /// Positive, a multiple of the lot size.
    pub max_inventory: Fixed,
    pub inventory_skew_ticks: u32,
    pub requote_threshold_ticks: u32,
    /// Quote around another book's price (another venue's, typically): absent, the quoted
    /// instrument's own book is the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Which top of book the quotes are placed against (absent: `book`, the diff book's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touch: Option<Touch>,
    /// How a quote is moved (absent: `replace`, cancelled and placed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requote: Option<Requote>,
}

/// How a market maker moves a working quote: `replace` cancels it and places a new order;
/// `amend` changes its price and size in place (OKX `amend-order`: one request instead of two,
/// and a smaller size at the same price keeps its place in the queue). An amendment the engine
/// or the venue refuses makes the quote cancelled and placed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Requote {
    #[default]
    Replace,
    Amend,
}

/// The top of book a market maker quotes against: the diff book's best levels (`book`), or
/// the venue's real-time best bid and offer (`bbo`, Binance `bookTicker`) whenever it
/// is newer than the diff book (its update id beyond the book's last applied one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Touch {
    #[default]
    Book,
    Bbo,
}

/// The book a market maker takes its fair value from, and how the basis between that book and
/// the quoted one is followed: `fair = signal reference + basis`, where the basis is an
/// exponential average of `quoted reference - signal reference` with weight `1/basis_updates`
/// per update of either book (so the quotes follow the signal's moves at once and the level
/// difference between the venues slowly).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// A manifest exchange of the same engine.
    pub exchange: String,
    /// One of that exchange's instruments.
    pub instrument: String,
    /// At least 1 (1: the basis follows at once, the quoted book alone sets the level).
    #[schemars(range(min = 1))]
    pub basis_updates: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    Mid,
    Microprice,
}

impl Reference {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reference::Mid => "mid",
            Reference::Microprice => "microprice",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImbalanceTakerParams {
    #[schemars(range(min = 1, max = 50))]
    pub levels: u32,
    /// Strictly between 0 and 1.
    pub threshold: Fixed,
    /// Positive, a multiple of the lot size.
    pub order_qty: Fixed,
    /// Positive price distance, a multiple of the tick size.
    pub max_slippage: Fixed,
    pub cooldown_ms: u64,
}

/// A taker trading on an ONNX model's signal: on every book update (and trade) of its one
/// instrument it computes `features`, runs the model on that row and, when `output[0]` is
/// above `buy_above`, buys (IOC at best ask + `max_slippage`); below `sell_below`, sells.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelTakerParams {
    pub model: ModelRef,
    /// The model's input columns, in order (`input_width` of them).
    pub features: FeatureSetDecl,
    /// Buy when the signal is strictly above this.
    pub buy_above: Fixed,
    /// Sell when the signal is strictly below this; below `buy_above`.
    pub sell_below: Fixed,
    /// Positive, a multiple of the lot size.
    pub order_qty: Fixed,
    /// Positive price distance, a multiple of the tick size.
    pub max_slippage: Fixed,
    pub cooldown_ms: u64,
}

/// An ONNX model file as the compiler checked it: where it is, its hash and its signature,
/// and how the engine builds its session. The file is checked at load (see `crate::files`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The `.onnx` file, relative to the engine's working directory, or absolute.
    pub path: String,
    /// Lowercase hex SHA-256 of the file.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    pub input_name: String,
    /// Features per row: the number of `features`.
    #[schemars(range(min = 1))]
    pub input_width: u32,
    pub output_name: String,
    /// Values per row out; the signal is the first.
    #[schemars(range(min = 1))]
    pub output_width: u32,
    /// The model's `ai.onnx` opset.
    #[schemars(range(min = 1, max = 21))]
    pub opset: u32,
    /// ONNX Runtime intra-op threads of the session.
    #[schemars(range(min = 1, max = 64))]
    pub intra_op_threads: u32,
    pub optimization: Optimization,
}

/// ONNX Runtime's graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    All,
}

impl Optimization {
    pub const fn as_str(self) -> &'static str {
        match self {
            Optimization::Disable => "disable",
            Optimization::Basic => "basic",
            Optimization::Extended => "extended",
            Optimization::All => "all",
        }
    }
}

// The JSON shape of `Strategy`, for the schema only.
/// A strategy instance, tagged by `kind`; `params` depend on the kind.
#[derive(JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)] // never built: it exists to derive the schema of the tagged form
enum StrategyShape {
    MarketMaker {
        exchange: String,
        instruments: Vec<String>,
        params: MarketMakerParams,
    },
    ImbalanceTaker {
        exchange: String,
        instruments: Vec<String>,
        params: ImbalanceTakerParams,
    },
    ModelTaker {
        exchange: String,
        instruments: Vec<String>,
        params: ModelTakerParams,
    },
}

impl JsonSchema for Strategy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Strategy".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        StrategyShape::json_schema(generator)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum StrategyKey {
    Kind,
    Exchange,
    Instruments,
    Params,
}

/// Deserializes `params` for a known kind.
struct ParamsSeed(StrategyKind);

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = StrategyParams;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<StrategyParams, D::Error> {
        Ok(match self.0 {
            StrategyKind::MarketMaker => {
                StrategyParams::MarketMaker(MarketMakerParams::deserialize(deserializer)?)
            }
            StrategyKind::ImbalanceTaker => {
                StrategyParams::ImbalanceTaker(ImbalanceTakerParams::deserialize(deserializer)?)
            }
            StrategyKind::ModelTaker => {
                StrategyParams::ModelTaker(ModelTakerParams::deserialize(deserializer)?)
            }
        })
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strategy, D::Error> {
        struct StrategyVisitor;

        impl<'de> Visitor<'de> for StrategyVisitor {
            type Value = Strategy;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a strategy object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strategy, A::Error> {
                fn once<T, E: de::Error>(slot: &Option<T>, name: &'static str) -> Result<(), E> {
                    match slot {
                        Some(_) => Err(E::duplicate_field(name)),
                        None => Ok(()),
                    }
                }

                let mut kind = None;
                let mut exchange = None;
                let mut instruments = None;
                let mut params = None;
                // `params` seen before `kind` (only from a source with unsorted keys).
                let mut early_params: Option<serde_json::Value> = None;
                while let Some(key) = map.next_key()? {
                    match key {
                        StrategyKey::Kind => {
                            once(&kind, "kind")?;
                            kind = Some(map.next_value::<StrategyKind>()?);
                        }
                        StrategyKey::Exchange => {
                            once(&exchange, "exchange")?;
                            exchange = Some(map.next_value()?);
                        }
                        StrategyKey::Instruments => {
                            once(&instruments, "instruments")?;
                            instruments = Some(map.next_value()?);
                        }
                        StrategyKey::Params => {
                            if params.is_some() || early_params.is_some() {
                                return Err(de::Error::duplicate_field("params"));
                            }
                            match kind {
                                Some(kind) => params = Some(map.next_value_seed(ParamsSeed(kind))?),
                                None => early_params = Some(map.next_value()?),
                            }
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                let params = match (params, early_params) {
                    (Some(params), _) => params,
                    (None, Some(value)) => ParamsSeed(kind)
                        .deserialize(value)
                        .map_err(|err| de::Error::custom(format_args!("params: {err}")))?,
                    (None, None) => return Err(de::Error::missing_field("params")),
                };
                Ok(Strategy {
                    exchange: exchange.ok_or_else(|| de::Error::missing_field("exchange"))?,
                    instruments: instruments
                        .ok_or_else(|| de::Error::missing_field("instruments"))?,
                    params,
                })
            }
        }

        deserializer.deserialize_map(StrategyVisitor)
    }
}

impl Serialize for Strategy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Strategy", 4)?;
        out.serialize_field("exchange", &self.exchange)?;
        out.serialize_field("instruments", &self.instruments)?;
        out.serialize_field("kind", &self.params.kind())?;
        match &self.params {
            StrategyParams::MarketMaker(params) => out.serialize_field("params", params)?,
            StrategyParams::ImbalanceTaker(params) => out.serialize_field("params", params)?,
            StrategyParams::ModelTaker(params) => out.serialize_field("params", params)?,
        }
        out.end()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    pub kill_switch: KillSwitch,
    /// Positive, quote currency.
    pub max_daily_loss: Fixed,
    /// Positive, quote currency.
    pub max_drawdown: Fixed,
    /// Positive, quote currency.
    pub max_gross_exposure: Fixed,
    /// Share of a loss limit at which the state goes ACTIVE -> REDUCING.
    #[schemars(range(min = 1, max = 100))]
    pub reducing_at_pct: u32,
    #[schemars(range(min = 1))]
    pub max_open_orders: u32,
    pub order_rate: OrderRate,
    #[schemars(range(min = 1))]
    pub feed_stale_ms: u64,
    /// A position on a book stale beyond `feed_stale_ms` moves the state to REDUCING; beyond
    /// this (greater than `feed_stale_ms`) to HALTED.
    #[schemars(range(min = 1))]
    pub stale_exposure_halt_ms: u64,
    /// Derivatives: a position whose mark is closer than this to its liquidation price (in
    /// bps of the mark, as the venue computes it) halts trading (absent: not watched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub min_liquidation_distance_bps: Option<u32>,
    /// Futures: this long (ms) before a contract's expiry (`listing.expiry_ms`) only orders
    /// that reduce its position are sent, and none from the expiry on (absent: the engine's
    /// default, 10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce_only_before_expiry_ms: Option<u64>,
    /// Symbol -> limits.
    pub instruments: BTreeMap<String, InstrumentLimits>,
    /// Asset -> a limit on the engine's position in it summed over every venue (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<BTreeMap<String, AssetLimits>>,
}

/// A limit on one asset across venues (`risk.assets.<asset>`): the signed positions of the
/// listed instruments on every exchange of the engine, summed, with every open order of the
/// order's side counted as filled, stay within `+-max_position`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetLimits {
    /// Positive, in the asset's units.
    pub max_position: Fixed,
    /// Config names (keys of `risk.instruments`) whose base asset this is, on any exchange.
    pub instruments: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    /// false = the kill switch is disarmed.
    pub enabled: bool,
    pub cancel_on_trigger: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRate {
    #[schemars(range(min = 1))]
    pub per_second: u32,
    /// At least `per_second`.
    #[schemars(range(min = 1))]
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentLimits {
    /// Positive; at least `max_order_qty`.
    pub max_position: Fixed,
    /// Positive.
    pub max_order_qty: Fixed,
    /// Positive.
    pub max_order_notional: Fixed,
    /// Positive; at least `max_order_notional`.
    pub max_position_notional: Fixed,
    #[schemars(range(min = 1, max = 10000))]
    pub price_band_bps: u32,
}

impl Manifest {
    /// `exchange:symbol` for every instrument of every exchange, sorted.
    pub fn instrument_ids(&self) -> Vec<String> {
        self.exchanges
            .iter()
            .flat_map(|(exchange, venue)| {
                venue
                    .instruments
                    .keys()
                    .map(move |symbol| format!("{exchange}:{symbol}"))
            })
            .collect()
    }
}
