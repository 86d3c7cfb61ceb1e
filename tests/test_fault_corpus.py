"""A fault corpus generated from the config schema (issue 10).

For every leaf of both shipped deployments, the faults its type allows are generated from the
JSON Schema that pydantic derives from the config models (`appliance schema`): a wrong type, a
YAML 1.1 boolean word, out of range, malformed, exponent and over-precise decimals, empty, null,
a key-shaped literal, an unknown sibling key and the deletion of a required key. Each must be
refused naming its path with the override as the source, with no traceback and no secret in
the output. Multi-fault commands must list every fault; the valid edge values must compile
unchanged. The corpus's size and pass count are printed (also under pytest's capture).

Value changes of existing leaves compile through `compose.with_values` (shown equal to a full
Hydra compose by tests/test_compose_values.py); deletions and new keys through Hydra itself;
a sample of every fault kind also runs through the CLI, which exits 2.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from appliance.config.compiler import compile_composed, compile_config
from appliance.config.compose import Composed, compose, with_values
from appliance.config.diagnostics import ConfigError, render_json, render_text
from appliance.config.schema import DECIMAL_PATTERN
from appliance.config.schemas import group_schemas
from tests.conftest import ROOT, Run

DEPLOYMENTS = ("paper_local", "prod_example")
LITERAL = "Xq7Lm2Pz9Rk4Tw8Vb3Nc6Hd1Jf5Gs0Ay7Ue2Oi9"
# section -> (group schema, keyed by entity name)
SECTIONS = {
    "deployment": ("deployment", False),
    "hosts": ("host", True),
    "exchanges": ("exchange", True),
    "strategies": ("strategy", True),
    "risk": ("risk", False),
    "targets": ("target", True),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    override: str
    path: str  # where the diagnostic must be


@dataclass(frozen=True)
class Leaf:
    path: str
    # The schema field it is (`hosts.*.cpu.cores`): names and free keys as `*`.
    field: str
    value: Any
    schema: dict[str, Any]
    nullable: bool
    required: bool


def _schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for group, _ in SECTIONS.values():
        schema = group_schemas()[f"{group}.schema.json"]
        if group == "deployment":
            schema = {**schema["properties"]["deployment"], "$defs": schema["$defs"]}
        out[group] = schema
    return out


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _leaves(
    value: Any, node: dict[str, Any], defs: dict[str, Any], path: str, field: str, required: bool
) -> Iterator[Leaf]:
    node = _deref(node, defs)
    nullable = False
    if "anyOf" in node:
        options = [_deref(o, defs) for o in node["anyOf"]]
        nullable = any(o.get("type") == "null" for o in options)
        options = [o for o in options if o.get("type") != "null"]
        if len(options) == 1:
            node = options[0]
    if "oneOf" in node and isinstance(value, dict):  # the strategy union, by its `kind`
        node = _deref({"$ref": node["discriminator"]["mapping"][value["kind"]]}, defs)
    if node.get("type") == "object" and isinstance(value, dict) and value:
        props = node.get("properties", {})
        needed = set(node.get("required", []))
        extra = node.get("additionalProperties")
        patterned = next(iter(node.get("patternProperties", {}).values()), None)
        for key, child in value.items():
            schema = props.get(key) or patterned or (extra if isinstance(extra, dict) else None)
            named = f"{field}.{key}" if key in props else f"{field}.*"
            if schema is not None:
                yield from _leaves(child, schema, defs, f"{path}.{key}", named, key in needed)
        return
    yield Leaf(path, field, value, node, nullable, required)


def _is_decimal(schema: dict[str, Any]) -> bool:
    return any(o.get("pattern") == DECIMAL_PATTERN for o in schema.get("anyOf", []))


def _faults(leaf: Leaf) -> Iterator[Fault]:
    s, p = leaf.schema, leaf.path

    def f(kind: str, text: str) -> Fault:
        return Fault(kind, f"{p}={text}", p)

    if _is_decimal(s):
        for kind, text in [
            ("decimal.exponent", "1e3"),
            ("decimal.exponent_quoted", "'2.5E-3'"),
            ("decimal.too_many_decimals", "0.123456789"),
            ("decimal.too_many_digits", "12345678901"),
            ("decimal.non_finite", "inf"),
            ("decimal.nan", "nan"),
            ("decimal.malformed", "'1.2.3'"),
            ("decimal.trailing_space", "'5 '"),
            ("empty", "''"),
            ("wrong_type.bool", "true"),
        ]:
            yield f(kind, text)
    elif s.get("type") == "boolean":
        for kind, text in [("bool.word", "no"), ("bool.number", "0"), ("bool.string", "'true'")]:
            yield f(kind, text)
    elif s.get("type") == "integer":
        yield f("wrong_type.bool", "true")
        yield f("wrong_type.float", "1.5")
        yield f("wrong_type.string", "'7'")
        if "minimum" in s:
            yield f("range.below", str(s["minimum"] - 1))
        if "maximum" in s:
            yield f("range.above", str(s["maximum"] + 1))
    elif s.get("type") == "string":
        if "enum" in s or "const" in s:
            yield f("enum.unknown", "zz_not_an_option")
        pattern = s.get("pattern")
        if pattern and not re.fullmatch(pattern, ""):
            yield f("empty", "''")
        if pattern and not re.fullmatch(pattern, "has space!"):
            yield f("pattern.malformed", "'has space!'")
        yield f("secret.literal", LITERAL)
    elif s.get("type") == "array":
        yield f("wrong_type.scalar", "zz_not_a_list")
    if not leaf.nullable and leaf.value is not None:
        yield f("null", "null")
    if leaf.required:
        yield Fault("deletion", f"~{p}", p)


def corpus(deployment: str) -> tuple[Composed, list[Fault]]:
    base = compose(ROOT, [f"deployment={deployment}"])
    schemas = _schemas()
    faults: list[Fault] = []
    fields: set[tuple[str, str]] = set()
    for section, (group, keyed) in SECTIONS.items():
        body = base.data.get(section)
        if not isinstance(body, dict):
            continue
        schema = schemas[group]
        defs = schema.get("$defs", {})
        entities = body.items() if keyed else [("", body)]
        for name, value in entities:
            prefix = f"{section}.{name}" if keyed else section
            generic = f"{section}.*" if keyed else section
            for leaf in _leaves(value, schema, defs, prefix, generic, False):
                # Each fault once per schema field (hosts.*.cpu.cores, not per host).
                for fault in _faults(leaf):
                    if (leaf.field, fault.kind) not in fields:
                        fields.add((leaf.field, fault.kind))
                        faults.append(fault)
                parent, parent_field = (p.rsplit(".", 1)[0] for p in (leaf.path, leaf.field))
                if ("parent", parent_field) not in fields:
                    fields.add(("parent", parent_field))
                    unknown = f"{parent}.zz_unknown_key"
                    faults.append(Fault("unknown_key", f"+{unknown}=1", unknown))
    return base, faults


def _refusal(base: Composed, override: str) -> list[Any] | None:
    """The diagnostics refusing `base` + `override`, or None when it compiled."""
    composed = with_values(base, [override])
    try:
        if composed is None:
            compile_config(ROOT, [*base.overrides, override])
        else:
            compile_composed(composed, git_state=(None, None))
    except ConfigError as err:
        return err.diagnostics
    return None


def _check(base: Composed, fault: Fault) -> str | None:
    """None when `fault` is refused as it must be, else what is wrong."""
    diags = _refusal(base, fault.override)
    if diags is None:
        return f"ACCEPTED {fault.kind}: {fault.override}"
    printed = render_text(diags) + render_json(diags)
    if LITERAL in printed:
        return f"SECRET PRINTED {fault.kind}: {fault.override}"
    at = [d for d in diags if d.path == fault.path or d.path.startswith(fault.path + "[")]
    if not at:
        return f"WRONG PATH {fault.kind}: {fault.override}: {[d.path for d in diags]}"
    source = at[0].source or ""
    if not source.startswith("command line"):
        return f"WRONG SOURCE {fault.kind}: {fault.override}: {source}"
    return None


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_generated_fault_is_refused_at_its_path(
    deployment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base, faults = corpus(deployment)
    problems = [p for fault in faults if (p := _check(base, fault)) is not None]
    kinds = sorted({f.kind for f in faults})
    with capsys.disabled():
        print(
            f"\nfault corpus {deployment}: {len(faults)} faults of {len(kinds)} kinds, "
            f"{len(faults) - len(problems)} refused at their path with the override named, "
            f"{len(problems)} problems"
        )
    assert len(faults) > 400
    assert problems == [], "\n".join(problems[:30])


def test_multi_fault_commands_list_every_fault(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(10)
    commands = 0
    problems = []
    for deployment in DEPLOYMENTS:
        _, faults = corpus(deployment)
        # Value faults on distinct leaves (a deletion and a change of one key would be one);
        # not a strategy's `kind`, which decides what its other fields are.
        pool = [
            f
            for f in faults
            if not f.override.startswith(("~", "+")) and not f.path.endswith(".kind")
        ]
        for _ in range(12):
            size = rng.randint(2, 5)
            chosen: list[Fault] = []
            for fault in rng.sample(pool, len(pool)):
                if all(not _overlaps(fault.path, c.path) for c in chosen):
                    chosen.append(fault)
                if len(chosen) == size:
                    break
            commands += 1
            try:
                compile_config(ROOT, [f"deployment={deployment}", *(c.override for c in chosen)])
            except ConfigError as err:
                paths = {d.path for d in err.diagnostics}
                missing = [c.override for c in chosen if not _reported(c.path, paths)]
                if missing:
                    problems.append(f"{deployment}: not reported: {missing} (got {paths})")
                continue
            problems.append(f"{deployment}: ACCEPTED {[c.override for c in chosen]}")
    with capsys.disabled():
        print(f"\nmulti-fault commands: {commands}, {commands - len(problems)} listed every fault")
    assert commands >= 20
    assert problems == [], "\n".join(problems)


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def _reported(path: str, paths: set[str]) -> bool:
    return any(p == path or p.startswith(path + "[") for p in paths)


TOP = "9999999999.99999999"
EDGES = [
    # The smallest lot and tick the engine's fixed point holds, the largest limits.
    ["exchanges.sim_binance.instruments.BTCUSDT.lot_size=0.00000001"],
    ["exchanges.sim_binance.instruments.BTCUSDT.tick_size=0.00000001"],
    [f"risk.max_daily_loss={TOP}", f"risk.max_drawdown={TOP}", f"risk.max_gross_exposure={TOP}"],
    [
        f"risk.instruments.BTCUSDT.{key}={TOP}"
        for key in ("max_position", "max_order_qty", "max_position_notional", "max_order_notional")
    ],
]


@pytest.mark.parametrize("overrides", EDGES)
def test_valid_edge_values_compile_unchanged(overrides: list[str]) -> None:
    compiled = compile_config(ROOT, overrides)
    manifest = json.loads(compiled.manifests[0].text)
    for override in overrides:
        path, _, value = override.partition("=")
        node: Any = manifest
        for part in path.split("."):
            node = node[part]
        assert node == value


def test_the_largest_order_rate_compiles_unchanged() -> None:
    top = 2**32 - 1
    compiled = compile_config(
        ROOT, [f"risk.order_rate.per_second={top}", f"risk.order_rate.burst={top}"]
    )
    rate = json.loads(compiled.manifests[0].text)["risk"]["order_rate"]
    assert rate == {"per_second": top, "burst": top}


def test_one_fault_of_every_kind_exits_2_through_the_cli(cli: Callable[..., Run]) -> None:
    _, faults = corpus("paper_local")
    seen: dict[str, Fault] = {}
    for fault in faults:
        seen.setdefault(fault.kind, fault)
    for fault in seen.values():
        run = cli("validate", fault.override, "--format", "json")
        assert run.exit_code == 2, (fault, run.stdout)
        body = json.loads(run.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
        assert any(_reported(fault.path, {d["path"]}) for d in body["diagnostics"]), fault
        assert LITERAL not in run.stdout + run.stderr
