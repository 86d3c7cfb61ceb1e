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

from appliance.config.directions import Critical, Direction, FieldRule, rule_for
from appliance.config.secrets import redact_value


class ChangeClass(StrEnum):
    LOOSEN = "LOOSEN"
    TIGHTEN = "TIGHTEN"
    # Credentials, keys and endpoints: always reviewed, whichever way they change.
    SECURITY = "SECURITY"
    TOPOLOGY = "TOPOLOGY"
    ARTIFACT = "ARTIFACT"
    NEUTRAL = "NEUTRAL"


# Classes a reviewer must approve: `plan --detailed-exitcode` exits 3 for them, and a live
# apply needs a saved plan or --allow-loosen.
REVIEW = (ChangeClass.LOOSEN, ChangeClass.SECURITY)


@dataclass(frozen=True)
class Verdict:
    """The class of one change, whether it also changes topology, and why."""

    change_class: ChangeClass
    critical: bool
    reason: str
    topology: bool = False


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
    # Why the change got its class (from appliance/config/directions.py).
    reason: str = ""
    # The change also adds or removes an entity (a LOOSEN or TIGHTEN that is TOPOLOGY too).
    topology: bool = False

    @property
    def classes(self) -> list[ChangeClass]:
        extra = [ChangeClass.TOPOLOGY] if self.topology else []
        return [self.change_class, *(c for c in extra if c is not self.change_class)]

    @property
    def label(self) -> str:
        return "+".join(c.value for c in self.classes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["change_class"] = self.change_class.value
        data["classes"] = [c.value for c in self.classes]
        data["before"] = redact_value(self.path, self.before)
        data["after"] = redact_value(self.path, self.after)
        return data


# Marks a key that one side does not have (JSON null is a value, not an absence).
ABSENT = "<absent>"
_ABSENT: Any = ABSENT
SKIP = {"content_sha256", "provenance"}


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


def classify(
    path: str,
    before: Any,
    after: Any,
    traded: tuple[set[str], set[str]] = (set(), set()),
) -> Verdict:
    """The class of one change, by the field's entry in appliance/config/directions.py.
    `traded` is the set of instruments the engine's strategies trade before and after (an
    instrument's limits come and go with it)."""
    found = rule_for(path)
    if found is None:
        return Verdict(ChangeClass.NEUTRAL, False, "not a manifest field (no direction entry)")
    pattern, rule = found
    handler = _HANDLERS[rule.direction]
    return handler(path, pattern, rule, before, after, traded)


_Handler = Callable[[str, str, FieldRule, Any, Any, tuple[set[str], set[str]]], Verdict]


def _always(rule: FieldRule) -> bool:
    return rule.critical is Critical.ALWAYS


def _fixed(cls: ChangeClass, suffix: str = "") -> _Handler:
    def handle(
        path: str, pattern: str, rule: FieldRule, b: Any, a: Any, t: tuple[set[str], set[str]]
    ) -> Verdict:
        return Verdict(cls, _always(rule), rule.why + suffix)

    return handle


def _entity(
    path: str, pattern: str, rule: FieldRule, b: Any, a: Any, traded: tuple[set[str], set[str]]
) -> Verdict:
    parts = path.split(".")
    if pattern == "strategies.*.exchange":
        return Verdict(ChangeClass.LOOSEN, True, f"{rule.why} ({b} -> {a})", topology=True)
    what = {
        "exchanges.*": f"exchange {parts[1]}",
        "strategies.*": f"strategy {parts[1]}",
        "exchanges.*.instruments.*": f"instrument {parts[-1]} on exchange {parts[1]}",
    }[pattern]
    if pattern == "exchanges.*.instruments.*" and parts[-1] not in (traded[0] | traded[1]):
        return Verdict(
            ChangeClass.TOPOLOGY,
            False,
            f"{what} {'listed' if b is ABSENT else 'unlisted'}; no strategy trades it",
        )
    if b is ABSENT:
        return Verdict(
            ChangeClass.LOOSEN, False, f"{what} added to the engine: new exposure", topology=True
        )
    if a is ABSENT:
        return Verdict(
            ChangeClass.TIGHTEN,
            False,
            f"{what} removed from the engine: its exposure ends",
            topology=True,
        )
    return Verdict(ChangeClass.TOPOLOGY, False, rule.why)


def _member_set(
    path: str, pattern: str, rule: FieldRule, b: Any, a: Any, traded: tuple[set[str], set[str]]
) -> Verdict:
    old = set(map(str, b)) if isinstance(b, list) else set()
    new = set(map(str, a)) if isinstance(a, list) else set()
    gained, lost = sorted(new - old), sorted(old - new)
    said = "; ".join(
        part
        for part in (
            f"{', '.join(gained)} added: new exposure" if gained else "",
            f"{', '.join(lost)} removed: that exposure ends" if lost else "",
        )
        if part
    )
    cls = ChangeClass.LOOSEN if gained else ChangeClass.TIGHTEN
    return Verdict(cls, False, said or rule.why, topology=True)


def _limits(
    path: str, pattern: str, rule: FieldRule, b: Any, a: Any, traded: tuple[set[str], set[str]]
) -> Verdict:
    symbol = path.split(".")[2]
    if a is ABSENT:
        if symbol in traded[1]:
            return Verdict(
                ChangeClass.LOOSEN,
                True,
                f"limits of {symbol} removed while a strategy still trades it",
            )
        return Verdict(
            ChangeClass.TIGHTEN,
            False,
            f"limits of {symbol} leave with the instrument (no strategy trades it any more)",
            topology=True,
        )
    if b is ABSENT and symbol in traded[1] and symbol not in traded[0]:
        return Verdict(
            ChangeClass.TOPOLOGY,
            False,
            f"limits of {symbol} arrive with the instrument (its exposure is classed where a "
            "strategy adds it)",
        )
    if b is ABSENT:
        return Verdict(ChangeClass.TIGHTEN, False, f"limits now apply to {symbol}")
    return Verdict(ChangeClass.NEUTRAL, False, rule.why)


def _ordered(
    path: str, pattern: str, rule: FieldRule, b: Any, a: Any, traded: tuple[set[str], set[str]]
) -> Verdict:
    rank = {value: i for i, level in enumerate(rule.order) for value in level}
    if b not in rank or a not in rank:
        return Verdict(ChangeClass.TOPOLOGY, False, f"{rule.why} ({_show(b)} -> {_show(a)})")
    if rank[a] > rank[b]:
        return Verdict(
            ChangeClass.LOOSEN,
            _always(rule),
            f"{rule.why}: {_show(b)} -> {_show(a)} is looser",
        )
    if rank[a] < rank[b]:
        return Verdict(
            ChangeClass.TIGHTEN, False, f"{rule.why}: {_show(b)} -> {_show(a)} is tighter"
        )
    return Verdict(ChangeClass.NEUTRAL, False, f"{rule.why}: {_show(b)} -> {_show(a)} is as tight")


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def loosening_factor(path: str, before: Any, after: Any) -> Decimal | None:
    """How many times looser a numeric change makes a limit (after/before for a field where
    higher is looser, before/after where higher is tighter); None when not numeric."""
    found = rule_for(path)
    b, a = _number(before), _number(after)
    if found is None or b is None or a is None or b <= 0 or a <= 0:
        return None
    direction = found[1].direction
    if direction is Direction.HIGHER_LOOSER:
        return a / b
    if direction is Direction.HIGHER_TIGHTER:
        return b / a
    return None


def _numeric(
    path: str, pattern: str, rule: FieldRule, b: Any, a: Any, traded: tuple[set[str], set[str]]
) -> Verdict:
    nb, na = _number(b), _number(a)
    if nb is None or na is None or na == nb:
        return Verdict(
            ChangeClass.NEUTRAL, False, f"{rule.why} (the field comes or goes with its entity)"
        )
    higher_looser = rule.direction is Direction.HIGHER_LOOSER
    looser = (na > nb) == higher_looser
    word = "higher" if na > nb else "lower"
    reason = f"{rule.why} ({word} is {'looser' if looser else 'tighter'})"
    if not looser:
        return Verdict(ChangeClass.TIGHTEN, False, reason)
    factor = loosening_factor(path, b, a)
    doubled = factor is not None and factor >= 2
    critical = _always(rule) or (rule.critical is Critical.DOUBLE and doubled)
    if factor is not None:
        reason += (
            f", x{factor.normalize():f}" if factor == factor.to_integral() else (f", x{factor:.2f}")
        )
    return Verdict(ChangeClass.LOOSEN, critical, reason)


_HANDLERS: dict[Direction, _Handler] = {
    Direction.HIGHER_LOOSER: _numeric,
    Direction.HIGHER_TIGHTER: _numeric,
    Direction.ORDERED: _ordered,
    Direction.ENTITY: _entity,
    Direction.MEMBER_SET: _member_set,
    Direction.LIMITS: _limits,
    Direction.SECURITY: _fixed(ChangeClass.SECURITY, " (always reviewed)"),
    Direction.ARTIFACT: _fixed(ChangeClass.ARTIFACT),
    Direction.TOPOLOGY: _fixed(ChangeClass.TOPOLOGY),
    Direction.NEUTRAL: _fixed(ChangeClass.NEUTRAL),
}


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
    """Kernel arguments (isolcpus, nohz_full, irqaffinity, hugepages) change only at boot
    (the `reboot` entries of appliance/config/directions.py)."""
    found = rule_for(path)
    return found is not None and found[1].reboot


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
            verdict = _host_verdict(old, new)
            changes.append(
                Change(
                    host=host,
                    entity="host",
                    path="host",
                    before=ABSENT if old is None else "deployed",
                    after=ABSENT if new is None else "deployed",
                    change_class=verdict.change_class,
                    critical=verdict.critical,
                    restart=True,
                    reboot=False,
                    source_before=before.source(host, "host") if old else None,
                    source_after=after.source(host, "host") if new else None,
                    reason=verdict.reason,
                    topology=verdict.topology,
                )
            )
            continue
        raw: list[tuple[str, Any, Any]] = []
        _walk(old, new, "", raw)
        traded = (_traded(old), _traded(new))
        for path, b, a in raw:
            verdict = classify(path, b, a, traded)
            changes.append(
                Change(
                    host=host,
                    entity=entity_of(path),
                    path=path,
                    before=b,
                    after=a,
                    change_class=verdict.change_class,
                    critical=verdict.critical,
                    restart=True,
                    reboot=needs_reboot(path),
                    source_before=before.source(host, path) if b is not _ABSENT else None,
                    source_after=after.source(host, path) if a is not _ABSENT else None,
                    detail=_model_detail(path, b, a, describe_model),
                    reason=verdict.reason,
                    topology=verdict.topology,
                )
            )
    return changes


def _host_verdict(old: dict[str, Any] | None, new: dict[str, Any] | None) -> Verdict:
    """A whole engine host added or removed: on a live deployment that is an engine trading
    real money starting (new exposure) or stopping; on paper only topology."""
    manifest = new if new is not None else old
    assert manifest is not None
    live = manifest["deployment"]["mode"] == "live"
    if not live:
        return Verdict(
            ChangeClass.TOPOLOGY,
            False,
            f"a paper engine {'starts' if old is None else 'stops'} (no real orders)",
        )
    if old is None:
        return Verdict(
            ChangeClass.LOOSEN, True, "a live engine starts trading: new exposure", topology=True
        )
    return Verdict(ChangeClass.TIGHTEN, False, "a live engine stops: its exposure ends", True)


def _traded(manifest: dict[str, Any]) -> set[str]:
    strategies = manifest.get("strategies") or {}
    return {str(i) for s in strategies.values() for i in (s.get("instruments") or [])}


def _model_detail(
    path: str, before: Any, after: Any, describe: Callable[[str], str] | None
) -> str | None:
    if describe is None or not path.endswith(".params.model.sha256"):
        return None
    old = describe(str(before)) if before is not _ABSENT else "none"
    new = describe(str(after)) if after is not _ABSENT else "none"
    return f"model before: {old}; after: {new}"
