"""What the plugin's write commands send, and how a run's phase reads (pure).

The request bodies are built from the operator's own models
(``BackupRunSpec``, ``RestoreRunSpec``), so a name the CRD would refuse is refused
here first, with the same rule, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from traderbot_operator.desired.common import MANAGED_BY, RUN_NAME_MAX_LENGTH, fit_name
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    RESTORE_KIND,
    BackupRunSpec,
    RestoreRunSpec,
)
from traderbot_operator.plugin.status import COMPONENT_LABEL, COMPONENTS, INSTANCE_LABEL

# generateName's random tail (the API server appends five characters).
GENERATED_SUFFIX_LENGTH: Final = 5
TERMINAL_PHASES: Final = frozenset({"Completed", "Failed"})
# The chart's operator pod labels (charts/traderbot-operator/templates/_helpers.tpl).
OPERATOR_POD_LABELS: Final = {
    "app.kubernetes.io/name": "traderbot-operator",
    "app.kubernetes.io/component": "operator",
}
ALL_COMPONENTS: Final = "all"
Outcome = Literal["running", "succeeded", "failed"]


def generate_name(bot: str, *, what: str) -> str:
    """Return a ``generateName`` prefix ``<bot>-<what>-`` that leaves room for the random tail.

    NB: a run's name is at most 52 characters (it names the run's Job; the CRDs
    check it), so a long bot name is shortened here as the operator shortens its own.
    """
    base = fit_name(f"{bot}-{what}", limit=RUN_NAME_MAX_LENGTH - GENERATED_SUFFIX_LENGTH - 1)
    return f"{base}-"


def _run(
    kind: str,
    spec: BackupRunSpec | RestoreRunSpec,
    *,
    namespace: str,
    name: str | None,
    what: str,
    labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Return a run resource: named ``name``, else generated as ``<bot>-<what>-<random>``."""
    meta: dict[str, Any] = {"namespace": namespace, "labels": dict(labels or {})}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name(spec.bot_name, what=what)
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": meta,
        "spec": spec.model_dump(by_alias=True, exclude_none=True),
    }


def build_backup(
    *,
    bot: str,
    namespace: str,
    name: str | None = None,
    database: bool = True,
    redis: bool = True,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a TraderBotBackup of ``bot``: named ``name``, else ``<bot>-manual-<random>``."""
    spec = BackupRunSpec(bot_name=bot, database=database, redis=redis)
    return _run(BACKUP_KIND, spec, namespace=namespace, name=name, what="manual", labels=labels)


def build_restore(
    *,
    bot: str,
    namespace: str,
    backup: str,
    what: Literal["database", "redis", "both"] = "database",
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a TraderBotRestore of ``bot`` from ``backup``: named ``name``, else generated."""
    spec = RestoreRunSpec(bot_name=bot, backup_name=backup, what=what)
    return _run(RESTORE_KIND, spec, namespace=namespace, name=name, what="restore", labels=labels)


def hibernate_patch(*, hibernate: bool) -> dict[str, Any]:
    """Return the merge patch that hibernates (or resumes) a bot: only ``spec.hibernate``."""
    return {"spec": {"hibernate": hibernate}}


def outcome(run: Mapping[str, Any]) -> Outcome:
    """Return whether a TraderBotBackup or -Restore is still running, succeeded or failed."""
    phase = (run.get("status") or {}).get("phase")
    if phase == "Completed":
        return "succeeded"
    if phase == "Failed":
        return "failed"
    return "running"


def pod_selector(bot: str, component: str) -> dict[str, str]:
    """Return the labels of one component's pods (``all``: every pod of the bot).

    NB: by the instance and component labels every child pod carries
    (``desired/common.py``), plus managed-by, so pods someone else labelled with
    the bot's name are not picked up; ``redis`` is the ``cache`` component.
    """
    selector = {INSTANCE_LABEL: bot, "app.kubernetes.io/managed-by": MANAGED_BY}
    if component != ALL_COMPONENTS:
        selector[COMPONENT_LABEL] = COMPONENTS[component]
    return selector


def log_targets(pods: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Return (pod, container) for every container of ``pods``, by pod name then spec order."""
    targets: list[tuple[str, str]] = []
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        name = str((pod.get("metadata") or {}).get("name"))
        targets += [(name, str(c["name"])) for c in (pod.get("spec") or {}).get("containers") or []]
    return targets


_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION: Final = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> int:
    """Return the seconds of a duration as kubectl's ``--since`` takes it (``90s``, ``1h30m``).

    Days (``2d``) are accepted too; a bare number means seconds.
    """
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 1h30m, 2d)")
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
