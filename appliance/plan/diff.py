"""The semantic diff of two sets of manifests, and the risk class of every change.

Manifests are compared entity by entity (host, exchange, instrument, strategy, risk limit,
thread, ring), matched by name and never by list position; scalar lists (cores, instruments)
compare as sets. Each change says whether it loosens or tightens risk, changes topology or
artifacts, or is neutral, and whether the engine must restart or the host reboot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from appliance.config.secrets import redact_value


class ChangeClass(StrEnum):
    LOOSEN = "LOOSEN"
    TIGHTEN = "TIGHTEN"
    TOPOLOGY = "TOPOLOGY"
    ARTIFACT = "ARTIFACT"
    NEUTRAL = "NEUTRAL"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: manifest per host, and the config file of each manifest key."""

    manifests: dict[str, dict[str, Any]]
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    label: str = ""

    def source(self, host: str, path: str) -> str | None:
        table = self.sources.get(host, {})
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            hits = [v for k, v in table.items() if k.startswith(probe + ".")]
            if hits:
                return sorted(set(hits))[0] if len(set(hits)) == 1 else ", ".join(sorted(set(hits)))
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return None


@dataclass(frozen=True)
class Change:
    host: str
    entity: str
    path: str
    before: Any
    after: Any
    change_class: ChangeClass
    critical: bool
    restart: bool
    reboot: bool
    source_before: str | None
    source_after: str | None
    # What a reviewer needs beyond the two values (a model swap: the two models' metrics).
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["change_class"] = self.change_class.value
        data["before"] = redact_value(self.path, self.before)
        data["after"] = redact_value(self.path, self.after)
        return data


# Marks a key that one side does not have (JSON null is a value, not an absence).
ABSENT = "<absent>"
_ABSENT: Any = ABSENT
SKIP = {"content_sha256", "provenance"}
# Risk limits where a larger value allows more risk.
_RISK_MORE_IS_LOOSER = {
    "max_daily_loss",
    "max_drawdown",
    "max_gross_exposure",
    "max_open_orders",
    "max_position",
    "max_order_qty",
    "max_order_notional",
    "max_position_notional",
    "price_band_bps",
    "per_second",
    "burst",
    "feed_stale_ms",
    "reducing_at_pct",
}
_CRITICAL_LIMITS = {"max_daily_loss", "max_drawdown", "max_gross_exposure"}
_STRATEGY_SIZE = {"quote_qty", "max_inventory", "order_qty"}


def entity_of(path: str) -> str:
    parts = path.split(".")
    head = parts[0]
    if head == "exchanges" and len(parts) >= 2:
        if len(parts) >= 4 and parts[2] == "instruments":
            return f"instrument {parts[1]}:{parts[3]}"
        return f"exchange {parts[1]}"
    if head == "strategies" and len(parts) >= 2:
        return f"strategy {parts[1]}"
    if head == "risk":
        if len(parts) >= 3 and parts[1] == "instruments":
            return f"risk limit {parts[2]}"
        return "risk"
    if head == "host" and len(parts) >= 3 and parts[1] == "threads":
        return (
            f"thread {'.'.join(parts[2:4]) if parts[2] == 'feeds' and len(parts) > 3 else parts[2]}"
        )
    if head == "host" and len(parts) >= 3 and parts[1] == "rings":
        return f"ring {parts[2]}"
    if head in ("host", "engine", "deployment"):
        return head
    return head


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def classify(path: str, before: Any, after: Any) -> tuple[ChangeClass, bool]:
    """(class, critical) of one change."""
    parts = path.split(".")
    leaf = parts[-1]
    if path == "deployment.mode":
        if before == "paper" and after == "live":
            return ChangeClass.LOOSEN, True
        return (ChangeClass.TIGHTEN, False) if after == "paper" else (ChangeClass.NEUTRAL, False)
    if path == "engine.binary_sha256" or leaf in ("model_sha256",):
        return ChangeClass.ARTIFACT, False
    if is_model_file(path):
        return ChangeClass.ARTIFACT, False
    if parts[0] == "risk":
        if parts[1:2] == ["kill_switch"]:
            if before is True and after is False:
                return ChangeClass.LOOSEN, leaf == "enabled"
            if before is False and after is True:
                return ChangeClass.TIGHTEN, False
        if before is not _ABSENT and after is _ABSENT:
            return ChangeClass.LOOSEN, len(parts) <= 2 or leaf in _CRITICAL_LIMITS
        if leaf in _RISK_MORE_IS_LOOSER:
            b, a = _number(before), _number(after)
            if b is not None and a is not None and a != b:
                if a > b:
                    critical = leaf in _CRITICAL_LIMITS or (b > 0 and a >= 2 * b)
                    return ChangeClass.LOOSEN, critical
                return ChangeClass.TIGHTEN, False
        return ChangeClass.NEUTRAL, False
    if parts[0] == "exchanges" and leaf == "venue":
        if before == "sim" and after not in (_ABSENT, "sim"):
            return ChangeClass.LOOSEN, True
        return ChangeClass.NEUTRAL, False
    if parts[0] == "strategies" and leaf in _STRATEGY_SIZE:
        b, a = _number(before), _number(after)
        if b is not None and a is not None:
            return (ChangeClass.LOOSEN if a > b else ChangeClass.TIGHTEN), False
    if (
        parts[0] == "host"
        and len(parts) > 1
        and parts[1] in ("threads", "rings", "cpu", "memory", "nic")
    ):
        return ChangeClass.TOPOLOGY, False
    if (
        len(parts) == 2
        and parts[0] in ("exchanges", "strategies")
        and (before is _ABSENT or after is _ABSENT)
    ):
        return ChangeClass.TOPOLOGY, False
    return ChangeClass.NEUTRAL, False


def is_model_file(path: str) -> bool:
    """A strategy's model file (its sha256 pins the bytes the engine runs)."""
    parts = path.split(".")
    return (
        parts[0] == "strategies"
        and parts[-3:-1] == ["params", "model"]
        and parts[-1]
        in (
            "sha256",
            "path",
        )
    )


def needs_reboot(path: str) -> bool:
    """Kernel arguments (isolcpus, nohz_full, rcu_nocbs, hugepages) change only at boot."""
    return path in ("host.cpu.isolated", "host.memory.hugepage_kb", "host.memory.hugepages")


def _walk(before: Any, after: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if not path and key in SKIP:
                continue
            child = f"{path}.{key}" if path else key
            if key not in before:
                out.append((child, _ABSENT, after[key]))
            elif key not in after:
                out.append((child, before[key], _ABSENT))
            else:
                _walk(before[key], after[key], child, out)
        return
    if isinstance(before, list) and isinstance(after, list) and _scalars(before + after):
        if sorted(map(repr, before)) != sorted(map(repr, after)):
            out.append((path, before, after))
        return
    if before != after:
        out.append((path, before, after))


def _scalars(values: list[Any]) -> bool:
    return all(not isinstance(v, dict | list) for v in values)


def diff(
    before: Side, after: Side, describe_model: Callable[[str], str] | None = None
) -> list[Change]:
    """Every change between two sides; `describe_model(sha256)` (plan/models.py) says what a
    swapped model is, from the model.json files `appliance train` wrote."""
    changes: list[Change] = []
    for host in sorted(set(before.manifests) | set(after.manifests)):
        old = before.manifests.get(host)
        new = after.manifests.get(host)
        if old is None or new is None:
            changes.append(
                Change(
                    host=host,
                    entity="host",
                    path="host",
                    before=ABSENT if old is None else "deployed",
                    after=ABSENT if new is None else "deployed",
                    change_class=ChangeClass.TOPOLOGY,
                    critical=new is not None and new["deployment"]["mode"] == "live",
                    restart=True,
                    reboot=False,
                    source_before=before.source(host, "host") if old else None,
                    source_after=after.source(host, "host") if new else None,
                )
            )
            continue
        raw: list[tuple[str, Any, Any]] = []
        _walk(old, new, "", raw)
        for path, b, a in raw:
            cls, critical = classify(path, b, a)
            changes.append(
                Change(
                    host=host,
                    entity=entity_of(path),
                    path=path,
                    before=b,
                    after=a,
                    change_class=cls,
                    critical=critical,
                    restart=True,
                    reboot=needs_reboot(path),
                    source_before=before.source(host, path) if b is not _ABSENT else None,
                    source_after=after.source(host, path) if a is not _ABSENT else None,
                    detail=_model_detail(path, b, a, describe_model),
                )
            )
    return changes


def _model_detail(
    path: str, before: Any, after: Any, describe: Callable[[str], str] | None
) -> str | None:
    if describe is None or not path.endswith(".params.model.sha256"):
        return None
    old = describe(str(before)) if before is not _ABSENT else "none"
    new = describe(str(after)) if after is not _ABSENT else "none"
    return f"model before: {old}; after: {new}"
