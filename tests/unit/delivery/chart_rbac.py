"""Generate charts/traderbot-operator/files/operator-rules.yaml from traderbot_operator.rbac.RULES.

The operator keeps one list of the API calls its code makes; the chart renders
that list from this generated file, so the chart grants exactly it (a test
fails when the file is stale).

    .venv/bin/python tests/unit/delivery/chart_rbac.py   # rewrite the file (make chart-crds)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from traderbot_operator.rbac import LEADER_ELECTION_RULES, RULES

REPO_ROOT = Path(__file__).resolve().parents[3]
RULES_PATH = REPO_ROOT / "charts" / "traderbot-operator" / "files" / "operator-rules.yaml"
CLUSTER_SCOPED_GROUPS = {"apiextensions.k8s.io"}
HEADER = """\
# GENERATED from traderbot_operator.rbac.RULES by tests/unit/delivery/chart_rbac.py
# (make chart-crds). Do not edit: change the operator's RULES and regenerate.
# namespaced: granted in every managed namespace (ClusterRole, or a Role each);
# cluster: cluster-scoped objects, always in the ClusterRole;
# election: the replicas' Lease, in a Role of the operator's own namespace.
"""


def split_rules() -> dict[str, list[dict[str, Any]]]:
    """Return RULES split into the namespaced and the cluster-scoped ones."""
    split: dict[str, list[dict[str, Any]]] = {"namespaced": [], "cluster": []}
    for rule in RULES:
        scope = "cluster" if set(rule["apiGroups"]) & CLUSTER_SCOPED_GROUPS else "namespaced"
        split[scope].append(
            {key: list(rule[key]) for key in ("apiGroups", "resources", "resourceNames", "verbs")
             if key in rule}
        )  # fmt: skip
    split["election"] = [dict(rule) for rule in LEADER_ELECTION_RULES]
    return split


def render() -> str:
    return HEADER + yaml.safe_dump(split_rules(), sort_keys=False, default_flow_style=None)


if __name__ == "__main__":
    RULES_PATH.write_text(render())
