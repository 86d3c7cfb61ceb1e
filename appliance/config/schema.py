"""Pydantic models of the config groups and of the manifest contract (docs/manifest.md).

One set of models serves both: a config group option (`conf/host/ny4_a.yaml`) validates as
`Host`, and the manifest embeds the very same shapes, so what the compiler checked is what
the engine loads. Every model forbids extra fields and has no defaults: a deployment states
every value it trades with.

Decimals are `decimal.Decimal` inside Python and decimal strings in the manifest. In config
YAML, integers and strings are accepted (and floats, through their shortest repr, which is the
text the user wrote); in a manifest (validation context `{"manifest": True}`) only strings are.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

MANIFEST_VERSION = 1

# Shared with engine/manifest (Rust `Fixed`: i64 with 8 decimals).
DECIMAL_PATTERN = r"^-?[0-9]{1,10}(\.[0-9]{1,8})?$"
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
SECRET_REF_PATTERN = r"^(env:[A-Z_][A-Z0-9_]*|file:/[^\s]+)$"


def format_decimal(value: Decimal) -> str:
    """The canonical manifest form: plain notation, no trailing zeros, no negative zero."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _parse_decimal(value: Any, info: ValidationInfo) -> Decimal:
    in_manifest = bool(info.context and info.context.get("manifest"))
    if isinstance(value, bool):
        raise ValueError("expected a decimal string, got a boolean")
    if isinstance(value, Decimal):
        text = format_decimal(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not in_manifest:
        text = str(value)
    elif isinstance(value, float) and not in_manifest:
        # repr is the shortest string that round-trips: the text written in the YAML file.
        text = repr(value)
        if "e" in text or "E" in text:
            raise ValueError(f"{text} is in exponent notation; write it as a decimal string")
    else:
        raise ValueError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    if not _DECIMAL_RE.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a decimal string (at most 10 integer and 8 fractional digits, "
            "no exponent)"
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid input
        raise ValueError(f"{text!r} is not a decimal") from exc


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {format_decimal(value)}")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {format_decimal(value)}")
    return value


Dec = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    PlainSerializer(format_decimal, return_type=str),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": DECIMAL_PATTERN}, {"type": "number"}]},
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN}, mode="serialization"),
]
PosDec = Annotated[Dec, AfterValidator(_positive)]

# Integer widths of the Rust contract types (engine/manifest): u32 and u64.
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
Core = Annotated[int, Field(ge=0, le=4095)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN)]
SecretRef = Annotated[str, Field(pattern=SECRET_REF_PATTERN)]


class Strict(BaseModel):
    # strict: a boolean only from a boolean, an integer only from an integer (YAML 1.1 words
    # such as `no` or `off`, and 0/1, would otherwise silently become booleans).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- host ---------------------------------------------------------------------------------


def _absent(value: object) -> bool:
    return value is None


# An optional field a manifest leaves out when it is null (Rust: `skip_serializing_if`), so the
# manifests of venues that do not use it are unchanged by its existence.
def _optional(description: str) -> Any:
    return Field(default=None, exclude_if=_absent, description=description)


class Cpu(Strict):
    cores: list[Core] = Field(min_length=1)
    isolated: list[Core]
    housekeeping: list[Core] = Field(min_length=1)
    # YAML has no tuples: a pair arrives as a list (its items stay strict integers).
    smt_siblings: list[Annotated[tuple[Core, Core], Field(strict=False)]]
    numa_nodes: list[list[Core]] = Field(min_length=1)


class Nic(Strict):
    name: Annotated[str, Field(min_length=1, max_length=15)]
    numa_node: Annotated[int, Field(ge=0, le=U32_MAX)]


class Memory(Strict):
    hugepage_kb: Literal[2048, 1048576]
    hugepages: Annotated[int, Field(ge=0, le=U64_MAX)]
    shm_budget_mb: Annotated[int, Field(ge=1, le=U64_MAX)]


class Threads(Strict):
    # How the hot path runs; written into the manifest only when not the default (pipeline).
    layout: Literal["pipeline", "fused"] = Field(
        default="pipeline",
        exclude_if=lambda v: v == "pipeline",
        description="how the hot path runs: pipeline (the default; a feed thread per "
        "exchange, a strategy thread and a gateway thread joined by rings) or fused (one "
        "thread on the strategy's core runs the feeds, the strategy and the gateway: no thread "
        "hop; one isolated core)",
    )
    feeds: dict[Name, Core | None]
    strategy: Core | None
    gateway: Core | None
    housekeeping: Core | None


class Ring(Strict):
    slots: Annotated[int, Field(ge=1, le=U64_MAX)]
    slot_bytes: Annotated[int, Field(ge=1, le=U64_MAX)]


class Rings(Strict):
    backing: Literal["shm", "hugetlbfs"]
    market_data: Ring
    orders: Ring
    fills: Ring


class Host(Strict):
    """A config group option of `host`: one machine, its CPU layout and the engine's threads."""

    address: Annotated[str, Field(min_length=1)]
    cpu: Cpu
    nic: Nic
    memory: Memory
    threads: Threads
    rings: Rings


# --- exchange -----------------------------------------------------------------------------


class Endpoints(Strict):
    ws: Annotated[str, Field(pattern=r"^wss?://\S+$")]
    rest: Annotated[str, Field(pattern=r"^https?://\S+$")]
    ws_api: Annotated[str, Field(pattern=r"^wss?://\S+$")] | None = _optional(
        "the venue's WebSocket API for order entry (wss://ws-api.binance.com:443/ws-api/v3); "
        "needed by order_entry websocket"
    )


class Credentials(Strict):
    api_key: SecretRef
    api_secret: SecretRef
    passphrase: SecretRef | None = _optional("OKX's API passphrase, a reference; OKX only")
    key_type: Literal["hmac", "ed25519"] | None = _optional(
        "the API key's type (absent: hmac); ed25519: api_secret references the private key in "
        "PKCS#8 PEM, and Binance's WebSocket API logs on once per connection; Binance only"
    )


class RateLimits(Strict):
    orders_per_10s: Annotated[int, Field(ge=1, le=U32_MAX)]
    orders_per_day: Annotated[int, Field(ge=1, le=U32_MAX)]
    request_weight_per_minute: Annotated[int, Field(ge=1, le=U32_MAX)]


Currency = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")]


class Contract(Strict):
    """A contract's terms as the venue lists them (OKX ctVal, ctMult, ctValCcy, ctType,
    settleCcy): one contract is `value * multiplier` of `value_currency`."""

    value: PosDec
    multiplier: PosDec
    value_currency: Currency
    type: Literal["linear", "inverse"]
    settle_currency: Currency


class Listing(Strict):
    """How an OKX or Kraken instrument is listed (docs/venues.md, "Declaring a venue"): the
    config name is `symbol` without its `-` and `/` separators."""

    symbol: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9/-]{1,39}$")]
    type: Literal["spot", "swap", "futures"]
    min_size: PosDec
    contract: Contract | None
    expiry_ms: Annotated[int, Field(ge=1, le=U64_MAX)] | None = _optional(
        "a futures contract's expiry (OKX expTime), ms since the epoch; futures only"
    )


class Instrument(Strict):
    tick_size: PosDec
    lot_size: PosDec
    min_notional: PosDec
    maker_fee_bps: Dec
    taker_fee_bps: Dec
    listing: Listing | None = _optional("the venue's listing; OKX and Kraken only")
    # A derivative's (USD-M, or an OKX swap): set on the venue and verified before the engine
    # trades (absent: the account's, unchecked). On OKX the margin mode goes with each order.
    leverage: Annotated[int, Field(ge=1, le=125)] | None = _optional(
        "the symbol's leverage (1-125), set and verified at start; USD-M or a swap only"
    )
    margin_type: Literal["cross", "isolated"] | None = _optional(
        "the symbol's margin type, set and verified at start (OKX: each order's tdMode); "
        "USD-M or a swap only"
    )


class SimVenue(Strict):
    capture: Annotated[str, Field(min_length=1)]
    speed: PosDec
    latency_us: Annotated[int, Field(ge=0, le=U64_MAX)]
    # The asset the sim charges commissions in (received: base on a buy, quote on a sell, as
    # Binance does without BNB; bnb: at bnb_price from bnb_balance, then the asset received).
    commission_asset: Literal["quote", "base", "received", "bnb"] = "quote"
    bnb_balance: Annotated[Dec, AfterValidator(_non_negative)] = Decimal(0)
    bnb_price: Dec = Decimal(0)

    @model_validator(mode="after")
    def _bnb_priced(self) -> SimVenue:
        if self.commission_asset == "bnb" and self.bnb_price <= 0:
            raise ValueError("bnb_price must be greater than 0 when commission_asset is bnb")
        return self


Asset = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")]
NonNegDec = Annotated[Dec, AfterValidator(_non_negative)]


class Reconcile(Strict):
    """Balances reconciled with the venue's account (`GET /api/v3/account`), at start and every
    `interval_ms` while running. Expected = `starting_balances` (what the account held when
    this engine's journal began) moved by every journaled fill and commission; only these
    assets are compared, each within its absolute `tolerance`."""

    starting_balances: dict[Asset, NonNegDec] = Field(min_length=1)
    tolerance: dict[Asset, NonNegDec] = Field(min_length=1)
    interval_ms: Annotated[int, Field(ge=1000, le=U64_MAX)]


class Exchange(Strict):
    """A config group option of `exchange`: a venue, its endpoints and instruments."""

    venue: Literal["binance_spot", "binance_usdm", "sim", "okx", "kraken"]
    market: Literal["spot", "usdm"]
    endpoints: Endpoints
    credentials: Credentials | None
    rate_limits: RateLimits
    on_gap: Literal["resync", "halt"]
    instruments: dict[Symbol, Instrument] = Field(min_length=1)
    sim: SimVenue | None
    # OKX and Kraken: the venue's metadata file (null: the bundled data/<venue>/ one); the
    # compiler checks the instruments against it and writes its path and SHA-256.
    metadata: Annotated[str, Field(pattern=r"^[^\s]+$")] | None = _optional(
        "the venue's instrument metadata file (OKX instruments.json, Kraken asset_pairs.json), "
        "relative to the project root; OKX and Kraken only"
    )
    metadata_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = _optional(
        "SHA-256 of metadata, written by the compiler"
    )
    # Commission asset -> its price in the quote asset, used when the engine has no book of
    # <asset><quote> on this exchange (a BNB commission's value in P&L).
    commission_reference_prices: dict[
        Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")], PosDec
    ] = Field(default_factory=dict)
    # Binance's selfTradePreventionMode, sent with every order.
    self_trade_prevention: Literal["none", "expire_taker", "expire_maker", "expire_both"] = (
        "expire_maker"
    )
    # How orders and cancels reach the venue: signed REST requests, or a persistent connection
    # to its WebSocket API (endpoints.ws_api; Binance Spot and the sim), with REST the fallback
    # while it is down. Written into the manifest only when not rest.
    order_entry: Literal["rest", "websocket"] = Field(
        default="rest", exclude_if=lambda v: v == "rest"
    )
    # OKX and Kraken: the venue's book checksum verified on every n-th book message of an
    # instrument (1: every message; a corrupted message is found at the next verified one).
    book_checksum_every: Annotated[int, Field(ge=1, le=U32_MAX)] = 1
    # Balances compared with the venue's account (null: not reconciled).
    reconcile: Reconcile | None

    @model_validator(mode="after")
    def _hash_is_compiled(self, info: ValidationInfo) -> Exchange:
        in_manifest = bool(info.context and info.context.get("manifest"))
        if self.metadata_sha256 is not None and not in_manifest:
            raise ValueError("metadata_sha256 is written by the compiler, not in config")
        return self

    @model_validator(mode="after")
    def _derivative_settings_on_usdm(self) -> Exchange:
        if self.market != "usdm":
            for symbol, inst in self.instruments.items():
                if inst.listing is not None and inst.listing.type == "swap":
                    continue  # a swap (OKX)
                for key in ("leverage", "margin_type"):
                    if getattr(inst, key) is not None:
                        raise ValueError(
                            f"instruments.{symbol}.{key}: a derivative's setting (USD-M, or "
                            f"a swap), but {symbol} is {self.market}"
                        )
        return self


# --- strategy -----------------------------------------------------------------------------


class Signal(Strict):
    """The book a market maker takes its fair value from (docs/venues.md, "Several venues in
    one engine"): fair = signal reference + basis, the basis an average of the difference."""

    exchange: Name
    instrument: Symbol
    basis_updates: Annotated[int, Field(ge=1, le=U32_MAX)]


class MarketMakerParams(Strict):
    reference: Literal["mid", "microprice"]
    half_spread_ticks: Annotated[int, Field(ge=1, le=U32_MAX)]
    quote_qty: PosDec
    max_inventory: PosDec
    inventory_skew_ticks: Annotated[int, Field(ge=0, le=U32_MAX)]
    requote_threshold_ticks: Annotated[int, Field(ge=0, le=U32_MAX)]
    signal: Signal | None = _optional(
        "quote around another book's price (another venue's instrument); absent: the quoted "
        "book's own"
    )
    touch: Literal["book", "bbo"] | None = _optional(
        "the top of book quoted against: book (the diff book's), or bbo (the venue's "
        "real-time best bid and offer, Binance bookTicker, whenever newer than the diff book); "
        "absent: book"
    )
    requote: Literal["replace", "amend"] | None = _optional(
        "how a working quote is moved: replace (cancelled and placed again) or amend (its "
        "price and size changed in place; OKX only); absent: replace"
    )


class ImbalanceTakerParams(Strict):
    levels: Annotated[int, Field(ge=1, le=50)]
    threshold: PosDec
    order_qty: PosDec
    max_slippage: PosDec
    cooldown_ms: Annotated[int, Field(ge=0, le=U64_MAX)]


class _StrategyBase(Strict):
    exchange: Name
    instruments: list[Symbol] = Field(min_length=1)


class MarketMaker(_StrategyBase):
    kind: Literal["market_maker"]
    params: MarketMakerParams


class ImbalanceTaker(_StrategyBase):
    kind: Literal["imbalance_taker"]
    params: ImbalanceTakerParams


class ModelTakerParams(Strict):
    """A taker driven by an ONNX model's signal (conf/strategy): the compiler resolves `model`
    (a directory `appliance train` wrote) and `features` into the manifest's `ModelRef` and
    feature declarations."""

    model: str = Field(
        pattern=r"^[^\s]+$",
        description="directory holding model.onnx and model.json (appliance train), "
        "relative to the project root",
    )
    features: Name = Field(description="the feature set, conf/features/<name>.yaml")
    buy_above: Dec = Field(description="buy when the model's signal is above this")
    sell_below: Dec = Field(description="sell when the model's signal is below this")
    order_qty: PosDec
    max_slippage: PosDec
    cooldown_ms: Annotated[int, Field(ge=0, le=U64_MAX)]
    intra_op_threads: Annotated[int, Field(ge=1, le=64)]
    optimization: Literal["disable", "basic", "extended", "all"]


class ModelTaker(_StrategyBase):
    kind: Literal["model_taker"]
    params: ModelTakerParams


Strategy = Annotated[MarketMaker | ImbalanceTaker | ModelTaker, Field(discriminator="kind")]


# --- features (conf/features/*.yaml; the Rust twin is rt_manifest::features) -------------

FEATURE_MAX_LEVELS = 50
FEATURE_MAX_WINDOW_MS = 86_400_000  # one day
Levels = Annotated[int, Field(ge=1, le=FEATURE_MAX_LEVELS, strict=True)]
WindowMs = Annotated[int, Field(ge=1, le=FEATURE_MAX_WINDOW_MS, strict=True)]


class BookImbalance(Strict):
    """(B - A) / (B + A) over the best `levels` levels of each side."""

    name: Literal["book_imbalance"]
    levels: Levels


class MicropriceOffset(Strict):
    """Microprice minus mid, in ticks."""

    name: Literal["microprice_offset"]


class Spread(Strict):
    """Best ask minus best bid, in ticks."""

    name: Literal["spread"]


class MidReturn(Strict):
    """mid(now) / mid(now - window) - 1 (event time)."""

    name: Literal["mid_return"]
    window_ms: WindowMs


class TradeImbalance(Strict):
    """(buy - sell) / (buy + sell) aggressor volume of the trades in the window."""

    name: Literal["trade_imbalance"]
    window_ms: WindowMs


class RealizedVol(Strict):
    """sqrt(sum of squared log mid changes) in the window."""

    name: Literal["realized_vol"]
    window_ms: WindowMs


class TouchQty(Strict):
    """Size at the best bid or ask (base units)."""

    name: Literal["touch_qty"]
    side: Literal["bid", "ask"]


class Inventory(Strict):
    """The strategy's position (base units, signed)."""

    name: Literal["inventory"]


FeatureSpec = Annotated[
    BookImbalance
    | MicropriceOffset
    | Spread
    | MidReturn
    | TradeImbalance
    | RealizedVol
    | TouchQty
    | Inventory,
    Field(discriminator="name"),
]
FEATURE_NAMES = (
    "book_imbalance",
    "microprice_offset",
    "spread",
    "mid_return",
    "trade_imbalance",
    "realized_vol",
    "touch_qty",
    "inventory",
)


def feature_column(feature: BaseModel) -> str:
    """The column of a feature: its name and parameters (`book_imbalance_5`,
    `mid_return_1000ms`, `touch_qty_bid`), as rt_manifest::features::FeatureDecl::column."""
    data = feature.model_dump()
    name = data.pop("name")
    if "levels" in data:
        return f"{name}_{data['levels']}"
    if "window_ms" in data:
        return f"{name}_{data['window_ms']}ms"
    if "side" in data:
        return f"{name}_{data['side']}"
    return str(name)


def _unique_columns(features: list[Any]) -> list[Any]:
    columns = [feature_column(f) for f in features]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ValueError(f"declared twice: {', '.join(twice)}")
    return features


class FeatureSetSpec(Strict):
    """A config group option of `features`: the features, in column order."""

    features: Annotated[list[FeatureSpec], Field(min_length=1), AfterValidator(_unique_columns)]

    def columns(self) -> list[str]:
        return [feature_column(f) for f in self.features]


# --- the model strategy as the manifest carries it (rt_manifest::model::ModelTakerParams) ----

MODEL_MAX_OPSET = 20  # the ai.onnx opset of ONNX Runtime 1.17, the oldest the engine loads


class ModelRef(Strict):
    """The model file a strategy runs, pinned by its sha256, and its IO signature."""

    path: str = Field(pattern=r"^[^\s]+$", description="model.onnx, relative to the engine's cwd")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    input_name: str = Field(min_length=1)
    input_width: Annotated[int, Field(ge=1, le=100_000)]
    output_name: str = Field(min_length=1)
    output_width: Annotated[int, Field(ge=1, le=100_000)]
    opset: Annotated[int, Field(ge=1, le=MODEL_MAX_OPSET)]
    intra_op_threads: Annotated[int, Field(ge=1, le=64)]
    optimization: Literal["disable", "basic", "extended", "all"]


class ModelTakerManifestParams(Strict):
    model: ModelRef
    features: FeatureSetSpec
    buy_above: Dec
    sell_below: Dec
    order_qty: PosDec
    max_slippage: PosDec
    cooldown_ms: Annotated[int, Field(ge=0, le=U64_MAX)]


class ModelTakerManifest(_StrategyBase):
    kind: Literal["model_taker"]
    # The rules across fields (input width = feature count, sell_below < buy_above) are in
    # checks.py, which the compiler and the manifest loader share.
    params: ModelTakerManifestParams


ManifestStrategy = Annotated[
    MarketMaker | ImbalanceTaker | ModelTakerManifest, Field(discriminator="kind")
]


# --- risk ---------------------------------------------------------------------------------


class KillSwitch(Strict):
    enabled: bool
    cancel_on_trigger: bool


class OrderRate(Strict):
    per_second: Annotated[int, Field(ge=1, le=U32_MAX)]
    burst: Annotated[int, Field(ge=1, le=U32_MAX)]


class InstrumentLimits(Strict):
    max_position: PosDec
    max_order_qty: PosDec
    max_order_notional: PosDec
    max_position_notional: PosDec
    price_band_bps: Annotated[int, Field(ge=1, le=10000)]


class AssetLimits(Strict):
    """A limit on one asset's position summed over every venue of an engine."""

    max_position: PosDec
    instruments: list[Symbol] = Field(min_length=1)


class Risk(Strict):
    """The `risk` config group: global limits, loss limits, kill switch, per-instrument limits."""

    kill_switch: KillSwitch
    max_daily_loss: PosDec
    max_drawdown: PosDec
    max_gross_exposure: PosDec
    reducing_at_pct: Annotated[int, Field(ge=1, le=100)]
    max_open_orders: Annotated[int, Field(ge=1, le=U32_MAX)]
    order_rate: OrderRate
    feed_stale_ms: Annotated[int, Field(ge=1, le=U64_MAX)]
    # A position on a book stale beyond feed_stale_ms moves the state to REDUCING; beyond this
    # (greater than feed_stale_ms) to HALTED.
    stale_exposure_halt_ms: Annotated[int, Field(ge=1, le=U64_MAX)]
    min_liquidation_distance_bps: Annotated[int, Field(ge=1, le=10000)] | None = _optional(
        "derivatives: a position closer than this to its liquidation price (bps of the mark) "
        "halts trading; absent: not watched"
    )
    reduce_only_before_expiry_ms: Annotated[int, Field(ge=0, le=U64_MAX)] | None = _optional(
        "futures: this long before a contract's expiry only orders reducing its position are "
        "sent, none from the expiry on; absent: 600000 (10 minutes)"
    )
    instruments: dict[Symbol, InstrumentLimits]
    assets: dict[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")], AssetLimits] | None = (
        _optional(
            "asset -> a limit on the position summed over every exchange of the engine, "
            "counting the listed instruments (risk.instruments keys); absent: none"
        )
    )


# --- deployment ---------------------------------------------------------------------------


class Bus(Strict):
    events: Annotated[str, Field(pattern=r"^(tcp|ipc)://\S+$")]
    control: Annotated[str, Field(pattern=r"^(tcp|ipc)://\S+$")]
    hwm: Annotated[int, Field(ge=1000, le=U32_MAX)]


class Journal(Strict):
    dir: Annotated[str, Field(min_length=1)]
    fsync: Literal["always", "interval", "never"]
    fsync_interval_ms: Annotated[int, Field(ge=1, le=U32_MAX)]


# A latency threshold in microseconds, 1 us to 10 s.
AlertMicros = Annotated[
    int,
    Field(
        ge=1,
        le=10_000_000,
        description="tick-to-order p99 above which the PyRtTickToOrderSlow alert fires (us)",
    ),
]


class Metrics(Strict):
    """The engine's Prometheus endpoint (`GET /metrics`)."""

    listen: Annotated[
        str,
        Field(
            pattern=r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]{1,5}$",
            description="address:port, e.g. 127.0.0.1:9464 (loopback: scraped from this host only)",
        ),
    ]
    tick_to_order_p99_alert_us: AlertMicros


class FlightRecorder(Strict):
    """The live engine's flight recorder: the market data it consumed (raw frames with their
    receive times, the REST snapshots it fetched) as captures under `<dir>/<exchange>/`."""

    dir: Annotated[str, Field(min_length=1)]
    # A file is closed and the next begun at this compressed size (MiB).
    file_mb: Annotated[int, Field(ge=1, le=U32_MAX)]
    # The oldest files of an exchange are deleted beyond this total (MiB, >= file_mb).
    budget_mb: Annotated[int, Field(ge=1, le=U32_MAX)]


class AnomalyConfig(Strict):
    """Anomaly detection: the engine compares its behaviour with the ranges in a baseline file
    written by `appliance baseline` (a backtest of the same config on recent data)."""

    # The baseline file, relative to the project root (baselines/<deployment>/<engine>.json).
    baseline: Annotated[str, Field(min_length=1, pattern=r"^[^\s]+$")]


class EngineSpec(Strict):
    host: Name
    exchanges: list[Name] = Field(min_length=1)
    strategies: list[Name] = Field(min_length=1)
    bus: Bus
    journal: Journal
    metrics: Metrics
    flight_recorder: FlightRecorder | None
    # Off unless set: detection needs a baseline derived first (`appliance baseline`).
    anomaly: AnomalyConfig | None = None


class Rollout(Strict):
    """How `appliance apply` rolls the deployment out, host after host (never in a manifest:
    a saved plan binds it instead)."""

    soak_seconds: Annotated[int, Field(ge=0, le=86400)] = Field(
        60,
        description="seconds a new release must stay healthy on a host (running, feeds LIVE, "
        "risk ACTIVE, no restart, the planned manifest) before the next host starts; 0: none",
    )


class DeploymentSpec(Strict):
    """The `deployment` section: paper or live, and which host runs which engine."""

    mode: Literal["paper", "live"]
    engines: dict[Name, EngineSpec] = Field(min_length=1)
    rollout: Rollout = Field(default_factory=Rollout)


# --- target (how `appliance apply` reaches a host; never part of a manifest) ----------------


class TargetMonitoring(Strict):
    """Where the host's Prometheus and Grafana read what the engine role writes for them
    (absolute paths on the host; under a prefix root they land under that root)."""

    # file_sd directory of the host's Prometheus (or agent): the role writes
    # py_rt_<engine>.json there, labelled with the engine and the manifest it applied.
    prometheus_file_sd: Annotated[str, Field(pattern=r"^/[^\s]*$")] | None
    # Grafana's provisioning directory: the role installs the py_rt dashboard and a
    # dashboards provider (dashboards/py_rt.yaml) for it.
    grafana_provisioning: Annotated[str, Field(pattern=r"^/[^\s]*$")] | None


class Target(Strict):
    """A config group option of `target`: where and how a host's engine is installed.

    `root` is "/" on a real machine; any other path is a prefix directory that stands in for
    the host's filesystem (relative paths are under the project root: `state/hosts/<host>`).
    """

    connection: Literal["local", "ssh"]
    ssh_user: Name | None
    ssh_port: Annotated[int, Field(ge=1, le=65535)] | None
    become: bool
    root: Annotated[str, Field(min_length=1, pattern=r"^[^\s]+$")]
    # auto: systemd when it is PID 1 on the host and root is "/", else appliance's supervisor.
    service_manager: Literal["systemd", "supervisor", "auto"]
    # The account the engine runs as (created by the engine role); null: the connecting user.
    service_user: Name | None
    # Write the kernel's runtime tuning (/sys, /proc, sysctl, bootloader): tuned hosts only.
    tune_runtime: bool
    # Verify also that the tuning is in effect (kernel arguments, THP, governor).
    verify_tuning: bool
    # Scrape target and dashboard for the host's monitoring (null paths: none is written).
    monitoring: TargetMonitoring


# --- the manifest -------------------------------------------------------------------------


class Provenance(Strict):
    compiler: str
    git_commit: str | None
    git_dirty: bool | None
    choices: dict[str, str]
    overrides: list[str]


class ManifestDeployment(Strict):
    name: Annotated[str, Field(min_length=1)]
    mode: Literal["paper", "live"]


class AnomalyRange(Strict):
    low: Dec
    high: Dec


# The figures anomaly detection measures (engine/runtime/src/anomaly.rs), besides
# md_messages_per_s.<exchange> for each exchange of the engine.
ANOMALY_FIGURES = (
    "fill_ratio",
    "orders_per_1k_messages",
    "pnl_per_hour",
    "markout_bps",
    "tick_to_order_p99_us",
)
ANOMALY_MD_RATE = "md_messages_per_s."


class ManifestAnomaly(Strict):
    """`engine.anomaly` in a manifest: the baseline's ranges, inlined by the compiler."""

    baseline: Annotated[str, Field(min_length=1)]
    baseline_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    window_s: Annotated[int, Field(ge=5, le=86400)]
    derivation: Annotated[str, Field(min_length=1)]
    figures: dict[str, AnomalyRange] = Field(min_length=1)


class ManifestEngine(Strict):
    id: Name
    host: Name
    bus: Bus
    journal: Journal
    metrics: Metrics
    flight_recorder: FlightRecorder | None
    anomaly: ManifestAnomaly | None


class ManifestHost(Host):
    name: Name


class Manifest(Strict):
    """One engine's manifest: the contract `rt-engine` loads (docs/manifest.md)."""

    manifest_version: Literal[1]
    content_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    provenance: Provenance
    deployment: ManifestDeployment
    engine: ManifestEngine
    host: ManifestHost
    exchanges: dict[Name, Exchange] = Field(min_length=1)
    strategies: dict[Name, ManifestStrategy] = Field(min_length=1)
    risk: Risk


# The config groups whose options are validated on their own (and get a JSON Schema).
GROUP_TYPES: dict[str, Any] = {
    "host": Host,
    "exchange": Exchange,
    "strategy": Strategy,
    "risk": Risk,
    "target": Target,
    "features": FeatureSetSpec,
}
