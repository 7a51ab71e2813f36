"""docs/crd-reference.md is generated from the CRDs and must not go stale."""

from __future__ import annotations

from traderbot_operator import crd_reference
from unit.operator.crd_schema import load_crd


def test_reference_is_current() -> None:
    assert crd_reference.main(["--check"]) == 0, (
        "docs/crd-reference.md is stale: run python -m traderbot_operator.crd_reference"
    )


def test_reference_documents_every_spec_field_and_rule() -> None:
    text = crd_reference.render(load_crd())
    for field in ("spec.replicas", "spec.engine.strategies[].symbol", "spec.backup.schedule"):
        assert f"| `{field}`" in text
    assert "mode: live requires" in text
    assert '`"0 3 * * *"`' in text
    rules = [line for line in text.splitlines() if line.startswith("| `spec` |")]
    assert rules
    assert all(line.count(" | ") == 2 for line in rules), "an unescaped | splits a cell"


def test_reference_covers_both_custom_resources() -> None:
    text = crd_reference.DOC_PATH.read_text()
    assert "## TraderBot (`traderbot.dev/v1alpha1`)" in text
    assert "## TraderBotBackup (`traderbot.dev/v1alpha1`)" in text
    assert "| `spec.botName` (required) |" in text
