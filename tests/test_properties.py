"""Property: mutate a valid config at random; compile either refuses it with diagnostics, or
writes manifests that both readers (Python and the Rust engine) load. Never a crash, never a
manifest that Rust refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError
from appliance.config.manifest import load
from tests.conftest import ROOT

DEPLOYMENTS = ("paper_local", "prod_example")


def _keys(tree: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every map entry (Hydra can override those, not list elements)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            child = f"{path}.{key}" if path else str(key)
            yield child
            yield from _keys(value, child)


_BASE = {d: compile_config(ROOT, [f"deployment={d}"]).composed.data for d in DEPLOYMENTS}
KEYS = {d: sorted(_keys(data)) for d, data in _BASE.items()}

# Values as Hydra override text: the interesting edges of every field type in the contract.
VALUES = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "3",
        "7",
        "-1",
        "1000",
        "1024",
        "65536",
        "4294967296",
        "true",
        "false",
        "null",
        "'0.01'",
        "'-0.5'",
        "'1e3'",
        "'abc'",
        "''",
        "'0.000000001'",
        "'12345678901'",
        "'99999'",
        "0.3",
        "[]",
        "[0]",
        "[2,3]",
        "[0,1,2,3]",
        "{}",
        "paper",
        "live",
        "sim",
        "binance_usdm",
        "market_maker",
        "imbalance_taker",
        "BTCUSDT",
        "'env:KEY'",
        "'file:/etc/k'",
        "'tcp://127.0.0.1:1'",
        "hugetlbfs",
    ]
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, list[str]]:
    deployment = draw(st.sampled_from(DEPLOYMENTS))
    n = draw(st.integers(min_value=1, max_value=3))
    overrides = [f"deployment={deployment}"]
    used: set[str] = set()
    for _ in range(n):
        key = draw(st.sampled_from(KEYS[deployment]))
        if any(key.startswith(u + ".") or u.startswith(key + ".") or u == key for u in used):
            continue
        used.add(key)
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if kind == "delete":
            overrides.append(f"~{key}")
        elif kind == "add":
            overrides.append(f"+{key}.extra_field={draw(VALUES)}")
        else:
            overrides.append(f"{key}={draw(VALUES)}")
    return deployment, overrides


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
# Found by this test in CI: a venue that is a list crashed the venue-metadata check.
@example(("prod_example", ["deployment=prod_example", "exchanges.binance_spot.venue=[]"]))
@example(("paper_local", ["deployment=paper_local", "exchanges.binance_spot.venue={okx: 1}"]))
def test_compile_rejects_cleanly_or_rust_accepts(case: tuple[str, list[str]]) -> None:
    _, overrides = case
    try:
        result = compile_config(ROOT, overrides)
    except ConfigError as err:
        assert err.diagnostics, "a refusal must carry at least one diagnostic"
        for d in err.diagnostics:
            assert d.rule and d.message
            assert d.path, f"diagnostic without a path: {d}"
        return
    for built in result.manifests:
        assert load(built.text).engine.id == built.engine_id
        summary = engine.load_manifest(built.text)
        assert summary["content_sha256"] == json.loads(built.text)["content_sha256"]
