from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    BUY: _ClassVar[Side]
    SELL: _ClassVar[Side]

class OrderKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_KIND_UNSPECIFIED: _ClassVar[OrderKind]
    LIMIT: _ClassVar[OrderKind]
    MARKET: _ClassVar[OrderKind]
    IOC: _ClassVar[OrderKind]
    POST_ONLY: _ClassVar[OrderKind]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    SENT: _ClassVar[OrderStatus]
    ACCEPTED: _ClassVar[OrderStatus]
    PARTIALLY_FILLED: _ClassVar[OrderStatus]
    FILLED: _ClassVar[OrderStatus]
    CANCELLED: _ClassVar[OrderStatus]
    REJECTED: _ClassVar[OrderStatus]
    EXPIRED: _ClassVar[OrderStatus]

class RiskStateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_STATE_UNSPECIFIED: _ClassVar[RiskStateKind]
    ACTIVE: _ClassVar[RiskStateKind]
    REDUCING: _ClassVar[RiskStateKind]
    HALTED: _ClassVar[RiskStateKind]

class FeedStateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_STATE_UNSPECIFIED: _ClassVar[FeedStateKind]
    CONNECTING: _ClassVar[FeedStateKind]
    SYNCING: _ClassVar[FeedStateKind]
    LIVE: _ClassVar[FeedStateKind]
    STALE: _ClassVar[FeedStateKind]
    RESYNCING: _ClassVar[FeedStateKind]
SIDE_UNSPECIFIED: Side
BUY: Side
SELL: Side
ORDER_KIND_UNSPECIFIED: OrderKind
LIMIT: OrderKind
MARKET: OrderKind
IOC: OrderKind
POST_ONLY: OrderKind
ORDER_STATUS_UNSPECIFIED: OrderStatus
SENT: OrderStatus
ACCEPTED: OrderStatus
PARTIALLY_FILLED: OrderStatus
FILLED: OrderStatus
CANCELLED: OrderStatus
REJECTED: OrderStatus
EXPIRED: OrderStatus
RISK_STATE_UNSPECIFIED: RiskStateKind
ACTIVE: RiskStateKind
REDUCING: RiskStateKind
HALTED: RiskStateKind
FEED_STATE_UNSPECIFIED: FeedStateKind
CONNECTING: FeedStateKind
SYNCING: FeedStateKind
LIVE: FeedStateKind
STALE: FeedStateKind
RESYNCING: FeedStateKind

class Event(_message.Message):
    __slots__ = ("engine_id", "seq", "ts_ns", "wall_ns", "order", "fill", "position", "risk", "heartbeat", "feed", "anomaly")
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TS_NS_FIELD_NUMBER: _ClassVar[int]
    WALL_NS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FEED_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    seq: int
    ts_ns: int
    wall_ns: int
    order: OrderUpdate
    fill: Fill
    position: Position
    risk: RiskChange
    heartbeat: Heartbeat
    feed: FeedState
    anomaly: Anomaly
    def __init__(self, engine_id: _Optional[str] = ..., seq: _Optional[int] = ..., ts_ns: _Optional[int] = ..., wall_ns: _Optional[int] = ..., order: _Optional[_Union[OrderUpdate, _Mapping]] = ..., fill: _Optional[_Union[Fill, _Mapping]] = ..., position: _Optional[_Union[Position, _Mapping]] = ..., risk: _Optional[_Union[RiskChange, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., feed: _Optional[_Union[FeedState, _Mapping]] = ..., anomaly: _Optional[_Union[Anomaly, _Mapping]] = ...) -> None: ...

class OrderUpdate(_message.Message):
    __slots__ = ("order_id", "strategy", "exchange", "symbol", "side", "kind", "price", "qty", "filled_qty", "status", "reject_reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QTY_FIELD_NUMBER: _ClassVar[int]
    FILLED_QTY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    strategy: str
    exchange: str
    symbol: str
    side: Side
    kind: OrderKind
    price: str
    qty: str
    filled_qty: str
    status: OrderStatus
    reject_reason: str
    def __init__(self, order_id: _Optional[int] = ..., strategy: _Optional[str] = ..., exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., kind: _Optional[_Union[OrderKind, str]] = ..., price: _Optional[str] = ..., qty: _Optional[str] = ..., filled_qty: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., reject_reason: _Optional[str] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("order_id", "strategy", "exchange", "symbol", "side", "price", "qty", "fee", "maker", "leaves_qty")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QTY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    MAKER_FIELD_NUMBER: _ClassVar[int]
    LEAVES_QTY_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    strategy: str
    exchange: str
    symbol: str
    side: Side
    price: str
    qty: str
    fee: str
    maker: bool
    leaves_qty: str
    def __init__(self, order_id: _Optional[int] = ..., strategy: _Optional[str] = ..., exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., price: _Optional[str] = ..., qty: _Optional[str] = ..., fee: _Optional[str] = ..., maker: _Optional[bool] = ..., leaves_qty: _Optional[str] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("exchange", "symbol", "qty", "avg_entry_price", "realised_pnl", "unrealised_pnl", "fees", "mark_age_ms")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QTY_FIELD_NUMBER: _ClassVar[int]
    AVG_ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    REALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    UNREALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    MARK_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    symbol: str
    qty: str
    avg_entry_price: str
    realised_pnl: str
    unrealised_pnl: str
    fees: str
    mark_age_ms: int
    def __init__(self, exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., qty: _Optional[str] = ..., avg_entry_price: _Optional[str] = ..., realised_pnl: _Optional[str] = ..., unrealised_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., mark_age_ms: _Optional[int] = ...) -> None: ...

class RiskChange(_message.Message):
    __slots__ = ("from_state", "to_state", "cause", "detail")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    from_state: RiskStateKind
    to_state: RiskStateKind
    cause: str
    detail: str
    def __init__(self, from_state: _Optional[_Union[RiskStateKind, str]] = ..., to_state: _Optional[_Union[RiskStateKind, str]] = ..., cause: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class FeedState(_message.Message):
    __slots__ = ("exchange", "state", "reconnects", "gaps", "malformed", "ring_overflows", "snapshots")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    RING_OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    state: FeedStateKind
    reconnects: int
    gaps: int
    malformed: int
    ring_overflows: int
    snapshots: int
    def __init__(self, exchange: _Optional[str] = ..., state: _Optional[_Union[FeedStateKind, str]] = ..., reconnects: _Optional[int] = ..., gaps: _Optional[int] = ..., malformed: _Optional[int] = ..., ring_overflows: _Optional[int] = ..., snapshots: _Optional[int] = ...) -> None: ...

class StageLatency(_message.Message):
    __slots__ = ("stage", "count", "p50_ns", "p99_ns", "max_ns")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    P50_NS_FIELD_NUMBER: _ClassVar[int]
    P99_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_NS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    count: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    def __init__(self, stage: _Optional[str] = ..., count: _Optional[int] = ..., p50_ns: _Optional[int] = ..., p99_ns: _Optional[int] = ..., max_ns: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("uptime_ms", "risk_state", "paused", "open_orders", "equity", "realised_pnl", "fees", "counters", "latency", "positions", "feeds", "manifest_sha256", "anomalies")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    RISK_STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    REALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    FEEDS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    uptime_ms: int
    risk_state: RiskStateKind
    paused: bool
    open_orders: int
    equity: str
    realised_pnl: str
    fees: str
    counters: _containers.ScalarMap[str, int]
    latency: _containers.RepeatedCompositeFieldContainer[StageLatency]
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    feeds: _containers.RepeatedCompositeFieldContainer[FeedState]
    manifest_sha256: str
    anomalies: _containers.RepeatedCompositeFieldContainer[Anomaly]
    def __init__(self, uptime_ms: _Optional[int] = ..., risk_state: _Optional[_Union[RiskStateKind, str]] = ..., paused: _Optional[bool] = ..., open_orders: _Optional[int] = ..., equity: _Optional[str] = ..., realised_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., latency: _Optional[_Iterable[_Union[StageLatency, _Mapping]]] = ..., positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ..., feeds: _Optional[_Iterable[_Union[FeedState, _Mapping]]] = ..., manifest_sha256: _Optional[str] = ..., anomalies: _Optional[_Iterable[_Union[Anomaly, _Mapping]]] = ...) -> None: ...

class Anomaly(_message.Message):
    __slots__ = ("figure", "value", "low", "high", "window_s", "active", "derivation", "baseline_sha256")
    FIGURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SHA256_FIELD_NUMBER: _ClassVar[int]
    figure: str
    value: float
    low: float
    high: float
    window_s: int
    active: bool
    derivation: str
    baseline_sha256: str
    def __init__(self, figure: _Optional[str] = ..., value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., window_s: _Optional[int] = ..., active: _Optional[bool] = ..., derivation: _Optional[str] = ..., baseline_sha256: _Optional[str] = ...) -> None: ...

class ControlRequest(_message.Message):
    __slots__ = ("status", "pause", "resume", "flatten", "kill", "tighten")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    FLATTEN_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    TIGHTEN_FIELD_NUMBER: _ClassVar[int]
    status: StatusRequest
    pause: PauseRequest
    resume: ResumeRequest
    flatten: FlattenRequest
    kill: KillRequest
    tighten: TightenRequest
    def __init__(self, status: _Optional[_Union[StatusRequest, _Mapping]] = ..., pause: _Optional[_Union[PauseRequest, _Mapping]] = ..., resume: _Optional[_Union[ResumeRequest, _Mapping]] = ..., flatten: _Optional[_Union[FlattenRequest, _Mapping]] = ..., kill: _Optional[_Union[KillRequest, _Mapping]] = ..., tighten: _Optional[_Union[TightenRequest, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlattenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TightenRequest(_message.Message):
    __slots__ = ("limit", "value")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    limit: str
    value: str
    def __init__(self, limit: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ControlReply(_message.Message):
    __slots__ = ("ok", "error", "status")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    status: Status
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., status: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("engine_id", "host", "deployment", "mode", "manifest_sha256", "risk_state", "paused", "uptime_ms", "open_orders", "equity", "positions", "feeds", "last_event_seq", "pid")
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    RISK_STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    FEEDS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    host: str
    deployment: str
    mode: str
    manifest_sha256: str
    risk_state: RiskStateKind
    paused: bool
    uptime_ms: int
    open_orders: int
    equity: str
    positions: _containers.RepeatedCompositeFieldContainer[Position]
    feeds: _containers.RepeatedCompositeFieldContainer[FeedState]
    last_event_seq: int
    pid: int
    def __init__(self, engine_id: _Optional[str] = ..., host: _Optional[str] = ..., deployment: _Optional[str] = ..., mode: _Optional[str] = ..., manifest_sha256: _Optional[str] = ..., risk_state: _Optional[_Union[RiskStateKind, str]] = ..., paused: _Optional[bool] = ..., uptime_ms: _Optional[int] = ..., open_orders: _Optional[int] = ..., equity: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[Position, _Mapping]]] = ..., feeds: _Optional[_Iterable[_Union[FeedState, _Mapping]]] = ..., last_event_seq: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...
