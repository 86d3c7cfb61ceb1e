"""Feature sets (conf/features/<name>.yaml): found, loaded and validated without the research
stack, so the compiler can check a model strategy's features on the lean compile path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from appliance.config.diagnostics import ConfigError, Diagnostic, from_validation_error
from appliance.config.schema import FEATURE_NAMES, FeatureSetSpec

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# pydantic puts the discriminator's value in an error's location: features[0].book_imbalance.x
_TAG = re.compile(r"(\[\d+\])\.(" + "|".join(FEATURE_NAMES) + r")(?=\.|$)")


@dataclass(frozen=True)
class FeatureSource:
    """A validated feature set and where it came from (`conf/features/<name>.yaml`)."""

    name: str
    spec: FeatureSetSpec
    source: str

    def declaration_json(self) -> str:
        return json.dumps(self.spec.model_dump(mode="json"), sort_keys=True)


def validate_set(raw: Any, source: str, name: str = "features") -> FeatureSource:
    """Validate a feature set's data; ConfigError with every problem (path, value, rule, file)."""
    try:
        spec = FeatureSetSpec.model_validate(raw)
    except ValidationError as exc:
        diags = []
        for d in from_validation_error(exc, []):
            path = _TAG.sub(r"\1", d.path)
            message = d.message
            if d.rule == "schema.union_tag_invalid":
                message = f"unknown feature {d.value!r} (features: {', '.join(FEATURE_NAMES)})"
            diags.append(Diagnostic(path, d.value, d.rule, message, source))
        raise ConfigError(diags) from None
    return FeatureSource(name, spec, source)


def load_set(root: Path, name: str) -> FeatureSource:
    """`name` in conf/features/ (or a path to a YAML file of the same shape), validated."""
    conf = root / "conf" / "features"
    as_path = Path(name)
    if name.endswith((".yaml", ".yml")) or as_path.is_file():
        path, source = as_path, str(as_path)
    elif _NAME.match(name) and (conf / f"{name}.yaml").is_file():
        path, source = conf / f"{name}.yaml", f"conf/features/{name}.yaml"
    else:
        options = sorted(p.stem for p in conf.glob("*.yaml"))
        raise ConfigError(
            [
                Diagnostic(
                    "--set",
                    name,
                    "features.exists",
                    f"no feature set {name!r} in conf/features/ "
                    f"(sets: {', '.join(options) or 'none'})",
                    "command line",
                )
            ]
        )
    if not path.is_file():
        raise ConfigError(
            [Diagnostic("--set", name, "features.exists", "no such file", "command line")]
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(
            [Diagnostic("", None, "yaml.syntax", str(exc).splitlines()[0], source)]
        ) from None
    return validate_set(raw, source, path.stem)
