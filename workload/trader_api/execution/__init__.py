"""Execution: the broker protocol and its adapters (paper exchange first).

Public API (stable names, used by ``services`` and the REST API):

- ``Broker`` (Protocol): ``await submit(order) -> SubmitResult``,
  ``await cancel(order) -> Order``, ``on_price(symbol, price, *, at) ->
  list[OrderUpdate]``. Submission is idempotent by ``client_order_id``.
- ``SubmitResult(order, fills, duplicate)``, ``OrderUpdate(order, fills)``.
- Errors: ``BrokerError`` and its subclasses ``TransientBrokerError``
  (retried), ``UnknownOrderError``, ``OrderNotOpenError``,
  ``ClientOrderIdConflictError``.
"""

from trader_api.execution.broker import (
    Broker,
    BrokerError,
    ClientOrderIdConflictError,
    OrderNotOpenError,
    OrderUpdate,
    SubmitResult,
    TransientBrokerError,
    UnknownOrderError,
)

__all__ = [
    "Broker",
    "BrokerError",
    "ClientOrderIdConflictError",
    "OrderNotOpenError",
    "OrderUpdate",
    "SubmitResult",
    "TransientBrokerError",
    "UnknownOrderError",
]
