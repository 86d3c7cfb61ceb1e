"""Cuts the fuzz seed corpus out of the real captures (see README.md beside this file).

Usage, from the repository root:
    python3 engine/fuzz/corpus/extract.py data/binance ../shared/data

Writes engine/fuzz/corpus/{binance_market,okx,kraken}/ (the other targets' seeds are written
by hand, see README.md). Deterministic: the same captures give the same files.
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent


def write(target: str, name: str, lines: list[str]) -> None:
    (OUT / target).mkdir(exist_ok=True)
    (OUT / target / name).write_text("\n".join(lines) + "\n")


def binance_frames(path: Path, limit: int) -> list[str]:
    """The first `limit` frames of a capture (`<ns> <json>` per line), the prefix cut off."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            out.append(line.split(" ", 1)[1].rstrip("\n"))
            if len(out) == limit:
                break
    return out


def binance(bundled: Path, shared: Path) -> None:
    spot = binance_frames(bundled / "spot_btcusdt_20240808.gz", 400)
    usdm = binance_frames(shared / "binance" / "usdm_btcusdt_20240808.gz", 400)
    for name, frames in (("spot", spot), ("usdm", usdm)):
        by_kind: dict[str, list[str]] = {}
        for frame in frames:
            doc = json.loads(frame)
            kind = doc["stream"].split("@", 1)[1] if "stream" in doc else "snapshot"
            if kind != "snapshot" and len(frame) < 700:
                by_kind.setdefault(kind.replace("@", "_"), []).append(frame)
            elif kind == "snapshot":
                # The REST snapshot, cut to its best 5 levels a side.
                doc["bids"], doc["asks"] = doc["bids"][:5], doc["asks"][:5]
                write("binance_market", f"{name}_snapshot", [json.dumps(doc, separators=(",", ":"))])
        for kind, found in sorted(by_kind.items()):
            write("binance_market", f"{name}_{kind}", found[:3])
        small = [f for f in frames if len(f) < 700]
        write("binance_market", f"{name}_mixed", small[:8])


def capture_frames(path: Path) -> list[str]:
    """The received frames of a cryptofeed capture (`<time>: <json>`; sent and connect lines skipped)."""
    out = []
    for line in path.read_text().splitlines():
        head, sep, body = line.partition(": ")
        if sep and " " not in head:
            out.append(body)
    return out


def okx(shared: Path) -> None:
    frames = capture_frames(shared / "okx" / "cryptofeed_OKX.ws.1.0")
    uni = [f for f in frames if '"books"' in f and '"UNI-USD-SWAP"' in f]
    write("okx", "books_uni_swap", uni[:6])  # the real snapshot and 5 updates, checksums as sent
    btc = [f for f in frames if '"books"' in f and '"BTC-USDT"' in f and '"update"' in f]
    write("okx", "books_btc_updates", btc[:3])
    for channel in ("trades", "tickers"):
        found = [f for f in frames if f'"channel":"{channel}"' in f and '"data"' in f]
        write("okx", channel, found[:3])
    write("okx", "events", [f for f in frames if f.startswith('{"event"')][:3])


def kraken_digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(bids: dict[str, tuple[float, str, str]], asks: dict[str, tuple[float, str, str]]) -> str:
    """Kraken's CRC32 over the best 10 asks then the best 10 bids (price, volume; no dot, no
    leading zeros)."""
    text = ""
    for side, best_first in ((asks, False), (bids, True)):
        for _, price, volume in sorted(side.values(), reverse=best_first)[:10]:
            text += kraken_digits(price) + kraken_digits(volume)
    return str(zlib.crc32(text.encode()))


def kraken(shared: Path) -> None:
    """XMR/USD's snapshot cut to 10 levels a side and relabelled `book-10` (a depth Kraken
    offers), then its first 8 updates with their checksums recomputed over that book, so the
    seeds are verified as the real ones are."""
    frames = capture_frames(shared / "kraken" / "cryptofeed_KRAKEN.ws.50.0")
    pair = "XMR/USD"
    books: dict[str, dict[str, tuple[float, str, str]]] = {"a": {}, "b": {}}
    out = []
    for frame in frames:
        doc = json.loads(frame)
        if not (isinstance(doc, list) and doc[-1] == pair):
            continue
        doc[-2] = "book-10"
        parts = [p for p in doc[1:-2] if isinstance(p, dict)]
        if "as" in parts[0]:
            parts[0]["as"], parts[0]["bs"] = parts[0]["as"][:10], parts[0]["bs"][:10]
        for part in parts:
            for key, levels in part.items():
                if key == "c":
                    continue
                side = books[key[0]]
                for level in levels:
                    if float(level[1]) == 0:
                        side.pop(level[0], None)
                    else:
                        side[level[0]] = (float(level[0]), level[0], level[1])
        for key, best_first in (("a", False), ("b", True)):
            kept = sorted(books[key].values(), reverse=best_first)[:10]
            books[key] = {price: (p, price, volume) for p, price, volume in kept}
        for part in parts:
            if "c" in part:
                part["c"] = kraken_checksum(books["b"], books["a"])
        out.append(json.dumps(doc, separators=(",", ":")))
        if len(out) == 9:
            break
    write("kraken", "book10_xmr_usd", out)
    trades = capture_frames(shared / "kraken" / "cryptofeed_KRAKEN.ws.48.0")
    write("kraken", "trades", [f for f in trades if f.startswith("[")][:3])
    write("kraken", "events", [f for f in frames if f.startswith("{")][:3])


def main() -> None:
    bundled, shared = Path(sys.argv[1]), Path(sys.argv[2])
    binance(bundled, shared)
    okx(shared)
    kraken(shared)


if __name__ == "__main__":
    main()
