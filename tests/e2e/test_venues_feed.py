"""The real engine reading OKX and Kraken from the sim over loopback (paper_venues).

The sim serves OKX's public WebSocket (/ws/v5/public) and Kraken's (/) beside Binance's, replaying
the bundled captures with the venues' checksums. The engine's feeds subscribe to OKX `books` and
`trades` and Kraken `book-1000` and `trade`, verify every book message's checksum, and on a
mismatch drop that instrument's book, resubscribe it and count it (heartbeat counters
`book_*.<exchange>`, the feed's state on the bus).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from appliance.bus import bus_pb2 as pb
from tests.e2e.harness import Live, counters, live


def books(env: Live, timeout: float = 10) -> dict[str, int]:
    return {k: v for k, v in counters(env.heartbeat(timeout)).items() if k.startswith("book")}


def wait_books(env: Live, want: dict[str, int], timeout: float = 30) -> dict[str, int]:
    """The book counters of the first heartbeat where each of `want` is at least its value."""
    c: dict[str, int] = {}
    for _ in range(int(timeout)):
        c = books(env)
        if all(c.get(k, 0) >= v for k, v in want.items()):
            return c
    raise AssertionError(f"book counters never reached {want}: {c}")


def feed_states(events: list[pb.Event], exchange: str) -> list[int]:
    return [
        e.feed.state
        for e in events
        if e.WhichOneof("body") == "feed" and e.feed.exchange == exchange
    ]


def sim_books(env: Live) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"{env.rest}/sim/books/status", timeout=5) as r:
        status: dict[str, dict[str, int]] = json.loads(r.read())
        return status


def alter_level(env: Live, venue: str, instrument: str, kind: str = "alter_level") -> None:
    req = urllib.request.Request(
        f"{env.rest}/sim/books/fault?venue={venue}&instrument={instrument}&kind={kind}",
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read())["fault"] == kind


def test_okx_and_kraken_books_are_verified_and_an_altered_level_is_resynced(
    tmp_path: Path,
) -> None:
    with live(tmp_path, "deployment=paper_venues", speed="1") as env:
        env.start_sim()
        engine = env.start_engine()
        # Both venues' books verified message by message, nothing broken.
        c = wait_books(
            env, {"book_checksums_matched.okx": 40, "book_checksums_matched.kraken": 200}
        )
        for venue in ("okx", "kraken"):
            assert c[f"book_checksums_checked.{venue}"] == c[f"book_checksums_matched.{venue}"]
            assert c[f"book_breaks.{venue}"] == 0
            assert c[f"book_resubscribes.{venue}"] == 0, engine.text()[-2500:]
            assert c[f"books_invalid.{venue}"] == 0
        assert sim_books(env)["okx"]["altered"] == 0

        # One level of the next BTC-USDT update altered on its way to the engine.
        alter_level(env, "okx", "BTC-USDT")
        env.pump_until(
            lambda e: (
                e.WhichOneof("body") == "feed"
                and e.feed.exchange == "okx"
                and e.feed.state == pb.RESYNCING
            ),
            15,
            "the OKX feed to resync",
        )
        env.pump_until(
            lambda e: (
                e.WhichOneof("body") == "feed"
                and e.feed.exchange == "okx"
                and e.feed.state == pb.LIVE
            ),
            15,
            "the OKX feed to be live again",
        )
        after = wait_books(
            env, {"book_checksums_matched.okx": c["book_checksums_matched.okx"] + 20}
        )
        # The one altered message is the one mismatch: found on it, the book dropped and
        # resubscribed once, and verified again since (every later checksum matched).
        assert sim_books(env)["okx"]["altered"] == 1
        checked, matched = after["book_checksums_checked.okx"], after["book_checksums_matched.okx"]
        assert checked - matched == 1, after
        assert after["book_breaks.okx"] == 1
        assert after["book_resubscribes.okx"] == 1
        assert after["books_invalid.okx"] == 0
        assert after["book_breaks.kraken"] == 0
        log = engine.text()
        assert "book BTC-USDT: checksum mismatch" in log
        assert feed_states(env.seen, "okx")[-2:] == [pb.RESYNCING, pb.LIVE]
        # Market data only: no order ever went to OKX or Kraken (the strategy trades the sim's
        # Binance book; OKX order entry and Kraken orders are refused by the compiler).
        orders = [e for e in env.seen if e.WhichOneof("body") == "order"]
        assert all(o.order.exchange == "sim_binance" for o in orders)

        # Kraken likewise: its checksum (top 10 levels, digits only) finds an altered level.
        alter_level(env, "kraken", "XBT/CHF")
        env.pump_until(
            lambda e: (
                e.WhichOneof("body") == "feed"
                and e.feed.exchange == "kraken"
                and e.feed.state == pb.LIVE
                and pb.RESYNCING in feed_states(env.seen, "kraken")
            ),
            20,
            "the Kraken feed to resync and be live again",
        )
        k = wait_books(
            env, {"book_checksums_matched.kraken": after["book_checksums_matched.kraken"] + 20}
        )
        assert sim_books(env)["kraken"]["altered"] == 1
        assert k["book_checksums_checked.kraken"] - k["book_checksums_matched.kraken"] == 1, k
        assert (k["book_breaks.kraken"], k["book_resubscribes.kraken"]) == (1, 1), engine.text()[
            -3000:
        ]
        assert "book XBT/CHF: checksum mismatch" in engine.text()

        # OKX numbers its book messages (seqId, prevSeqId): one UNI-USD-SWAP update left out is
        # a sequence gap, found on the next one, and repaired the same way.
        alter_level(env, "okx", "UNI-USD-SWAP", "skip_update")
        g = wait_books(env, {"book_sequence_gaps.okx": 1, "book_resubscribes.okx": 2})
        assert sim_books(env)["okx"]["skipped"] == 1
        assert g["book_breaks.okx"] == 2
        assert g["book_checksums_checked.okx"] - g["book_checksums_matched.okx"] == 1, g
        assert "book UNI-USD-SWAP: sequence gap" in engine.text()
        # Valid again: every book has its snapshot, the feed's last state is LIVE.
        for _ in range(15):
            if books(env)["books_invalid.okx"] == 0:
                break
        assert feed_states(env.seen, "okx")[-2:] == [pb.RESYNCING, pb.LIVE]
        assert env.stop("engine") == 0
