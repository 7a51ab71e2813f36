"""The plugin's only module that talks to the Kubernetes API (lightkube's sync Client).

Reads come back as plain dicts (with ``apiVersion`` and ``kind``, which list items
lack), so the pure modules work on data. Every failure becomes ``PluginError``
with a message that names the request, for the person at the terminal.

NB: synchronous on purpose: a command-line tool does one thing at a time, and the
operator's ``Kube`` (async, counted, rate-limited for a long-running process) is
shaped for the operator, not for this.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx2  # lightkube's HTTP client: its transport errors mean "API server unreachable"
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import (
    Event,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType

from traderbot_operator.kube import (
    NOT_FOUND,
    ServiceMonitorResource,
    TraderBotBackupResource,
    TraderBotResource,
    TraderBotRestoreResource,
    checked_name,
)
from traderbot_operator.models import API_VERSION, BACKUP_KIND, KIND, RESTORE_KIND

FIELD_MANAGER: Final = "kubectl-traderbot"
DEFAULT_KUBECONFIG: Final = Path("~/.kube/config")
# Every kind a bot's children come in (kube.LISTABLE_KINDS, plus the Secrets the
# operator only gets by name, the Jobs of its CronJobs and runs, and the pods).
CHILD_RESOURCES: Final[dict[str, tuple[str, Any]]] = {
    "Service": ("v1", Service),
    "PersistentVolumeClaim": ("v1", PersistentVolumeClaim),
    "Secret": ("v1", Secret),
    "Pod": ("v1", Pod),
    "Deployment": ("apps/v1", Deployment),
    "StatefulSet": ("apps/v1", StatefulSet),
    "PodDisruptionBudget": ("policy/v1", PodDisruptionBudget),
    "NetworkPolicy": ("networking.k8s.io/v1", NetworkPolicy),
    "CronJob": ("batch/v1", CronJob),
    "Job": ("batch/v1", Job),
    "ServiceMonitor": ("monitoring.coreos.com/v1", ServiceMonitorResource),
}
RUN_RESOURCES: Final = {
    BACKUP_KIND: TraderBotBackupResource,
    RESTORE_KIND: TraderBotRestoreResource,
}


class PluginError(Exception):
    """A request failed; the message says which and why, for the person at the terminal.

    ``status`` is the HTTP status the API server answered, if it answered.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotServedError(PluginError):
    """The cluster does not serve a kind (its CRD is not installed: ServiceMonitor)."""


class LogUnavailableError(PluginError):
    """A container's log could not be read (not started, or no kubelet answers, as on kwok)."""


def _describe(error: ApiError) -> str:
    status = error.status
    reason = f" {status.reason}" if status.reason else ""
    return f"HTTP {status.code}{reason}: {status.message}"


@contextmanager
def _requesting(what: str) -> Iterator[None]:
    """Turn the API's and the transport's errors into PluginError naming ``what``.

    NB: an answer that is not a Kubernetes Status (a 404 for a kind nobody serves)
    comes as httpx's HTTPStatusError, not ApiError: still an answer, not "unreachable".
    """
    try:
        yield
    except ApiError as error:
        code = error.status.code
        raise PluginError(f"{what} failed: {_describe(error)}", status=code) from error
    except httpx2.HTTPStatusError as error:
        code = error.response.status_code
        raise PluginError(f"{what} failed: HTTP {code}", status=code) from error
    except httpx2.HTTPError as error:
        raise PluginError(f"{what} failed: cannot reach the API server: {error}") from error


def load_config(*, kubeconfig: str | None, context: str | None) -> KubeConfig:
    """Find the kubeconfig as kubectl does: ``--kubeconfig``, $KUBECONFIG, ~/.kube/config.

    NB: $KUBECONFIG may list several files; kubectl merges them, lightkube reads one,
    so the first that exists is used (docs/plugin.md says so). With none, the
    in-cluster service account is tried, as kubectl does inside a pod.
    """
    try:
        if kubeconfig:
            return KubeConfig.from_file(kubeconfig)
        listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        for candidate in [*listed, str(DEFAULT_KUBECONFIG)]:
            if Path(candidate).expanduser().is_file():
                return KubeConfig.from_file(candidate)
        return KubeConfig.from_service_account()
    except ConfigError as error:
        raise PluginError(f"no usable kubeconfig: {error}") from error


class PluginClient:
    """Reads and writes of one plugin command, in one namespace."""

    def __init__(self, client: Client, *, namespace: str) -> None:
        checked_name(namespace, what="namespace")
        self._client = client
        self.namespace = namespace

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None, context: str | None, namespace: str | None
    ) -> PluginClient:
        """Return a client for ``--context`` (else the current one), in ``-n`` (else its own)."""
        config = load_config(kubeconfig=kubeconfig, context=context)
        try:
            single = config.get(context_name=context)
        except ConfigError as error:
            raise PluginError(f"kubeconfig: {error}") from error
        if single is None:
            raise PluginError("no current context in the kubeconfig: pass --context")
        chosen = namespace or single.namespace or "default"
        return cls(Client(config=single, field_manager=FIELD_MANAGER), namespace=chosen)

    # --- reads ------------------------------------------------------------------------

    def get_bot(self, name: str) -> dict[str, Any]:
        """Return the TraderBot ``name``; PluginError when there is none."""
        checked_name(name, what="bot name")
        found = self._get(TraderBotResource, name, what=f"{KIND} {self.namespace}/{name}")
        if found is None:
            raise PluginError(f"{KIND} {self.namespace}/{name} not found")
        return {"apiVersion": API_VERSION, "kind": KIND, **found}

    def get_run(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return a TraderBotBackup or TraderBotRestore, or None when it is gone."""
        found = self._get(RUN_RESOURCES[kind], name, what=f"{kind} {self.namespace}/{name}")
        return None if found is None else {"apiVersion": API_VERSION, "kind": kind, **found}

    def _get(self, resource: Any, name: str, *, what: str) -> dict[str, Any] | None:
        try:
            with _requesting(f"get {what}"):
                found: dict[str, Any] = self._client.get(
                    resource, name, namespace=self.namespace
                ).to_dict()
        except PluginError as error:
            if error.status == NOT_FOUND:
                return None
            raise
        return found

    def list(
        self,
        kind: str,
        *,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the objects of ``kind`` (a child or run kind, or Event) carrying ``labels``."""
        resource: Any
        if kind in RUN_RESOURCES:
            api_version, resource = API_VERSION, RUN_RESOURCES[kind]
        elif kind == "Event":
            api_version, resource = "v1", Event
        else:
            api_version, resource = CHILD_RESOURCES[kind]
        where = namespace or self.namespace
        try:
            with _requesting(f"list {kind} in {where}"):
                items: list[dict[str, Any]] = [
                    item.to_dict()
                    for item in self._client.list(
                        resource, namespace=where, labels=dict(labels or {})
                    )
                ]
        except PluginError as error:
            if error.status == NOT_FOUND:  # a list in a namespace 404s only for a kind not served
                raise NotServedError(f"{kind} is not served by this cluster") from error
            raise
        return [{"apiVersion": api_version, "kind": kind, **item} for item in items]

    def log(
        self,
        pod: str,
        *,
        container: str,
        namespace: str | None = None,
        tail: int | None = None,
        since_seconds: int | None = None,
    ) -> str:
        """Return one container's log; LogUnavailableError (the API's reason only) if none.

        NB: the reason alone, as the caller names the pod and container already.
        """
        try:
            with _requesting("read"):
                lines = self._client.log(
                    pod,
                    namespace=namespace or self.namespace,
                    container=container,
                    tail_lines=tail,
                    since=since_seconds,
                )
                return "".join(lines)
        except PluginError as error:
            raise LogUnavailableError(
                str(error).removeprefix("read failed: "), status=error.status
            ) from error

    # --- writes -----------------------------------------------------------------------

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a TraderBotBackup or TraderBotRestore; return it as created (its name set)."""
        kind = str(body["kind"])
        with _requesting(f"create {kind} in {self.namespace}"):
            created: Any = self._client.create(
                RUN_RESOURCES[kind].from_dict(dict(body)), namespace=self.namespace
            )
        return {"apiVersion": API_VERSION, "kind": kind, **created.to_dict()}

    def patch_bot(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``patch`` into the TraderBot ``name``; return the bot as patched."""
        checked_name(name, what="bot name")
        with _requesting(f"patch {KIND} {self.namespace}/{name}"):
            patched: Any = self._client.patch(
                TraderBotResource,
                name,
                dict(patch),
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        return {"apiVersion": API_VERSION, "kind": KIND, **patched.to_dict()}
