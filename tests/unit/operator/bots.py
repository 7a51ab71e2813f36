"""TraderBot models used across the operator's unit tests."""

from __future__ import annotations

from typing import Any

import yaml

from traderbot_operator.models import TraderBot, TraderBotSpec
from unit.operator.crd_schema import EXAMPLES, apply_defaults, load_crd, version_schema

UID = "6f1c2b7e-0000-4000-8000-000000000001"


def bot(name: str = "alpha", namespace: str = "trading", **spec: Any) -> TraderBot:
    """Return a TraderBot with ``spec`` defaulted as the API server would."""
    schema = version_schema(load_crd())["properties"]["spec"]
    defaulted = apply_defaults(schema, spec)
    return TraderBot(
        name=name, namespace=namespace, uid=UID, spec=TraderBotSpec.model_validate(defaulted)
    )


def example(name: str) -> TraderBot:
    """Return the TraderBot of ``examples/<name>``, defaulted."""
    path = next(p for p in EXAMPLES if p.name == name)
    body = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    return bot(body["metadata"]["name"], **body["spec"])
