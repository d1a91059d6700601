"""Write the key reference of config/README.md from the schema, so it lists every key and never drifts.

    python workflow/scripts/config_docs.py            # rewrite the generated part of config/README.md
    python workflow/scripts/config_docs.py --check    # exit 1 if it is out of date (the tests run this)

Each row: the key, its default (= the paper, config/config.yaml), what the quick and smoke presets set
it to (blank: inherited), and the schema's description.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "febm" / "schemas" / "config.schema.yaml"
README = REPO / "config" / "README.md"
PRESETS = ("quick", "smoke")
BEGIN = "<!-- BEGIN GENERATED KEY REFERENCE (python workflow/scripts/config_docs.py) -->"
END = "<!-- END GENERATED KEY REFERENCE -->"


def resolve(node: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a local $ref (#/definitions/...) into the node; the node's own keys win."""
    if "$ref" not in node:
        return dict(node)
    target: Any = schema
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    merged = {**resolve(target, schema), **{key: value for key, value in node.items() if key != "$ref"}}
    return merged


def leaf_keys(
    node: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, dict]]:
    """(dotted key, resolved schema) of every setting, depth first in schema order."""
    for name, child in node.get("properties", {}).items():
        child = resolve(child, schema)
        path = f"{prefix}{name}"
        if child.get("type") == "object" and "properties" in child:
            yield path, child  # a section: listed as a heading row
            yield from leaf_keys(child, schema, prefix=f"{path}.")
        else:
            yield path, child


def lookup(overlay: Mapping[str, Any], path: str) -> Any:
    node: Any = overlay
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def inline(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`".replace("|", "\\|")


def describe(node: Mapping[str, Any]) -> str:
    text = " ".join(str(node.get("description", "")).split())
    if "enum" in node:
        text = f"one of {', '.join(map(str, node['enum']))}. {text}".strip()
    return text.replace("|", "\\|")


def render() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    overlays = {
        name: yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()) or {} for name in PRESETS
    }
    lines = [
        BEGIN,
        "",
        "| key | default = paper | quick | smoke | meaning |",
        "|---|---|---|---|---|",
    ]
    for path, node in leaf_keys(schema, schema):
        is_section = node.get("type") == "object" and "properties" in node
        key = f"**`{path}`**" if is_section else f"`{path}`"
        default = "" if is_section else inline(node.get("default"))
        presets = [inline(lookup(overlays[name], path)) if not is_section else "" for name in PRESETS]
        lines.append(f"| {key} | {default} | {' | '.join(presets)} | {describe(node)} |")
    lines += ["", END]
    return "\n".join(lines)


def updated_readme() -> str:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + render() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that config/README.md is up to date")
    args = parser.parse_args(argv)
    text = updated_readme()
    if args.check:
        if text != README.read_text():
            print(
                "config/README.md is out of date: run python workflow/scripts/config_docs.py", file=sys.stderr
            )
            return 1
        return 0
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
