"""Pure desired-state builders: TraderBot model in, manifest dicts out (one module per child kind).

``build_children`` is the whole desired state of one bot, in the order it should be
created (credentials and Services before the pods that use them).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from traderbot_operator.desired.api import (
    api_secret_names,
    build_api_deployment,
    build_api_pdb,
    build_api_service,
)
from traderbot_operator.desired.backup import (
    build_backup_cronjob,
    build_backup_pvc,
    build_verify_cronjob,
)
from traderbot_operator.desired.common import Manifest
from traderbot_operator.desired.credentials import (
    TokenFactory,
    build_api_key_secret,
    build_database_secret,
    build_read_key_secret,
    build_redis_secret,
    secret_digest,
)
from traderbot_operator.desired.database import (
    build_database_services,
    build_database_statefulset,
)
from traderbot_operator.desired.monitoring import build_service_monitor
from traderbot_operator.desired.network import (
    build_api_network_policy,
    build_database_network_policy,
    build_redis_network_policy,
)
from traderbot_operator.desired.redis import (
    build_redis_services,
    build_redis_statefulset,
)
from traderbot_operator.models import TraderBot


def build_children(
    bot: TraderBot,
    *,
    service_monitor_available: bool = False,
    token: TokenFactory = secrets.token_urlsafe,
    redis_stopped: bool = False,
    backups_held: bool = False,
    live_secrets: Mapping[str, Manifest | None] | None = None,
) -> list[Manifest]:
    """Return every child object of ``bot``, in creation order.

    ``service_monitor_available`` says whether the cluster serves the Prometheus
    Operator's ServiceMonitor kind (observed by the caller, not guessed here);
    ``redis_stopped`` holds Redis at zero replicas (a Redis restore in progress);
    ``backups_held`` suspends the backup and verify CronJobs (any restore in progress).
    ``live_secrets`` (name -> live Secret or None, as the caller read them) puts the
    content of every Secret the API pods read into their config hash, so a rotated
    key rolls them; a generated Secret not created yet counts with the content built
    here. Without it (listing keys, tests) Secret content is left out of the hash.
    """
    monitoring = bot.spec.monitoring.enabled
    children: list[Manifest] = [
        build_database_secret(bot, token=token),
        build_redis_secret(bot, token=token),
    ]
    api_key = build_api_key_secret(bot, token=token)
    if api_key is not None:
        children.append(api_key)
    children.append(build_read_key_secret(bot, token=token))
    digests = None
    if live_secrets is not None:
        built = {secret["metadata"]["name"]: secret for secret in children}
        digests = {
            name: secret_digest(found)
            for name in api_secret_names(bot)
            if (found := live_secrets.get(name) or built.get(name)) is not None
        }
    children += [
        *build_database_services(bot),
        build_database_network_policy(bot),
        build_database_statefulset(bot),
        *build_redis_services(bot),
        build_redis_network_policy(bot),
        build_redis_statefulset(bot, stopped=redis_stopped),
        build_api_service(bot),
        build_api_network_policy(bot),
        build_api_deployment(
            bot,
            scrape_annotated=monitoring and not service_monitor_available,
            secret_digests=digests,
        ),
        build_api_pdb(bot),
    ]
    if bot.spec.backup.enabled:
        children += [build_backup_pvc(bot), build_backup_cronjob(bot, held=backups_held)]
        if bot.spec.backup.verify.enabled:
            children.append(build_verify_cronjob(bot, held=backups_held))
    if monitoring and service_monitor_available:
        children.append(build_service_monitor(bot))
    return children


__all__ = ["Manifest", "TokenFactory", "build_children"]
