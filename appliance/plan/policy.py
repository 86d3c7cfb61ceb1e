"""Change policy as config: the `policy` group (conf/policy/*.yaml), evaluated at plan time.

A policy says which deployment modes it governs and its rules:

- `max_loosen_factor`: no single apply loosens a numeric limit or size by more than this
  factor (after/before where higher is looser, before/after where higher is tighter; the
  directions come from appliance/config/directions.py);
- `change_window_utc`: changes are made only between these UTC hours (`start_hour` included,
  `end_hour` excluded; a window may wrap midnight);
- `frozen`: fields (paths with `*` for a name, as in directions.py; a pattern also covers the
  fields below it) that do not change at all.

Violations are listed in every plan format and block `appliance apply` (a saved plan
included: the window is evaluated when the apply runs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError

from appliance.config.diagnostics import ConfigError, from_validation_error
from appliance.config.schema import Dec, Strict, format_decimal
from appliance.plan.diff import ChangeClass, loosening_factor

Hour = Annotated[int, Field(ge=0, le=24)]


def _at_least_one(value: Decimal) -> Decimal:
    if value < 1:
        raise ValueError(f"must be 1 or more (a factor of loosening), got {value}")
    return value


class ChangeWindow(Strict):
    """UTC hours in which changes may be applied: [start_hour, end_hour)."""

    start_hour: Hour = Field(description="first hour (UTC) in which changes may be applied")
    end_hour: Hour = Field(description="hour (UTC) from which changes are refused again")

    def contains(self, hour: int) -> bool:
        if self.start_hour <= self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour

    def text(self) -> str:
        return f"{self.start_hour:02d}:00-{self.end_hour:02d}:00 UTC"


class Policy(Strict):
    """A config group option of `policy`: rules every plan of the governed modes obeys."""

    modes: list[Literal["paper", "live"]] = Field(
        description="deployment modes the policy governs (the mode a plan deploys)"
    )
    max_loosen_factor: Annotated[Dec, AfterValidator(_at_least_one)] | None = Field(
        description="largest factor by which one apply may loosen a limit or size (null: any)"
    )
    change_window_utc: ChangeWindow | None = Field(
        description="UTC hours in which changes may be applied (null: any time)"
    )
    frozen: list[Annotated[str, Field(pattern=r"^[a-z_*][a-zA-Z0-9_.*]*$")]] = Field(
        description="manifest fields that must not change (directions.py paths, * for a name)"
    )


@dataclass(frozen=True)
class Violation:
    rule: str
    host: str | None
    path: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load(data: Any, source_of: Any = None) -> Policy | None:
    """The composed `policy` section as a Policy (None when the config has none)."""
    if data is None:
        return None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        diags = from_validation_error(exc, ["policy"])
        if source_of is not None:
            diags = [d.with_source(source_of(d.path)) for d in diags]
        raise ConfigError(diags) from None


def _covers(pattern: str, path: str) -> bool:
    keys, parts = pattern.split("."), path.split(".")
    head = parts[: len(keys)]
    return len(head) == len(keys) and all(k in ("*", p) for k, p in zip(keys, head, strict=True))


def evaluate(
    policy: Policy | None, mode: str, changes: list[Any], now: dt.datetime | None = None
) -> list[Violation]:
    """Every rule of `policy` the changes break, for a deployment of `mode`."""
    if policy is None or mode not in policy.modes or not changes:
        return []
    out: list[Violation] = []
    window = policy.change_window_utc
    now = now or dt.datetime.now(dt.UTC)
    if window is not None and not window.contains(now.hour):
        out.append(
            Violation(
                "change_window_utc",
                None,
                None,
                f"{mode} deployments change only {window.text()}; now {now:%H:%M} UTC",
            )
        )
    for c in changes:
        frozen = next((p for p in policy.frozen if _covers(p, c.path)), None)
        if frozen is not None:
            out.append(
                Violation("frozen", c.host, c.path, f"{c.path} is frozen in {mode} ({frozen})")
            )
        limit = policy.max_loosen_factor
        if limit is None or c.change_class is not ChangeClass.LOOSEN:
            continue
        factor = loosening_factor(c.path, c.before, c.after)
        if factor is not None and factor > limit:
            out.append(
                Violation(
                    "max_loosen_factor",
                    c.host,
                    c.path,
                    f"{c.path} loosened x{_factor(factor)} in one apply "
                    f"(policy: at most x{format_decimal(limit)})",
                )
            )
    return out


def _factor(value: Decimal) -> str:
    return format_decimal(value) if value == value.to_integral() else f"{value:.2f}"


def of_compiled(
    compiled: Any, changes: list[Any], now: dt.datetime | None = None
) -> list[Violation]:
    """The violations of a compile's own policy (its `policy` section) by these changes."""
    composed = compiled.composed
    policy = load(composed.data.get("policy"), composed.source_of)
    return evaluate(policy, compiled.spec.mode, changes, now)
