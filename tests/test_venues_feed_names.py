"""The core, strategies, risk and the runtime name no venue (DESIGN.md section 4).

A venue is one module in rt-venues behind its interfaces (market data: `rt_venues::market`;
order entry: `rt_venues::execution`); adding one touches rt-venues, conf/exchange/ and the sim
only. This test greps the code (comments and `#[cfg(test)]` modules excluded: a doc may say
whose rule a module follows, a test may use a venue's fixture) of rt-core (which holds the
strategies and risk) and rt-engine's runtime for venue-specific identifiers and URLs.

Allow-list: `KNOWN` names runtime files that still name a venue, each with why; it is empty
(a venue's request code, rate-limit rules and account formats are behind rt-venues'
interfaces). A file not listed that names a venue fails the test, and so does a listed file
that no longer does (drop it from the list). The wiring that picks a venue's
implementation by the manifest's `venue` enum lives in rt-venues (`market::for_exchange` for
market data, `order_entry::for_exchange` for execution clients), so the runtime needs no
exception for it.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

VENUE = re.compile(
    r"binance|okx|kraken|/api/v\d|/fapi|\bfapi\b|bookTicker|depthUpdate|listenKey|X-MBX",
    re.IGNORECASE,
)

SCOPES = (ROOT / "engine/core/src", ROOT / "engine/runtime/src")

# Runtime files that still name a venue (relative to the repository), and why: none. Order
# entry (`rt_venues::order_entry::for_exchange`), rate limits (`rt_venues::rate_limits`) and the
# account's filters and balances (`rt_venues::execution`) are behind rt-venues' interfaces.
KNOWN: dict[str, str] = {}


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of a Rust file: comments and the `#[cfg(test)]` tail removed."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#[cfg(test)]"):
            break
        if stripped.startswith("//"):
            continue
        code = re.sub(r"//.*$", "", line) if '"' not in line else line
        out.append((n, code))
    return out


def venue_names() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for scope in SCOPES:
        for path in sorted(scope.rglob("*.rs")):
            hits = [f"{n}: {code.strip()}" for n, code in code_lines(path) if VENUE.search(code)]
            if hits:
                found[str(path.relative_to(ROOT))] = hits
    return found


def test_core_strategies_risk_and_runtime_name_no_venue() -> None:
    found = venue_names()
    unexpected = {f: hits for f, hits in found.items() if f not in KNOWN}
    assert not unexpected, (
        "venue-specific code outside rt-venues (move it behind rt_venues::market or "
        f"rt_venues::execution): {unexpected}"
    )


def test_the_allow_list_is_not_stale() -> None:
    found = venue_names()
    cleaned = sorted(f for f in KNOWN if f not in found)
    assert not cleaned, f"no longer name a venue, drop them from KNOWN: {cleaned}"


def test_the_check_finds_a_venue_name() -> None:
    assert VENUE.search('let path = "/api/v3/depth";')
    assert VENUE.search("use rt_venues::binance_limits::Limits;")
    assert not VENUE.search("let md = market::for_exchange(ex);")
