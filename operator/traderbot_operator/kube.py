"""The only module that talks to the Kubernetes API (lightkube AsyncClient).

Reads come back as plain dicts, so everything above this module works on data.
Writes are server-side apply with one field manager, except two deliberate cases:
Secret metadata (a merge patch: an apply without ``data`` could drop the keys we
own) and the TraderBot status (a merge patch on the status subresource).
Every call is counted by verb, so tests and benchmarks can prove "no writes".
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.models import User
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Event, Pod, Secret
from lightkube.types import PatchType

from traderbot_operator import metrics
from traderbot_operator.leader import LEASE_API_VERSION, LEASE_KIND
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    BACKUP_PLURAL,
    GROUP,
    KIND,
    OBJECT_NAME_MAX_LENGTH,
    OBJECT_NAME_PATTERN,
    PLURAL,
    RESTORE_KIND,
    RESTORE_PLURAL,
    VERSION,
)
from traderbot_operator.reconcile import Action, ObjectKey

logger = logging.getLogger(__name__)

FIELD_MANAGER: Final = "traderbot-operator"
SERVICE_MONITOR_CRD: Final = "servicemonitors.monitoring.coreos.com"
CAPABILITY_TTL_SECONDS: Final = 300.0
READ_CONCURRENCY: Final = 8
# Child kinds the operator may list (RBAC); Secrets it may only get by name.
LISTABLE_KINDS: Final = frozenset(
    {
        "Service",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CronJob",
        "ServiceMonitor",
    }
)
# NB: below httpx's pool of 100 connections; past the pool, requests wait for a
# connection and fail with PoolTimeout instead of queueing here.
MAX_IN_FLIGHT: Final = 48

TraderBotResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
TraderBotBackupResource = create_namespaced_resource(GROUP, VERSION, BACKUP_KIND, BACKUP_PLURAL)
TraderBotRestoreResource = create_namespaced_resource(GROUP, VERSION, RESTORE_KIND, RESTORE_PLURAL)
_STATUS_RESOURCES: dict[str, Any] = {
    KIND: TraderBotResource,
    BACKUP_KIND: TraderBotBackupResource,
    RESTORE_KIND: TraderBotRestoreResource,
}
ServiceMonitorResource = create_namespaced_resource(
    "monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"
)


NOT_FOUND: Final = 404
FORBIDDEN: Final = 403
CONFLICT: Final = 409


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server, for kopf's own client.

    NB: both clients (kopf's watcher and our lightkube client) must use the same
    identity; this is read with lightkube's kubeconfig rules so they cannot differ.
    Certificate and CA data stay base64-encoded, as kopf expects them.
    """

    server: str
    ca_path: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: str | None = None
    private_key_path: str | None = None
    private_key_data: str | None = None
    token: str | None = None
    namespace: str | None = None


def load_credentials(*, kubeconfig: str | None = None) -> Credentials:
    """Return the credentials of ``kubeconfig``, else in-cluster, else $KUBECONFIG."""
    source = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    config = source.get()
    if config is None:
        raise KubeError("no current context in the kubeconfig: pass --kubeconfig or set one")
    cluster, user = config.cluster, config.user or User()

    def path(value: str | None) -> str | None:
        return str(config.abs_file(value)) if value else None

    token = user.token
    if token is None and user.token_file:
        token = Path(str(config.abs_file(user.token_file))).read_text().strip()
    return Credentials(
        server=cluster.server,
        ca_path=path(cluster.certificate_auth),
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure,
        certificate_path=path(user.client_cert),
        certificate_data=user.client_cert_data,
        private_key_path=path(user.client_key),
        private_key_data=user.client_key_data,
        token=token,
        namespace=config.namespace,
    )


HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpx2", "httpcore")


def quiet_http_logs() -> None:
    """Log the HTTP clients' warnings only: a line per request would drown the operator's log.

    NB: a standby reads its Lease every retry period, kopf's watches reconnect.
    """
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class ConflictError(Exception):
    """Someone else wrote the object between our read and our write; retry later."""


class KubeError(Exception):
    """The API refused a request; the message says which and why, for an SRE."""


def _resource(api_version: str, kind: str) -> Any:
    if (api_version, kind) == (API_VERSION, KIND):
        return TraderBotResource
    if api_version == API_VERSION and kind in _STATUS_RESOURCES:
        return _STATUS_RESOURCES[kind]
    if kind == "ServiceMonitor":
        return ServiceMonitorResource
    return resource_registry.load(api_version, kind)


def _describe(error: ApiError, *, verb: str, what: str) -> str:
    status = error.status
    return f"{verb} {what} failed: HTTP {status.code} {status.reason}: {status.message}"


def _failure(error: ApiError, *, verb: str, what: str) -> ConflictError | KubeError:
    """Return the error to raise for a failed write: ConflictError for a 409, else KubeError."""
    message = _describe(error, verb=verb, what=what)
    return ConflictError(message) if error.status.code == CONFLICT else KubeError(message)


class InvalidNameError(KubeError):
    """A name or namespace that is not a Kubernetes object name: refused before any request."""


_OBJECT_NAME: Final = re.compile(OBJECT_NAME_PATTERN)


def checked_name(value: object, *, what: str) -> None:
    """Refuse anything but a DNS-1123 name where a name goes into a URL path.

    NB: the HTTP client resolves ``../`` in a path, so a name like
    ``../../kube-system/secrets/x`` would reach another namespace; the CRDs and the
    models refuse such names first, this refuses them whatever the caller.
    """
    if value is None:
        return
    if (
        not isinstance(value, str)
        or len(value) > OBJECT_NAME_MAX_LENGTH
        or not _OBJECT_NAME.fullmatch(value)
    ):
        raise InvalidNameError(
            f"{what} {str(value)[:80]!r} is not a Kubernetes object name (lower-case "
            "letters, digits, '-' and '.', at most 253 characters); nothing was requested"
        )


def _checked_path(args: tuple[Any, ...], kwargs: Mapping[str, Any], *, named: bool) -> None:
    """Check the name (second positional or ``name=``) and ``namespace=`` of a call."""
    if named:
        checked_name(args[1] if len(args) > 1 else kwargs.get("name"), what="name")
    checked_name(kwargs.get("namespace"), what="namespace")


class _BoundedClient:
    """The lightkube client with at most ``limit`` requests in flight, the rest queued.

    Every call's name and namespace are checked here (``checked_name``): the one
    place all requests pass.
    """

    def __init__(self, client: AsyncClient, *, limit: int) -> None:
        self._client = client
        self._slots = asyncio.Semaphore(limit)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        _checked_path(args, kwargs, named=True)
        async with self._slots:
            return await self._client.get(*args, **kwargs)

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        _checked_path(args, kwargs, named=True)
        async with self._slots:
            return await self._client.patch(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> Any:
        _checked_path(args, kwargs, named=True)
        async with self._slots:
            return await self._client.delete(*args, **kwargs)

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        _checked_path(args, kwargs, named=False)
        obj = args[0] if args else kwargs.get("obj")
        metadata = getattr(obj, "metadata", None)
        checked_name(getattr(metadata, "name", None), what="name")
        checked_name(getattr(metadata, "namespace", None), what="namespace")
        async with self._slots:
            return await self._client.create(*args, **kwargs)

    async def list(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        _checked_path(args, kwargs, named=False)
        async with self._slots:
            async for item in self._client.list(*args, **kwargs):
                yield item

    async def close(self) -> None:
        await self._client.close()


class Kube:
    """Typed, counted access to the Kubernetes API for one operator process."""

    def __init__(self, client: AsyncClient, *, field_manager: str = FIELD_MANAGER) -> None:
        self._client = _BoundedClient(client, limit=MAX_IN_FLIGHT)
        self._field_manager = field_manager
        self._service_monitor: tuple[float, bool] | None = None
        self.calls: Counter[str] = Counter()

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None) -> Kube:
        """Return a client for the in-cluster service account, $KUBECONFIG or ``kubeconfig``."""
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        return cls(AsyncClient(config=config, field_manager=FIELD_MANAGER))

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    @property
    def writes(self) -> int:
        """Return how many write requests this process has sent."""
        return sum(n for verb, n in self.calls.items() if verb not in {"get", "list"})

    def _count(self, verb: str, kind: str) -> None:
        self.calls[verb] += 1
        metrics.API_REQUESTS.labels(verb=verb, kind=kind).inc()

    # --- reads ------------------------------------------------------------------------

    async def get(self, *, namespace: str, key: ObjectKey) -> dict[str, Any] | None:
        """Return the live object as a dict, or None when it does not exist."""
        api_version, kind, name = key
        self._count("get", kind)
        try:
            found = await self._client.get(_resource(api_version, kind), name, namespace=namespace)
        except ApiError as error:
            if error.status.code == NOT_FOUND:
                return None
            raise KubeError(
                _describe(error, verb="get", what=f"{kind} {namespace}/{name}")
            ) from error
        result: dict[str, Any] = found.to_dict()
        return result

    async def get_bot(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """Return a TraderBot as a dict, or None when it is gone."""
        return await self.get(namespace=namespace, key=(API_VERSION, KIND, name))

    async def list_labelled(
        self, *, namespace: str, api_version: str, kind: str, labels: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Return the objects of one kind carrying ``labels``, by name."""
        self._count("list", kind)
        try:
            items = [
                item.to_dict()
                async for item in self._client.list(
                    _resource(api_version, kind), namespace=namespace, labels=dict(labels)
                )
            ]
        except ApiError as error:
            raise KubeError(_describe(error, verb="list", what=f"{kind} in {namespace}")) from error
        # NB: list items may lack apiVersion and kind; a GET's answer has them.
        return {
            item["metadata"]["name"]: {"apiVersion": api_version, "kind": kind, **item}
            for item in items
        }

    async def observe(
        self,
        *,
        namespace: str,
        keys: Iterable[ObjectKey],
        labels: Mapping[str, str] | None = None,
    ) -> dict[ObjectKey, dict[str, Any] | None]:
        """Return the live objects for ``keys`` (None for each that does not exist).

        With ``labels`` (the children's own labels), a kind asked for more than once and
        listable is read with one list instead of a GET per name; a key the list did not
        return is still fetched by name, so a child whose labels were edited by hand is
        found (and repaired), not created twice.
        """
        ordered = list(dict.fromkeys(keys))
        by_kind: dict[tuple[str, str], list[ObjectKey]] = {}
        for key in ordered:
            by_kind.setdefault(key[:2], []).append(key)
        listed_kinds = [
            kind
            for kind, same in by_kind.items()
            if labels is not None and len(same) > 1 and kind[1] in LISTABLE_KINDS
        ]
        # NB: a bound per pass, not per process: one slow bot must not starve the others.
        slots = asyncio.Semaphore(READ_CONCURRENCY)

        async def list_kind(kind: tuple[str, str]) -> dict[str, dict[str, Any]]:
            async with slots:
                return await self.list_labelled(
                    namespace=namespace, api_version=kind[0], kind=kind[1], labels=labels or {}
                )

        lists = await asyncio.gather(*(list_kind(kind) for kind in listed_kinds))
        found: dict[ObjectKey, dict[str, Any] | None] = {}
        for kind, items in zip(listed_kinds, lists, strict=True):
            for key in by_kind[kind]:
                if key[2] in items:
                    found[key] = items[key[2]]

        async def limited(key: ObjectKey) -> dict[str, Any] | None:
            async with slots:
                return await self.get(namespace=namespace, key=key)

        missing = [key for key in ordered if key not in found]
        for key, value in zip(
            missing, await asyncio.gather(*(limited(key) for key in missing)), strict=True
        ):
            found[key] = value
        return {key: found[key] for key in ordered}

    async def secrets(
        self, *, namespace: str, names: Iterable[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Return the named Secrets (None for each that does not exist)."""
        keys = [("v1", "Secret", name) for name in names]
        observed = await self.observe(namespace=namespace, keys=keys)
        return {key[2]: value for key, value in observed.items()}

    async def service_monitor_available(self) -> bool:
        """Return whether the cluster serves ServiceMonitor (cached for a few minutes).

        NB: a 403 means the operator may not read CRDs; that is treated as "absent"
        (scrape annotations still work), not as an error.
        """
        now = time.monotonic()
        if self._service_monitor and now - self._service_monitor[0] < CAPABILITY_TTL_SECONDS:
            return self._service_monitor[1]
        self._count("get", "CustomResourceDefinition")
        try:
            await self._client.get(CustomResourceDefinition, SERVICE_MONITOR_CRD)
            available = True
        except ApiError as error:
            if error.status.code not in {FORBIDDEN, NOT_FOUND}:
                raise KubeError(
                    _describe(error, verb="get", what=f"CRD {SERVICE_MONITOR_CRD}")
                ) from error
            available = False
        self._service_monitor = (now, available)
        return available

    # --- writes -----------------------------------------------------------------------

    async def execute(self, *, namespace: str, action: Action) -> dict[str, Any] | None:
        """Carry out one planned action; return the live object afterwards (None if deleted).

        NB: "create" is an apply *without* force: if another manager created the same
        object meanwhile with different values, the API answers 409 and we raise
        instead of silently taking it over. "patch" forces, which is how drift made
        with ``kubectl edit`` is taken back.
        """
        api_version, kind, name = action.key
        resource = _resource(api_version, kind)
        what = f"{kind} {namespace}/{name}"
        self._count(action.verb, kind)
        try:
            if action.verb == "delete":
                await self._client.delete(resource, name, namespace=namespace)
                return None
            if kind == "Secret" and action.verb != "create":
                patched = await self._client.patch(
                    Secret,
                    name,
                    {"metadata": action.body["metadata"]},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                    field_manager=self._field_manager,
                )
            else:
                patched = await self._client.patch(
                    resource,
                    name,
                    action.body,
                    namespace=namespace,
                    patch_type=PatchType.APPLY,
                    field_manager=self._field_manager,
                    force=action.verb != "create",
                )
        except ApiError as error:
            raise _failure(error, verb=action.verb, what=what) from error
        result: dict[str, Any] = patched.to_dict()
        return result

    async def patch_status(
        self,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        kind: str = KIND,
        resource_version: str | None = None,
    ) -> None:
        """Merge ``status`` into the status subresource of one of our custom resources.

        With ``resource_version`` the write only lands on the object as it was read
        (409 otherwise, raised as ConflictError): a record that someone else moved on
        meanwhile is never overwritten with an older view.
        """
        self._count("patch_status", kind)
        patch: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            patch["metadata"] = {"resourceVersion": resource_version}
        await self._merge_patch(
            _STATUS_RESOURCES[kind].Status,
            namespace=namespace,
            name=name,
            kind=kind,
            patch=patch,
            verb="patch status of",
        )

    async def _merge_patch(
        self,
        resource: Any,
        *,
        namespace: str,
        name: str,
        kind: str,
        patch: Mapping[str, Any],
        verb: str,
        missing_ok: bool = True,
    ) -> None:
        """Merge ``patch`` into one object; with ``missing_ok`` a 404 is no error.

        NB: a merge patch, not server-side apply, for the few writes that name only
        part of an object the operator applied whole (an apply would drop the rest).
        """
        try:
            await self._client.patch(
                resource,
                name,
                dict(patch),
                namespace=namespace,
                patch_type=PatchType.MERGE,
                field_manager=self._field_manager,
            )
        except ApiError as error:
            if missing_ok and error.status.code == NOT_FOUND:
                return  # deleted meanwhile: nothing left to write on
            raise _failure(error, verb=verb, what=f"{kind} {namespace}/{name}") from error

    async def backup_runs(self, *, namespace: str) -> list[dict[str, Any]]:
        """Return every TraderBotBackup in ``namespace`` as dicts."""
        self._count("list", BACKUP_KIND)
        try:
            return [
                item.to_dict()
                async for item in self._client.list(TraderBotBackupResource, namespace=namespace)
            ]
        except ApiError as error:
            raise KubeError(
                _describe(error, verb="list", what=f"TraderBotBackups in {namespace}")
            ) from error

    async def count_pods(self, *, namespace: str, labels: Mapping[str, str]) -> int:
        """Return how many pods (in any state) match ``labels``."""
        self._count("list", "Pod")
        try:
            return len(
                [
                    pod
                    async for pod in self._client.list(
                        Pod, namespace=namespace, labels=dict(labels)
                    )
                ]
            )
        except ApiError as error:
            raise KubeError(_describe(error, verb="list", what=f"pods in {namespace}")) from error

    async def annotate_bot(
        self,
        *,
        namespace: str,
        name: str,
        key: str,
        value: str | None,
        resource_version: str | None = None,
    ) -> None:
        """Set (or with None remove) one annotation of a TraderBot.

        With ``resource_version`` the write lands only on the bot as it was read
        (ConflictError otherwise): what makes a claim atomic.
        """
        self._count("patch", KIND)
        metadata: dict[str, Any] = {"annotations": {key: value}}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        await self._merge_patch(
            TraderBotResource,
            namespace=namespace,
            name=name,
            kind=KIND,
            patch={"metadata": metadata},
            verb="annotate",
            missing_ok=False,
        )

    async def set_owner_references(
        self,
        *,
        namespace: str,
        name: str,
        kind: str,
        owners: list[dict[str, Any]],
        resource_version: str,
    ) -> None:
        """Replace the owner references of one of our custom resources (a merge patch).

        NB: not server-side apply: an apply naming only metadata would drop every field
        the operator applied before (spec, labels). ``resource_version`` makes it land
        only on the object as it was read (ConflictError otherwise).
        """
        self._count("patch", kind)
        await self._merge_patch(
            _STATUS_RESOURCES[kind],
            namespace=namespace,
            name=name,
            kind=kind,
            patch={"metadata": {"ownerReferences": owners, "resourceVersion": resource_version}},
            verb="patch owners of",
        )

    async def termination_message(self, *, namespace: str, job: str) -> str | None:
        """Return the termination message of a Job's newest finished pod, if any.

        NB: trader-backup's JSON result travels this way, so the operator needs no
        access to pod logs.
        """
        self._count("list", "Pod")
        newest: tuple[str, str] | None = None
        try:
            async for pod in self._client.list(Pod, namespace=namespace, labels={"job-name": job}):
                body = pod.to_dict()
                for container in (body.get("status") or {}).get("containerStatuses") or []:
                    terminated = (container.get("state") or {}).get("terminated") or {}
                    finished = str(terminated.get("finishedAt") or "")
                    if terminated.get("message") and (newest is None or finished > newest[0]):
                        newest = (finished, terminated["message"])
        except ApiError as error:
            raise KubeError(
                _describe(error, verb="list", what=f"pods of Job {namespace}/{job}")
            ) from error
        return None if newest is None else newest[1]

    async def get_lease(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """Return a coordination.k8s.io Lease as a dict, or None when there is none."""
        return await self.get(namespace=namespace, key=(LEASE_API_VERSION, LEASE_KIND, name))

    async def write_lease(
        self, *, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """Create the Lease (``resource_version`` None) or update the one read at that version.

        Raises ConflictError when another replica wrote it first (409): the
        resourceVersion in a merge patch is a precondition the API server checks.
        """
        resource = _resource(LEASE_API_VERSION, LEASE_KIND)
        what = f"{LEASE_KIND} {namespace}/{name}"
        try:
            if resource_version is None:
                self._count("create", LEASE_KIND)
                body = {
                    "apiVersion": LEASE_API_VERSION,
                    "kind": LEASE_KIND,
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": dict(spec),
                }
                created = await self._client.create(
                    resource.from_dict(body), namespace=namespace, field_manager=self._field_manager
                )
            else:
                self._count("patch", LEASE_KIND)
                created = await self._client.patch(
                    resource,
                    name,
                    {"metadata": {"resourceVersion": resource_version}, "spec": dict(spec)},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                    field_manager=self._field_manager,
                )
        except ApiError as error:
            # NB: both races answer 409: AlreadyExists (a create) and Conflict (an update).
            verb = "create" if resource_version is None else "update"
            raise _failure(error, verb=verb, what=what) from error
        result: dict[str, Any] = created.to_dict()
        return result

    async def event(
        self,
        *,
        bot: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
    ) -> None:
        """Record a Kubernetes Event on ``bot`` (a TraderBot, TraderBotBackup or -Restore body).

        Any ``type_`` but ``"Warning"`` is recorded as ``"Normal"``.
        NB: never fatal: an Event that cannot be written is logged here, because the
        reconcile it describes already happened and every caller wants the same.
        """
        meta = bot["metadata"]
        now = datetime.now(UTC)
        self._count("create_event", "Event")
        event = Event(
            metadata=ObjectMeta(generateName=f"{meta['name']}.", namespace=meta["namespace"]),
            involvedObject=ObjectReference(
                apiVersion=bot.get("apiVersion", API_VERSION),
                kind=bot.get("kind", KIND),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resourceVersion=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if type_ == "Warning" else "Normal",
            source=EventSource(component=FIELD_MANAGER),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
            reportingComponent=FIELD_MANAGER,
        )
        try:
            await self._client.create(event)
        except Exception:  # best effort, whatever the transport raises (see NB)
            logger.exception("could not record Event %s for %s", reason, meta["name"])
