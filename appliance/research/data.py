"""Research data: describe recorded captures, convert them once to native event files, and
parse the UTC times of backtest windows.

A capture (`*.gz`, `*.ws.1.0`: a local receive timestamp and the raw frame a line) is JSON that
every replay would parse again; the native event file (engine/venues/src/native.rs) replays
many times faster. `native_for` converts a capture once into the project's cache,

    state/data/native/<sha256 of the capture>.native      the events
    state/data/native/<sha256 of the capture>.info.json   what `info` says about the capture

keyed by the capture's content, so a renamed or copied capture hits the cache and a changed
one misses it. Files appear atomically (written under a temporary name, fsynced, renamed), so
a concurrent process sees either no file or a whole one; a lock keeps two processes from
converting the same capture twice. A native file given as input is used as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import engine
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.models import sha256_file as file_sha256

CACHE_DIR = Path("state/data/native")
NATIVE_MAGIC = b"PYRTEVT\x01"
NS = 1_000_000_000

# Conversions done by this process (tests check that a cache hit converts nothing).
conversions = 0

# sha256 by (path, inode, size, mtime): a study asks for the same capture once per trial.
_sha_memo: dict[tuple[str, int, int, int], str] = {}


class TimeFormatError(ValueError):
    """A time that is not a UTC date and time this module reads."""


def cache_dir(project_root: Path) -> Path:
    return project_root / CACHE_DIR


def is_native(path: Path) -> bool:
    """Whether `path` is a (finished) native event file: it starts with the magic."""
    with path.open("rb") as f:
        return f.read(len(NATIVE_MAGIC)) == NATIVE_MAGIC


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), remembered per (path, inode, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _sha_memo.get(key)
    if cached is not None:
        return cached
    _sha_memo[key] = file_sha256(path)
    return _sha_memo[key]


def cached_native(project_root: Path, capture: Path) -> Path | None:
    """The cached native file of `capture`, if it was converted (or `capture` if native)."""
    if is_native(capture):
        return capture
    target = cache_dir(project_root) / f"{sha256_file(capture)}.native"
    return target if target.is_file() else None


def native_for(project_root: Path, capture: Path) -> Path:
    """The native event file of `capture`, converting it into the cache on first use.

    Raises FileNotFoundError for a missing file and engine.BacktestError for one the engine
    cannot read.
    """
    capture = Path(capture)
    if is_native(capture):
        return capture
    sha = sha256_file(capture)
    directory = cache_dir(project_root)
    target = directory / f"{sha}.native"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory / f"{sha}.lock"):
        if target.is_file():  # another process converted it while we waited
            return target
        stats = write_native(capture, target)
        info_path = directory / f"{sha}.info.json"
        if not info_path.is_file():
            # Described from the native file: the capture's JSON is parsed once, here.
            record = _describe(target, sha, capture.stat().st_size) | {
                "format": _capture_format(capture),
                "decode_errors": stats["decode_errors"],
                "venue": stats["venue"],
            }
            _write_atomic(info_path, _info_text(record))
    return target


def write_native(src: Path, target: Path) -> dict[str, Any]:
    """Converts `src` (a capture, or a native file) to a native file at `target`, atomically;
    returns the conversion's counts."""
    global conversions
    target.parent.mkdir(parents=True, exist_ok=True)
    with _temporary(target.parent, target.name) as tmp:
        stats = engine.convert_capture(str(src), str(tmp))
        _fsync(tmp)
        os.replace(tmp, target)
    conversions += 1
    _fsync_dir(target.parent)
    return stats


def info(project_root: Path, path: Path) -> dict[str, Any]:
    """What `engine.capture_info` says about a capture or native file, plus its path, size and
    sha256, and where its native file is (`native`, None until converted). Cached beside the
    native file as `<sha256>.info.json` (`native_for` writes it too: call `native_for` first
    and the capture is parsed once for both). Raises engine.BacktestError for a file the
    engine cannot read."""
    path = Path(path)
    sha = sha256_file(path)
    directory = cache_dir(project_root)
    info_path = directory / f"{sha}.info.json"
    record: dict[str, Any] | None = None
    if info_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            record = json.loads(info_path.read_text())
    if record is not None and "venue" not in record:
        record = None  # written before captures named their venue: describe it again
    if record is None:
        record = _describe(path, sha, path.stat().st_size)
        if record["events"]:  # not a capture: nothing worth keeping
            directory.mkdir(parents=True, exist_ok=True)
            _write_atomic(info_path, _info_text(record))
    native = path if is_native(path) else directory / f"{sha}.native"
    return record | {"path": str(path), "native": str(native) if native.is_file() else None}


def range_of(infos: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
    """First and last local receive time (ns) of files (their `info` records) read as one
    stream; None when they hold no events."""
    firsts = [i["first_local_ns"] for i in infos if i.get("first_local_ns") is not None]
    lasts = [i["last_local_ns"] for i in infos if i.get("last_local_ns") is not None]
    if not firsts:
        return None
    return min(firsts), max(lasts)


def time_range(files: Sequence[Path], project_root: Path | None = None) -> tuple[int, int]:
    """First and last local receive time (ns) of `files` read as one stream. Each capture is
    converted once through the cache of `project_root` (default: the project holding the
    file), so a later `native_for` parses nothing. ValueError when the files hold no events."""
    from appliance.config.compose import find_root

    infos = []
    for f in files:
        root = project_root or find_root(Path(f).resolve().parent)
        native_for(root, Path(f))
        infos.append(info(root, Path(f)))
    found = range_of(infos)
    if found is None:
        raise ValueError(f"no events in {', '.join(str(f) for f in files)}")
    return found


@dataclass(frozen=True)
class Window:
    """A backtest window `[start_ns, end_ns)` (UTC ns; None leaves a side open)."""

    start_ns: int | None = None
    end_ns: int | None = None


def check_window(
    window: Window,
    data_range: tuple[int, int] | None,
    *,
    start_path: str = "--start",
    end_path: str = "--end",
    source: str | None = None,
) -> None:
    """Raise ConfigError unless start < end and the window overlaps the data's range."""
    start, end = window.start_ns, window.end_ns
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            [
                Diagnostic(
                    start_path,
                    format_utc(start),
                    "window.start_before_end",
                    f"{start_path} must be before {end_path} ({format_utc(end)})",
                    source,
                )
            ]
        )
    if data_range is None:
        raise ConfigError(
            [Diagnostic("--data", None, "window.data", "the data holds no events", source)]
        )
    first, last = data_range
    shown = f"the data runs from {format_utc(first)} to {format_utc(last)}"
    if start is not None and start > last:
        raise ConfigError(
            [
                Diagnostic(
                    start_path,
                    format_utc(start),
                    "window.overlaps_data",
                    f"{start_path} is after the data's last event: {shown}",
                    source,
                )
            ]
        )
    if end is not None and end <= first:
        raise ConfigError(
            [
                Diagnostic(
                    end_path,
                    format_utc(end),
                    "window.overlaps_data",
                    f"{end_path} is not after the data's first event: {shown}",
                    source,
                )
            ]
        )


def parse_window(
    start: str | None, end: str | None, *, start_path: str = "--start", end_path: str = "--end"
) -> Window:
    """A window from UTC texts (see `parse_utc`); ConfigError naming the option otherwise."""
    problems: list[Diagnostic] = []
    bounds: list[int | None] = []
    for path, text in ((start_path, start), (end_path, end)):
        try:
            bounds.append(None if text is None else parse_utc(text))
        except TimeFormatError as err:
            problems.append(Diagnostic(path, text, "window.utc_time", str(err)))
            bounds.append(None)
    if problems:
        raise ConfigError(problems)
    return Window(bounds[0], bounds[1])


def prepare(
    project_root: Path, files: Sequence[Path], window: Window, *, data_path: str = "--data"
) -> list[Path]:
    """The native files of `files` (one stream; converted once through the cache), after
    checking that `window` is ordered and overlaps the data. ConfigError otherwise."""
    natives: list[Path] = []
    infos: list[dict[str, Any]] = []
    problems: list[Diagnostic] = []
    for f in files:
        try:
            natives.append(native_for(project_root, Path(f)))
            infos.append(info(project_root, Path(f)))
        except engine.BacktestError as err:
            problems.append(Diagnostic(data_path, str(f), "data.capture", f"not readable: {err}"))
    if problems:
        raise ConfigError(problems)
    if window != Window():
        check_window(window, range_of(infos))
    return natives


_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.(?P<frac>\d{1,9}))?)?))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_utc(text: str) -> int:
    """`2024-08-08T23:55:00Z`, `2024-08-08 23:55`, `2024-08-08T23:55:00.5+02:00`, `2024-08-08`
    (midnight) to ns since the epoch; no zone means UTC. Nanosecond fractions are exact."""
    m = _TIME.match(text.strip())
    if m is None:
        raise TimeFormatError(
            f"{text!r} is not a UTC time: write YYYY-MM-DD[THH:MM[:SS[.fraction]]][Z], "
            "e.g. 2024-08-08T23:55:00Z or '2024-08-08 23:55'"
        )
    clock = m["time"] or "00:00"
    whole = clock.split(".")[0]
    if whole.count(":") == 1:
        whole += ":00"
    tz = m["tz"] or "Z"
    tz = "+00:00" if tz == "Z" else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
    try:
        moment = datetime.fromisoformat(f"{m['date']}T{whole}{tz}")
    except ValueError as err:
        raise TimeFormatError(f"{text!r} is not a valid date and time: {err}") from None
    frac = int((m["frac"] or "0").ljust(9, "0"))
    return int(moment.timestamp()) * NS + frac


parse_utc_ns = parse_utc


def format_utc(ns: int) -> str:
    """`2024-08-08T23:55:00Z` (with a fraction when there is one)."""
    secs, frac = divmod(ns, NS)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}Z" if frac else f"{text}Z"


def discover(paths: Sequence[Path]) -> list[Path]:
    """Capture and native files in `paths` (files as given, directories searched recursively),
    sorted; hidden files and the cache's own records are skipped."""
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not f.name.startswith(".") and _looks_like_data(f)
            )
    return found


def _looks_like_data(path: Path) -> bool:
    name = path.name
    if name.endswith((".gz", ".native")) or ".ws." in name:
        return True
    return not name.endswith((".json", ".md", ".txt", ".lock", ".yaml")) and _is_text_capture(path)


def _is_text_capture(path: Path) -> bool:
    """A plain-text capture starts with a nanosecond timestamp and a space."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return False
    return re.match(rb"^\d{16,20} ", head) is not None


def _describe(path: Path, sha: str, size: int) -> dict[str, Any]:
    return engine.capture_info(str(path)) | {"sha256": sha, "size": size}


def _capture_format(path: Path) -> str:
    """`hftbacktest` (`<ts_ns> <frame>` lines) or `cryptofeed` (a `<url> <-> <ts>` header), as
    the engine's reader tells them apart."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as f:
        for line in f:
            if line.strip():
                return "cryptofeed" if b" <-> " in line else "hftbacktest"
    return "hftbacktest"


def _info_text(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _temporary(directory: Path, stem: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    with _temporary(path.parent, path.name) as tmp:
        tmp.write_text(text)
        _fsync(tmp)
        os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(directory)
