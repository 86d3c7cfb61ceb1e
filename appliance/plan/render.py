"""Plan output for people (terminal), for pull requests (Markdown) and for tools (JSON)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from appliance import jsonout
from appliance.plan.diff import ABSENT, REVIEW, Change, ChangeClass, Side

PLAN_VERSION = 1


@dataclass
class Plan:
    deployment: str
    before: Side
    after: Side
    changes: list[Change]
    # What a saved plan binds (appliance/plan/binding.py), set by `plan --out`.
    binding: dict[str, Any] | None = None
    # The rules of the deployment's policy these changes break (appliance/plan/policy.py).
    violations: list[Any] = field(default_factory=list)
    # How apply rolls it out (appliance/plan/rollout.py): the soak per host and its source.
    rollout: Any = None

    @property
    def hosts(self) -> list[str]:
        return sorted({c.host for c in self.changes})

    @property
    def has_loosen(self) -> bool:
        return any(c.change_class is ChangeClass.LOOSEN for c in self.changes)

    @property
    def needs_review(self) -> bool:
        """LOOSEN or SECURITY changes: exit 3 of `plan --detailed-exitcode`."""
        return any(c.change_class in REVIEW for c in self.changes)

    def summary_line(self) -> str:
        if not self.changes:
            return "no changes"
        return self._summary()

    def _summary(self) -> str:
        counts = Counter(c.change_class for c in self.changes)
        critical = sum(
            1 for c in self.changes if c.change_class is ChangeClass.LOOSEN and c.critical
        )
        parts = []
        if counts[ChangeClass.LOOSEN]:
            n = counts[ChangeClass.LOOSEN]
            parts.append(
                f"{n} change{'s loosen' if n != 1 else ' loosens'} risk"
                + (f" ({critical} critical)" if critical else "")
            )
        topology = sum(1 for c in self.changes if ChangeClass.TOPOLOGY in c.classes)
        for cls, word in (
            (ChangeClass.SECURITY, "security (review)"),
            (ChangeClass.TIGHTEN, "tighten risk"),
            (ChangeClass.ARTIFACT, "artifact"),
            (ChangeClass.NEUTRAL, "neutral"),
        ):
            if counts[cls]:
                parts.append(f"{counts[cls]} {word}")
            if cls is ChangeClass.TIGHTEN and topology:
                parts.append(f"{topology} topology")
        hosts = len(self.hosts)
        parts.append(f"{hosts} host{'s' if hosts != 1 else ''}")
        if self.violations:
            n = len(self.violations)
            parts.append(f"{n} policy violation{'s' if n != 1 else ''}")
        if any(c.reboot for c in self.changes):
            parts.append("reboot required")
        elif any(c.restart for c in self.changes):
            parts.append("restart required")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        after_hashes = {h: m["content_sha256"] for h, m in sorted(self.after.manifests.items())}
        before_hashes = {h: m["content_sha256"] for h, m in sorted(self.before.manifests.items())}
        return {
            "plan_version": PLAN_VERSION,
            "deployment": self.deployment,
            "against": self.before.label,
            "summary": {
                "line": self.summary_line(),
                "changes": len(self.changes),
                "by_class": dict(
                    sorted(Counter(c.change_class.value for c in self.changes).items())
                ),
                "critical": sum(1 for c in self.changes if c.critical),
                "hosts": self.hosts,
                "restart": sorted({c.host for c in self.changes if c.restart}),
                "reboot": sorted({c.host for c in self.changes if c.reboot}),
            },
            "manifests": {"before": before_hashes, "after": after_hashes},
            "changes": [c.to_json() for c in self.changes],
            "violations": [v.to_json() for v in self.violations],
        } | {
            k: v
            for k, v in (
                ("binding", self.binding),
                ("rollout", self.rollout.to_json() if self.rollout else None),
            )
            if v is not None
        }


def _value(value: Any) -> str:
    if value == ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value).lower() if isinstance(value, bool) else str(value)


def _changed_json(plan: Plan) -> list[dict[str, Any]]:
    return [c.to_json() for c in plan.changes]


def render_json(plan: Plan) -> str:
    return jsonout.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"


def render_markdown(plan: Plan) -> str:
    lines = [
        f"### Plan for `{plan.deployment}` against {plan.before.label}",
        "",
        f"**{plan.summary_line()}**",
        "",
    ]
    if plan.rollout is not None:
        lines += [f"Rollout: {plan.rollout.text()}", ""]
    if not plan.changes:
        return "\n".join(lines) + "\n"
    if plan.violations:
        lines += ["#### Policy violations (apply refuses)", ""]
        lines += [
            f"- **{v.rule}**" + (f" on `{v.host}`" if v.host else "") + f": {v.message}"
            for v in plan.violations
        ]
        lines.append("")
    for host in plan.hosts:
        rows = [c for c in _changed_json(plan) if c["host"] == host]
        flags = []
        if any(r["reboot"] for r in rows):
            flags.append("reboot required")
        elif any(r["restart"] for r in rows):
            flags.append("engine restart required")
        lines += [
            f"#### host `{host}`" + (f" — {', '.join(flags)}" if flags else ""),
            "",
            "| class | entity | path | before | after | why | file |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            cls = "+".join(r["classes"]) + (" ⚠ critical" if r["critical"] else "")
            files = " → ".join(
                dict.fromkeys(_short(f) for f in (r["source_before"], r["source_after"]) if f)
            )
            lines.append(
                f"| {cls} | {r['entity']} | `{r['path']}` | `{_value(r['before'])}` | "
                f"`{_value(r['after'])}` | {_cell(r['reason'])} | {files} |"
            )
        details = [r for r in rows if r.get("detail")]
        if details:
            lines.append("")
            lines += [f"- `{r['path']}`: {r['detail']}" for r in details]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _short(source: str) -> str:
    """`command line override k=v (replaces conf/x.yaml)` -> `override k=v`."""
    prefix = "command line override "
    if source.startswith(prefix):
        return f"override `{source[len(prefix) :].split(' (replaces ', 1)[0]}`"
    return source


def render_text(plan: Plan) -> str:
    """Plain terminal text (rich renders the table when attached to a terminal)."""
    lines = [f"plan for {plan.deployment} against {plan.before.label}: {plan.summary_line()}"]
    if plan.rollout is not None:
        lines.append(f"rollout: {plan.rollout.text()}")
    lines += [
        f"policy violation ({v.rule}{', ' + v.host if v.host else ''}): {v.message}"
        for v in plan.violations
    ]
    for host in plan.hosts:
        lines.append(f"host {host}")
        for c in (c for c in plan.changes if c.host == host):
            payload = c.to_json()
            mark = "!" if c.critical else " "
            lines.append(
                f" {mark}{c.label:<16} {c.entity:<24} {c.path}: "
                f"{_value(payload['before'])} -> {_value(payload['after'])}"
            )
            if c.reason:
                lines.append(f"{'':19}why: {c.reason}")
            source = c.source_after or c.source_before
            if source:
                lines.append(f"{'':19}from {source}")
            if c.detail:
                lines.append(f"{'':19}{c.detail}")
    return "\n".join(lines) + "\n"
