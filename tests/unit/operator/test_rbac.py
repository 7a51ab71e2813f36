"""The permissions the operator needs are listed once and documented as they are."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate

from traderbot_operator.handlers.traderbot import CHILD_KINDS
from traderbot_operator.rbac import RULES, cluster_role, markdown_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "operator.md"


def test_docs_list_exactly_the_rules_the_operator_uses() -> None:
    assert markdown_table() in DOC.read_text()


def test_the_cluster_role_is_valid_and_has_no_wildcards() -> None:
    role = cluster_role()
    kubernetes_validate.validate(role, "1.34.0", strict=True)
    for rule in RULES:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]


def test_delete_is_granted_only_on_pruned_kinds() -> None:
    deletable = {r for rule in RULES if "delete" in rule["verbs"] for r in rule["resources"]}
    # traderbotbackups: the records of scheduled/pre-upgrade backups retention deleted
    assert deletable == {"cronjobs", "servicemonitors", "traderbotbackups"}


def test_secrets_are_read_by_name_never_listed_or_watched() -> None:
    secret_verbs = {v for rule in RULES if "secrets" in rule["resources"] for v in rule["verbs"]}
    assert secret_verbs == {"get", "create", "patch"}
    assert ("", "v1", "secrets") not in CHILD_KINDS


def test_every_watched_child_kind_may_be_listed_and_watched() -> None:
    for group, _, plural in CHILD_KINDS:
        verbs = {
            v
            for rule in RULES
            if group in rule["apiGroups"] and plural in rule["resources"]
            for v in rule["verbs"]
        }
        assert {"list", "watch"} <= verbs, plural
