"""Load, merge and validate febm configs against ``febm/schemas/config.schema.yaml``.

The schema is the one place for defaults: the Snakefile validates with the same file, and the
command line fills the same defaults, so a config means the same thing in both.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from febm.errors import FebmError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


class ConfigError(FebmError):
    """A config file that is missing, unreadable or does not match the schema."""


def load_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open() as handle:
        return yaml.safe_load(handle)


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay wins; nested mappings merge, everything else (lists included) is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open() as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} does not exist; check the path (the shipped ones are config/*.yaml)"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


# What to change, per kind of schema violation (the message itself names the key and the value).
_FIXES = {
    "additionalProperties": "remove that key or correct its spelling",
    "minItems": "list at least one entry",
    "maxItems": "list fewer entries",
    "uniqueItems": "remove the repeated entries",
    "enum": "use one of the listed values",
    "pattern": "use a registered name (`febm divergences` lists the divergences)",
    "type": "give a value of that type",
}


def _format_error(error: Any) -> str:
    location = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    fix = _FIXES.get(error.validator, "use a value in the allowed range")
    return f"config key {location}: {error.message}; {fix} (config/README.md lists every key)"


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate in place, filling schema defaults (as Snakemake's ``validate`` does); return it."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(load_schema())

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validator_class.VALIDATORS["properties"](validator, properties, instance, schema)

    filling = jsonschema.validators.extend(validator_class, {"properties": set_defaults})
    errors = sorted(filling(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_format_error(errors[0]))
    check_semantics(config)
    return config


def check_semantics(config: Mapping[str, Any]) -> None:
    """Checks a JSON schema cannot express: alpha not in {0, 1}, mixtures that are densities.

    Torch-free on purpose (see febm/validation.py): the Snakefile runs this before planning.
    """
    from febm.validation import (
        InvalidMixtureError,
        UnknownDivergenceError,
        check_alpha,
        check_mixture,
        parse_alpha_name,
    )

    for section in ("toy", "images"):
        for name in (config.get(section) or {}).get("divergences", []):
            alpha = parse_alpha_name(name)
            try:
                if alpha is not None:
                    check_alpha(alpha)
            except UnknownDivergenceError as error:
                raise ConfigError(f"config key {section}.divergences: {error}") from None
    mixture = (config.get("toy") or {}).get("mixture")
    if mixture:
        try:
            check_mixture(mixture["weights"], mixture["means"], mixture["stds"])
        except InvalidMixtureError as error:
            raise ConfigError(f"config key toy.mixture: {error}") from None


def load_config(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Merge the YAML files in order (later ones overlay earlier ones), then validate."""
    config: dict[str, Any] = {}
    for path in paths:
        config = deep_merge(config, read_yaml(path))
    return validate(config)


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of a resolved config, recorded next to every result."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
