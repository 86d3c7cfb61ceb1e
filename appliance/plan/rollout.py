"""The roll-out settings a plan shows and a saved plan binds: the soak per host, from the
deployment's `deployment.rollout` section, or `--soak` overriding it (said so in the plan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SOAK_PATH = "deployment.rollout.soak_seconds"


@dataclass(frozen=True)
class Rollout:
    soak_seconds: int
    # Where the value came from: the config file that set it, "default", or "--soak".
    source: str
    # The configured value when `--soak` overrides it (None otherwise).
    configured_soak_seconds: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        soak = f"soak {self.soak_seconds}s per host before the next"
        if self.configured_soak_seconds is not None:
            return f"{soak} (--soak overrides {SOAK_PATH}={self.configured_soak_seconds})"
        return f"{soak} ({SOAK_PATH}, {self.source})"


def of_compiled(compiled: Any, soak_override: int | None = None) -> Rollout:
    """The roll-out settings of a compile, with `--soak` if given."""
    configured = int(compiled.spec.rollout.soak_seconds)
    source = compiled.composed.sources.get(SOAK_PATH) or "default"
    if soak_override is None:
        return Rollout(configured, source)
    return Rollout(soak_override, "--soak", configured)
