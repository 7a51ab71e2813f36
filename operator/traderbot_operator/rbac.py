"""The exact API permissions the operator uses: one list, read by docs, chart and tests.

NB: apply (server-side) is a ``patch``; creating through apply needs ``create`` too.
``delete`` is granted only on kinds the operator prunes (CronJob, ServiceMonitor).
"""

from __future__ import annotations

from typing import Any, Final

READ: Final = ("get", "list", "watch")
APPLY: Final = ("create", "patch")

RULES: Final[tuple[dict[str, Any], ...]] = (
    {"apiGroups": ["traderbot.dev"], "resources": ["traderbots"], "verbs": [*READ, "patch"]},
    {"apiGroups": ["traderbot.dev"], "resources": ["traderbots/status"], "verbs": ["get", "patch"]},
    {
        "apiGroups": ["traderbot.dev"],
        "resources": ["traderbotbackups"],
        # delete: records of scheduled and pre-upgrade backups that retention removed
        "verbs": [*READ, *APPLY, "delete"],
    },
    {
        "apiGroups": ["traderbot.dev"],
        "resources": ["traderbotbackups/status"],
        "verbs": ["get", "patch"],
    },
    {"apiGroups": ["traderbot.dev"], "resources": ["traderbotrestores"], "verbs": [*READ, "patch"]},
    {
        "apiGroups": ["traderbot.dev"],
        "resources": ["traderbotrestores/status"],
        "verbs": ["get", "patch"],
    },
    # NB: no list/watch on Secrets: the operator reads only the Secrets it names
    # (its own and those the spec references), and the drift timer repairs them.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", *APPLY]},
    {
        "apiGroups": [""],
        "resources": ["services", "persistentvolumeclaims"],
        "verbs": [*READ, *APPLY],
    },
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": [*READ, *APPLY]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": [*READ, *APPLY]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": [*READ, *APPLY],
    },
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": [*READ, *APPLY, "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": [*READ, *APPLY]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors"],
        "verbs": [*READ, *APPLY, "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "resourceNames": ["servicemonitors.monitoring.coreos.com"],
        "verbs": ["get"],
    },
)

# NB: granted only in the operator's own namespace (a Role), and only when it runs
# with leader election: the replicas' Lease. ``create`` cannot be limited to a name.
LEADER_ELECTION_RULES: Final[tuple[dict[str, Any], ...]] = (
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", *APPLY]},
)
LEADER_ELECTION_ROLE: Final = "traderbot-operator-leader-election"


def cluster_role(name: str = "traderbot-operator") -> dict[str, Any]:
    """Return the ClusterRole for a cluster-wide operator (a Role per namespace otherwise).

    NB: the CustomResourceDefinition rule is cluster-scoped and reads one object:
    whether the Prometheus Operator's ServiceMonitor kind exists.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "traderbot-operator"}},
        "rules": [dict(rule) for rule in RULES],
    }


def cluster_role_binding(
    *, service_account: str, namespace: str, role: str = "traderbot-operator"
) -> dict[str, Any]:
    """Return the ClusterRoleBinding giving ``namespace/service_account`` the operator's role.

    Named after the ServiceAccount, as the local demo and the cluster tests bind it.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": service_account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def leader_election_role(*, namespace: str, name: str = LEADER_ELECTION_ROLE) -> dict[str, Any]:
    """Return the Role for the replicas' Lease in the operator's own namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": [dict(rule) for rule in LEADER_ELECTION_RULES],
    }


def leader_election_role_binding(
    *, service_account: str, namespace: str, role: str = LEADER_ELECTION_ROLE
) -> dict[str, Any]:
    """Return the RoleBinding giving the operator's ServiceAccount its Lease role."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def markdown_table() -> str:
    """Return the rules as the Markdown table docs/operator.md carries (a test compares)."""
    rows = ["| API group | resources | verbs |", "| --- | --- | --- |"]
    for rule in RULES:
        group = rule["apiGroups"][0] or '"" (core)'
        resources = ", ".join(rule["resources"])
        if "resourceNames" in rule:
            resources += f" (only {', '.join(rule['resourceNames'])})"
        rows.append(f"| `{group}` | {resources} | {', '.join(rule['verbs'])} |")
    return "\n".join(rows)
