"""`compose.with_values` (a study's per-trial shortcut) gives exactly what Hydra composes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.compiler import compile_composed, git_state_of
from appliance.config.compose import compose, with_values
from tests.conftest import ROOT

BASE = compose(ROOT, ["deployment=paper_local"])
GIT = git_state_of(ROOT)


def _same(overrides: list[str]) -> None:
    fast = with_values(BASE, overrides)
    assert fast is not None
    full = compose(ROOT, ["deployment=paper_local", *overrides])
    assert fast.data == full.data
    assert fast.sources == full.sources
    assert fast.overrides == full.overrides
    assert compile_composed(fast, GIT).manifests[0].text == (
        compile_composed(full, GIT).manifests[0].text
    )


@settings(max_examples=15, deadline=None)
@given(
    spread=st.integers(min_value=1, max_value=50),
    skew=st.integers(min_value=0, max_value=20),
    reference=st.sampled_from(["mid", "microprice"]),
    qty=st.sampled_from(["'0.001'", "'0.002'", "0.003"]),
)
def test_value_overrides_match_hydra(spread: int, skew: int, reference: str, qty: str) -> None:
    p = "strategies.mm_btcusdt.params"
    _same(
        [
            f"{p}.half_spread_ticks={spread}",
            f"{p}.inventory_skew_ticks={skew}",
            f"{p}.reference={reference}",
            f"{p}.quote_qty={qty}",
        ]
    )


def test_lists_and_risk_values_match_hydra() -> None:
    _same(["strategies.mm_btcusdt.instruments=[BTCUSDT]", "risk.max_daily_loss='150'"])


def test_anything_but_a_plain_value_change_is_left_to_hydra() -> None:
    for overrides in (
        ["risk=prod"],  # a group choice
        ["+risk.extra=1"],  # an addition
        ["~risk.max_daily_loss"],  # a deletion
        ["risk.instruments={}"],  # a subtree
        ["risk.no_such_key=1"],  # not a key: Hydra's own error
        ["strategies.mm_btcusdt.params.half_spread_ticks=range(1,3)"],  # a sweep
    ):
        assert with_values(BASE, overrides) is None, overrides
