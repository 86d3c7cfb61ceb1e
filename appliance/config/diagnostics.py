"""Diagnostics: what is wrong, where, by which rule, and which file it came from.

Validation collects every problem before it reports (never only the first). A diagnostic is
plain data so that the CLI can print it for people (text) or for tools (JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import ValidationError

from appliance import jsonout
from appliance.config.schema import SECRET_REF_PATTERN
from appliance.config.secrets import redact_text, redact_value


@dataclass(frozen=True)
class Diagnostic:
    path: str
    value: Any
    rule: str
    message: str
    source: str | None = None

    def with_source(self, source: str | None) -> Diagnostic:
        return replace(self, source=source)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = _jsonable(self.value)
        return data


class ConfigError(Exception):
    """Raised with every diagnostic of a config (or manifest) that cannot be used."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(f"{d.path}: {d.message}" for d in self.diagnostics))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def join_path(*parts: object) -> str:
    """`hosts`, `ny4_a`, `cpu`, `cores`, 3 -> `hosts.ny4_a.cpu.cores[3]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


def from_validation_error(exc: ValidationError, prefix: Sequence[object]) -> list[Diagnostic]:
    """Turn a pydantic error into diagnostics whose paths are rooted at `prefix`."""
    diagnostics = []
    for err in exc.errors(include_url=False):
        # pydantic marks an error in a dict's key (not its value) with a `[key]` location.
        in_key = "[key]" in err["loc"]
        loc = [part for part in err["loc"] if not _is_union_tag(part) and part != "[key]"]
        value = MISSING if err["type"] == "missing" else err.get("input")
        message = err["msg"]
        kind = err["type"]
        if in_key:
            message = f"the key {loc[-1]!r} is not allowed here: {message[0].lower()}{message[1:]}"
        elif kind == "union_tag_not_found":
            tag = err.get("ctx", {}).get("discriminator", "").strip("'")
            loc = [*loc, tag] if tag else loc
            value = MISSING
            message = f"{tag!r} is missing: it says which kind of entry this is"
        elif kind == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind == "union_tag_invalid":
            tag = err.get("ctx", {}).get("discriminator", "").strip("'")
            loc = [*loc, tag] if tag else loc
            value = err.get("ctx", {}).get("tag", value)
            message = f"unknown kind {value!r} (expected {err.get('ctx', {}).get('expected_tags')})"
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == (
            SECRET_REF_PATTERN
        ):
            message = "must be a secret reference: env:NAME or file:/absolute/path"
        elif kind == "bool_type":
            shown = redact_value(join_path(*loc), value)
            message = f"expected a boolean (true or false), got {shown!r}"
            if isinstance(value, str | int):
                message += ": words such as yes/no/on/off and numbers are not booleans here"
        elif kind == "int_type":
            shown = redact_value(join_path(*loc), value)
            message = f"expected an integer, got {type(value).__name__} {shown!r}"
        elif kind in ("literal_error", "enum", "string_pattern_mismatch"):
            shown = redact_value(join_path(*loc), value)
            message = f"{message}, got {shown!r}"
        diagnostics.append(
            Diagnostic(
                path=join_path(*prefix, *loc),
                value=value,
                rule=f"schema.{err['type']}",
                message=message,
            )
        )
    return diagnostics


def _is_union_tag(part: object) -> bool:
    # pydantic adds the discriminator's tag ("market_maker") to the location of union members.
    return part in {"market_maker", "imbalance_taker", "model_taker"}


def _jsonable(value: Any) -> Any:
    if value is MISSING:
        return None
    try:
        jsonout.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return jsonout.strict(value)


def redacted(d: Diagnostic) -> Diagnostic:
    """`d` as it may be printed: every field passes the same redaction, by content (a key
    name, a message or a source quoting an override holds the literal as much as a value)."""
    return Diagnostic(
        path=redact_text(d.path),
        value=redact_value(d.path, d.value),
        rule=d.rule,
        message=redact_text(d.message),
        source=redact_text(d.source) if d.source is not None else None,
    )


def _one_line(text: str) -> str:
    """A source or message on one line: control characters (a newline inside a quoted
    override) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _show_value(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    if isinstance(value, dict | list):
        text = jsonout.dumps(_jsonable(value), sort_keys=True)
        return text if len(text) <= 80 else text[:77] + "..."
    return repr(value) if isinstance(value, str) else jsonout.dumps(_jsonable(value))


def render_text(diagnostics: Iterable[Diagnostic]) -> str:
    lines: list[str] = []
    items = [redacted(d) for d in diagnostics]
    for d in items:
        lines.append(f"error: {_one_line(d.path)}: {_one_line(d.message)}")
        lines.append(f"    value: {_show_value(d.value)}")
        lines.append(f"    rule:  {d.rule}")
        lines.append(f"    file:  {_one_line(d.source or '(unknown)')}")
    noun = "problem" if len(items) == 1 else "problems"
    lines.append(f"{len(items)} {noun} found; nothing was written.")
    return "\n".join(lines)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = [redacted(d).to_json() for d in diagnostics]
    return jsonout.dumps({"ok": False, "diagnostics": items}, indent=2, sort_keys=True)
