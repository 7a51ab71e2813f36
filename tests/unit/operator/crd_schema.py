"""Helpers reading the TraderBot CRD's schema: shared by the operator's unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "crds" / "traderbot.dev_traderbots.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("traderbot-*.yaml"))


def load_crd() -> dict[str, Any]:
    """Return the CRD as a dict."""
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def version_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """Return the openAPIV3Schema of the served version."""
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Return ``value`` defaulted the way the API server defaults a structural schema.

    NB: a default fills in a missing property and is itself defaulted further down,
    which is why every nested object of the spec has ``default: {}``.
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        result = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in result and "default" in child:
                result[name] = child["default"]
            if name in result:
                result[name] = apply_defaults(child, result[name])
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model inside an annotation (Optional, tuple[...]), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def model_mismatches(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    """Return where ``model`` and ``schema`` disagree on property names."""
    if schema.get("type") == "array":
        schema = schema["items"]
    properties = schema.get("properties", {})
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    found = [f"{path}.{name}: in the CRD only" for name in properties.keys() - fields.keys()]
    found += [f"{path}.{name}: in the model only" for name in fields.keys() - properties.keys()]
    for name in properties.keys() & fields.keys():
        nested = _model_class(fields[name].annotation)
        child = properties[name]
        if nested is not None and "properties" in child.get("items", child):
            found += model_mismatches(nested, child, f"{path}.{name}")
    return found
