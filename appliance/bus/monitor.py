"""What `appliance monitor` and `appliance run` show: events folded into one engine's state.

`EngineView` keeps the last heartbeat (P&L, counters, latency, positions, feeds), the last
`Status` reply, open orders (from order updates), fills and risk changes seen, and message
rates; `render` draws it as rich tables and `render_summary` as the end-of-run summary. It does
no I/O, so tests feed it events directly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from appliance.bus import bus_pb2 as pb
from appliance.bus.client import Malformed, dec, enum_name

# Order states after which an order is no longer open.
_DONE = {pb.FILLED, pb.CANCELLED, pb.REJECTED, pb.EXPIRED}
# Pipeline order for the latency table (names from bus.proto and the engine); others go last.
_STAGES = (
    "frame_to_parsed",
    "frame_to_strategy",
    "parsed_to_book",
    "book_to_decision",
    "book_strategy_risk",
    "decision_to_risk",
    "risk_to_wire",
    "decision_to_wire",
    "tick_to_order",
    "order_to_ack",
)


@dataclass
class Rate:
    """A counter's per-second rate between the last two samples."""

    value: int = 0
    at: float | None = None
    per_s: float | None = None

    def sample(self, value: int, at: float) -> None:
        if self.at is not None and at > self.at and value >= self.value:
            self.per_s = (value - self.value) / (at - self.at)
        self.value, self.at = value, at


@dataclass
class EngineView:
    engine_id: str = ""
    endpoint: str = ""
    heartbeat: pb.Heartbeat | None = None
    heartbeat_at: float | None = None
    status: pb.Status | None = None
    status_error: str | None = None
    open_orders: dict[int, pb.OrderUpdate] = field(default_factory=dict)
    fills: int = 0
    fill_qty: dict[str, Decimal] = field(default_factory=dict)
    orders_seen: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    risk_changes: list[pb.RiskChange] = field(default_factory=list)
    # Anomalies raised now (figure -> the last event or heartbeat entry), and every change seen.
    anomalies: dict[str, pb.Anomaly] = field(default_factory=dict)
    anomaly_changes: list[pb.Anomaly] = field(default_factory=list)
    feeds: dict[str, pb.FeedState] = field(default_factory=dict)
    positions: dict[tuple[str, str], pb.Position] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    rates: dict[str, Rate] = field(default_factory=dict)
    events: int = 0
    event_rate: Rate = field(default_factory=Rate)
    lost: int = 0
    gaps: int = 0
    restarts: int = 0
    malformed: int = 0
    started: float = field(default_factory=time.monotonic)

    # ---- folding ----

    def apply(self, event: pb.Event, now: float | None = None, restarted: bool = False) -> None:
        at = time.monotonic() if now is None else now
        if restarted:
            # A new engine process: its orders and counters start afresh (positions come back
            # from its journal and its next heartbeat).
            self.open_orders.clear()
            self.rates.clear()
            self.recent.append("engine restarted (seq went back)")
        self.events += 1
        if not self.engine_id:
            self.engine_id = event.engine_id
        body = event.WhichOneof("body")
        if body == "heartbeat":
            hb = event.heartbeat
            self.heartbeat, self.heartbeat_at = hb, at
            for name, value in hb.counters.items():
                self.rates.setdefault(name, Rate()).sample(value, at)
            self.event_rate.sample(self.events, at)
            for pos in hb.positions:
                self.positions[(pos.exchange, pos.symbol)] = pos
            for feed in hb.feeds:
                self.feeds[feed.exchange] = feed
            self.anomalies = {a.figure: a for a in hb.anomalies if a.active}
        elif body == "order":
            order = event.order
            self.orders_seen += 1
            if order.status in _DONE:
                self.open_orders.pop(order.order_id, None)
            else:
                self.open_orders[order.order_id] = order
            if order.status == pb.REJECTED:
                reason = order.reject_reason or "unspecified"
                self.rejects[reason] = self.rejects.get(reason, 0) + 1
                self.recent.append(
                    f"rejected #{order.order_id} {order.symbol} {enum_name(order, 'side')}"
                    f" {order.qty} @ {order.price}: {reason}"
                )
        elif body == "fill":
            fill = event.fill
            self.fills += 1
            qty = dec(fill.qty) or Decimal(0)
            self.fill_qty[fill.symbol] = self.fill_qty.get(fill.symbol, Decimal(0)) + qty
            self.recent.append(
                f"fill #{fill.order_id} {fill.symbol} {enum_name(fill, 'side')} {fill.qty}"
                f" @ {fill.price} fee {fill.fee} {'maker' if fill.maker else 'taker'}"
            )
        elif body == "position":
            pos = event.position
            self.positions[(pos.exchange, pos.symbol)] = pos
        elif body == "risk":
            risk = event.risk
            self.risk_changes.append(risk)
            self.recent.append(
                f"risk {enum_name(risk, 'from_state')} -> {enum_name(risk, 'to_state')}"
                f" ({risk.cause or 'no cause given'})"
            )
        elif body == "feed":
            self.feeds[event.feed.exchange] = event.feed
        elif body == "anomaly":
            a = event.anomaly
            self.anomaly_changes.append(a)
            if a.active:
                self.anomalies[a.figure] = a
            else:
                self.anomalies.pop(a.figure, None)
            self.recent.append(describe_anomaly(a))

    def apply_status(self, status: pb.Status) -> None:
        self.status = status
        if not self.engine_id:
            self.engine_id = status.engine_id
        for pos in status.positions:
            self.positions[(pos.exchange, pos.symbol)] = pos
        for feed in status.feeds:
            self.feeds[feed.exchange] = feed

    # ---- reading ----

    @property
    def risk_state(self) -> str:
        if self.heartbeat is not None:
            return enum_name(self.heartbeat, "risk_state")
        if self.status is not None:
            return enum_name(self.status, "risk_state")
        return "unknown"

    @property
    def paused(self) -> bool | None:
        if self.heartbeat is not None:
            return self.heartbeat.paused
        if self.status is not None:
            return self.status.paused
        return None

    def counter(self, name: str) -> int | None:
        if self.heartbeat is None or name not in self.heartbeat.counters:
            return None
        return int(self.heartbeat.counters[name])


def _money(text: str) -> str:
    try:
        value = dec(text)
    except Malformed:
        return f"{text} (malformed)"
    return "-" if value is None else f"{value:,f}"


def _qty(text: str) -> str:
    try:
        value = dec(text)
    except Malformed:
        return f"{text} (malformed)"
    return "-" if value is None else f"{value:f}"


def _ns(value: int) -> str:
    if value < 1_000:
        return f"{value} ns"
    if value < 1_000_000:
        return f"{value / 1_000:.1f} µs"
    return f"{value / 1_000_000:.2f} ms"


def _uptime(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


_RISK_STYLE = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "bold red"}


def header(view: EngineView, now: float | None = None) -> Text:
    at = time.monotonic() if now is None else now
    text = Text()
    text.append(f"engine {view.engine_id or '?'}", style="bold")
    if view.status is not None:
        st = view.status
        text.append(f"  {st.deployment} ({st.mode}) on {st.host}, pid {st.pid}")
    text.append("  risk ")
    state = view.risk_state
    text.append(state, style=_RISK_STYLE.get(state, ""))
    if view.paused:
        text.append("  PAUSED", style="bold yellow")
    if view.heartbeat is not None:
        text.append(f"  up {_uptime(view.heartbeat.uptime_ms)}")
        if view.heartbeat.manifest_sha256:
            text.append(f"  manifest {view.heartbeat.manifest_sha256[:12]}")
    if view.endpoint:
        text.append(f"  bus {view.endpoint}", style="dim")
    if view.lost:
        text.append(
            f"\nWARNING: {view.lost} bus message{'s' if view.lost != 1 else ''} lost "
            f"({view.gaps} gap{'s' if view.gaps != 1 else ''} in seq): figures may be stale",
            style="bold red",
        )
    if view.restarts:
        text.append(f"\nengine restarted {view.restarts}x while watching", style="yellow")
    if view.malformed:
        text.append(f"\n{view.malformed} undecodable bus messages skipped", style="yellow")
    if view.heartbeat_at is None:
        text.append("\nwaiting for the first heartbeat ...", style="yellow")
    elif at - view.heartbeat_at > 3.0:
        text.append(
            f"\nno heartbeat for {at - view.heartbeat_at:.0f} s (engine stalled or stopped?)",
            style="bold red",
        )
    if view.status_error:
        text.append(f"\nstatus: {view.status_error}", style="yellow")
    return text


def _unrealised(view: EngineView) -> str:
    """The engine's unrealised P&L in its quote currency: equity - realised + fees, from the
    heartbeat's totals. Each position's own figure is in its settlement currency (an inverse
    contract's in its coin), so the positions' figures are added only without a heartbeat."""
    hb = view.heartbeat
    if hb is not None:
        try:
            parts = [dec(hb.equity), dec(hb.realised_pnl), dec(hb.fees)]
        except Malformed:
            parts = []
        if len(parts) == 3 and all(x is not None for x in parts):
            equity, realised, fees = (x if x is not None else Decimal(0) for x in parts)
            return f"{equity - realised + fees:,f}"
    unreal = [dec(p.unrealised_pnl) for p in view.positions.values()]
    known = [u for u in unreal if u is not None]
    return f"{sum(known, Decimal(0)):,f}" if known else "-"


def pnl_table(view: EngineView) -> Table:
    table = Table(title="P&L", show_header=False, title_justify="left")
    hb = view.heartbeat
    equity = hb.equity if hb is not None else (view.status.equity if view.status else "")
    table.add_row("equity", _money(equity))
    table.add_row("realised", _money(hb.realised_pnl) if hb is not None else "-")
    table.add_row("unrealised", _unrealised(view))
    table.add_row("fees", _money(hb.fees) if hb is not None else "-")
    fills = view.counter("fills")
    table.add_row("fills", str(fills if fills is not None else view.fills))
    open_n = hb.open_orders if hb is not None else len(view.open_orders)
    table.add_row("open orders", str(open_n))
    return table


def positions_table(view: EngineView) -> Table:
    table = Table(title="positions", title_justify="left")
    for col in ("exchange", "symbol", "qty", "avg entry", "realised", "unrealised", "fees"):
        table.add_column(col, justify="left" if col in ("exchange", "symbol") else "right")
    for (exchange, symbol), p in sorted(view.positions.items()):
        table.add_row(
            exchange,
            symbol,
            _qty(p.qty),
            _money(p.avg_entry_price),
            _money(p.realised_pnl),
            _money(p.unrealised_pnl),
            _money(p.fees),
        )
    if not view.positions:
        table.add_row("-", "-", "-", "-", "-", "-", "-")
    return table


def orders_table(view: EngineView, limit: int = 10) -> Table:
    table = Table(title="open orders (seen on the bus)", title_justify="left")
    for col in ("id", "strategy", "symbol", "side", "kind", "price", "qty", "filled", "status"):
        table.add_column(col)
    for oid in sorted(view.open_orders)[-limit:]:
        o = view.open_orders[oid]
        table.add_row(
            str(oid),
            o.strategy,
            o.symbol,
            enum_name(o, "side"),
            enum_name(o, "kind"),
            _money(o.price),
            _qty(o.qty),
            _qty(o.filled_qty),
            enum_name(o, "status"),
        )
    if not view.open_orders:
        table.add_row(*["-"] * 9)
    if len(view.open_orders) > limit:
        table.caption = f"{len(view.open_orders) - limit} more"
    return table


def latency_table(latency: list[pb.StageLatency] | None, build: str | None = None) -> Table:
    """The stages' latency; `build` (the engine's build profile, when known) goes in the title:
    a debug build's figures are several times a release build's and must not be read as them."""
    title = "latency" if build is None else f"latency ({build} build)"
    table = Table(title=title, title_justify="left")
    if build == "debug":
        table.caption = "a debug build is several times slower: not the engine's latency"
        table.caption_justify = "left"
    for col in ("stage", "count", "p50", "p99", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    # Per-exchange stages (`frame_to_strategy.<exchange>`) are in the feeds table.
    rows = [s for s in latency or [] if "." not in s.stage]
    order = {name: i for i, name in enumerate(_STAGES)}
    rows.sort(key=lambda s: (order.get(s.stage, len(order)), s.stage))
    for s in rows:
        if s.count == 0:
            table.add_row(s.stage, "0", "-", "-", "-")
        else:
            table.add_row(s.stage, f"{s.count:,}", _ns(s.p50_ns), _ns(s.p99_ns), _ns(s.max_ns))
    if not rows:
        table.add_row("-", "-", "-", "-", "-")
    return table


def rates_table(view: EngineView) -> Table:
    table = Table(title="counters", title_justify="left")
    for col in ("counter", "total", "per s"):
        table.add_column(col, justify="left" if col == "counter" else "right")
    zero = 0
    for name, rate in sorted(view.rates.items()):
        if rate.value == 0:
            zero += 1
            continue
        per_s = "-" if rate.per_s is None else f"{rate.per_s:,.1f}"
        table.add_row(name, f"{rate.value:,}", per_s)
    if zero:
        table.caption = f"{zero} counters at 0 not shown"
    bus = "-" if view.event_rate.per_s is None else f"{view.event_rate.per_s:,.1f}"
    table.add_row("bus events (this monitor)", f"{view.events:,}", bus, style="dim")
    return table


def _books(view: EngineView, name: str, state: str) -> Text:
    """An exchange's book sync state: a checksummed venue's books waiting for their snapshot
    (`books_invalid.<exchange>`), else the feed's: synced while LIVE."""
    counters = view.heartbeat.counters if view.heartbeat is not None else {}
    invalid = counters.get(f"books_invalid.{name}")
    if invalid is not None:
        if invalid:
            return Text(f"{invalid} invalid", style="yellow")
        return Text("verified", style="green")
    return Text("synced", style="green") if state == "LIVE" else Text("syncing", style="yellow")


def feeds_table(view: EngineView) -> Table:
    """Each exchange's feed state, book sync state and frame -> strategy latency."""
    table = Table(title="feeds", title_justify="left")
    # p50/p99: frame read by the feed -> popped by the strategy thread, for this exchange.
    cols = ("exchange", "state", "books", "p50", "p99", "reconn", "gaps", "snaps")
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:3] else "right", no_wrap=True)
    latency = {
        s.stage.partition(".")[2]: s
        for s in (view.heartbeat.latency if view.heartbeat is not None else [])
        if s.stage.startswith("frame_to_strategy.")
    }
    for name, f in sorted(view.feeds.items()):
        state = enum_name(f, "state")
        # Malformed frames and ring overflows, when there are any, after the state.
        trouble = [
            f"{n} {what}" for n, what in ((f.malformed, "bad"), (f.ring_overflows, "ovfl")) if n
        ]
        lat = latency.get(name)
        p50, p99 = (
            (_ns(lat.p50_ns), _ns(lat.p99_ns)) if lat is not None and lat.count else ("-", "-")
        )
        table.add_row(
            name,
            Text(" ".join([state, *trouble]), style="green" if state == "LIVE" else "yellow"),
            _books(view, name, state),
            p50,
            p99,
            str(f.reconnects),
            str(f.gaps),
            str(f.snapshots),
        )
    if not view.feeds:
        table.add_row(*["-"] * len(cols))
    return table


def describe_anomaly(a: pb.Anomaly) -> str:
    """One line: the figure, raised or cleared, its value against the range expected."""
    what = "raised" if a.active else "cleared"
    return (
        f"anomaly {what}: {a.figure} {a.value:.4g} over {a.window_s} s, expected "
        f"{a.low:.4g}..{a.high:.4g}"
    )


def anomalies_table(view: EngineView) -> Table:
    """The anomalies raised now, with how their range was derived."""
    table = Table(title="anomalies", title_justify="left")
    for col in ("figure", "value", "expected", "window", "derived from"):
        table.add_column(col, justify="right" if col in ("value", "window") else "left")
    for name, a in sorted(view.anomalies.items()):
        table.add_row(
            Text(name, style="red"),
            f"{a.value:.4g}",
            f"{a.low:.4g}..{a.high:.4g}",
            f"{a.window_s} s",
            a.derivation,
        )
    return table


def render(view: EngineView, now: float | None = None) -> RenderableType:
    hb = view.heartbeat
    # side by side when the terminal is wide enough, one below the other otherwise
    top = Columns([pnl_table(view), feeds_table(view)], padding=(0, 2))
    middle = Columns(
        [latency_table(list(hb.latency) if hb is not None else None), rates_table(view)],
        padding=(0, 2),
    )
    parts: list[RenderableType] = [
        header(view, now),
        top,
        positions_table(view),
        orders_table(view),
        middle,
    ]
    if view.anomalies:
        parts.append(anomalies_table(view))
    if view.recent:
        parts.append(Text("recent:\n" + "\n".join(f"  {line}" for line in view.recent)))
    return Group(*parts)


def render_summary(view: EngineView, title: str, build: str | None = None) -> RenderableType:
    """The end-of-run summary: P&L, fills, risk events, latency (labelled with the engine's
    build profile `build` when known), bus health."""
    hb = view.heartbeat
    table = Table(title=title, show_header=False, title_justify="left")
    equity = hb.equity if hb is not None else (view.status.equity if view.status else "")
    table.add_row("equity", _money(equity))
    table.add_row("realised_pnl", _money(hb.realised_pnl) if hb is not None else "-")
    table.add_row("fees", _money(hb.fees) if hb is not None else "-")
    fills = view.counter("fills")
    table.add_row(
        "fills",
        f"{fills if fills is not None else view.fills} (engine), {view.fills} on the bus",
    )
    traded = ", ".join(f"{s}: {q:f}" for s, q in sorted(view.fill_qty.items())) or "none"
    table.add_row("filled qty", traded)
    sent = view.counter("orders_sent")
    table.add_row("orders_sent", "-" if sent is None else str(sent))
    # the engine's own totals (`rejected.<reason>` counters) when it sends them; else the
    # rejections this process saw on the bus
    engine_rejects = {
        k.removeprefix("rejected."): int(v)
        for k, v in (hb.counters.items() if hb is not None else [])
        if k.startswith("rejected.")
    }
    by_reason = engine_rejects or view.rejects
    rejects = ", ".join(f"{k}: {v}" for k, v in sorted(by_reason.items())) or "none"
    table.add_row("rejections", rejects)
    # The exchange is named when there are several (the same symbol can trade on each).
    several = len({ex for ex, _sym in view.positions}) > 1
    positions = (
        ", ".join(
            f"{f'{ex}:' if several else ''}{sym}: {_qty(p.qty)}"
            for (ex, sym), p in sorted(view.positions.items())
        )
        or "none"
    )
    table.add_row("final positions", positions)
    open_now = f"{len(view.open_orders)} seen on the bus"
    if hb is not None:
        open_now = f"{hb.open_orders} (engine), " + open_now
    table.add_row("open orders at exit", open_now)
    table.add_row("final risk state", view.risk_state)
    risk = (
        "; ".join(
            f"{enum_name(r, 'from_state')} -> {enum_name(r, 'to_state')} ({r.cause})"
            for r in view.risk_changes
        )
        or "none"
    )
    table.add_row("risk events", risk)
    changes = "; ".join(describe_anomaly(a) for a in view.anomaly_changes) or "none"
    table.add_row("anomalies", changes)
    table.add_row(
        "bus",
        f"{view.events} events, {view.lost} lost in {view.gaps} gaps"
        + (f", {view.malformed} malformed" if view.malformed else "")
        + (
            f"; the engine saw a subscriber's queue overflow {overflows}x"
            if (overflows := view.counter("bus_subscriber_overflows"))
            else ""
        ),
    )
    return Group(table, latency_table(list(hb.latency) if hb is not None else None, build))
