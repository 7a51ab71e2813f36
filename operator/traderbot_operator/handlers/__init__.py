"""kopf handlers: thin; they decide when a reconcile pass runs, ``converge`` does the rest.

Importing this package registers the handlers with kopf's default registry.
"""

from traderbot_operator.handlers import backups, restores, traderbot

__all__ = ["backups", "restores", "traderbot"]
