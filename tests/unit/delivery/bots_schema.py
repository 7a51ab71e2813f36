"""Generate charts/traderbot/values.schema.json from the TraderBot CRD.

The API server prunes unknown fields of a custom resource (kubectl only warns),
so a misspelt spec key in Helm values would silently do nothing. Turning the
CRD's structural schema into a closed JSON Schema lets `helm install` refuse it.

    .venv/bin/python tests/unit/delivery/bots_schema.py   # rewrite the file (make chart-crds)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = REPO_ROOT / "crds" / "traderbot.dev_traderbots.yaml"
SCHEMA_PATH = REPO_ROOT / "charts" / "traderbot" / "values.schema.json"
NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_BOT_NAME = 40  # the CRD's x-kubernetes-validations rule on metadata.name
KUBERNETES_ONLY_PREFIX = "x-kubernetes-"


def close_schema(node: Any) -> Any:
    """Return a JSON Schema copy of a CRD schema node, with objects closed to unknown keys.

    NB: ``x-kubernetes-preserve-unknown-fields`` marks free-form objects (strategy
    params), which stay open; ``required`` keys that have a default are dropped,
    because the API server fills them in before it validates.
    """
    if isinstance(node, list):
        return [close_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        key: close_schema(value)
        for key, value in node.items()
        if not key.startswith(KUBERNETES_ONLY_PREFIX)
    }
    # OpenAPI 3.0 spells an exclusive bound as a flag next to it; JSON Schema 7 as the bound.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(flag), bool):
            del schema[flag]
            if node[flag] and bound in node:
                schema[flag] = schema.pop(bound)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    if "required" in node:
        properties = node.get("properties", {})
        required = [key for key in node["required"] if "default" not in properties.get(key, {})]
        if required:
            schema["required"] = required
        else:
            del schema["required"]
    return schema


def spec_schema() -> dict[str, Any]:
    """Return the closed schema of TraderBot ``spec`` from the served version of the CRD."""
    crd = yaml.safe_load(CRD_PATH.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    spec: dict[str, Any] = close_schema(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    return spec


def values_schema() -> dict[str, Any]:
    """Return the whole values schema of charts/traderbot."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "traderbot chart values, generated from crds/ by bots_schema.py",
        "type": "object",
        "additionalProperties": False,
        "definitions": {"traderBotSpec": spec_schema()},
        "properties": {
            "global": {"type": "object"},
            "defaults": {"$ref": "#/definitions/traderBotSpec"},
            "keepOnUninstall": {"type": "boolean"},
            "bots": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {
                            "type": "string",
                            "pattern": NAME_PATTERN,
                            "maxLength": MAX_BOT_NAME,
                        },
                        "namespace": {"type": "string", "pattern": f"^$|{NAME_PATTERN}"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "spec": {"$ref": "#/definitions/traderBotSpec"},
                    },
                },
            },
        },
    }


def render() -> str:
    return json.dumps(values_schema(), indent=2) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render())
