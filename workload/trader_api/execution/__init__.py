"""Execution: the broker protocol and its adapters (paper exchange first).

Public API (stable names, used by ``services`` and the REST API):

- ``Broker`` (Protocol): ``await submit(order) -> SubmitResult``,
  ``await cancel(order) -> Order``, ``on_price(symbol, price, *, at) ->
  list[OrderUpdate]``. Submission is idempotent by ``client_order_id``.
- ``SubmitResult(order, fills, duplicate)``, ``OrderUpdate(order, fills)``.
- Errors: ``BrokerError`` and its subclasses ``TransientBrokerError``
  (retried), ``UnknownOrderError``, ``OrderNotOpenError``,
  ``ClientOrderIdConflictError``, ``CircuitOpenError``.
- ``PaperExchange(*, fee_bps, slippage_bps, clock, remember)``: fills at the
  latest price with adverse slippage and fees; limit orders rest until
  crossed, then fill at the crossing price; orders with no price yet wait
  (``NEW``) for their symbol's first one; ``price(symbol)``,
  ``order(client_order_id)``, ``open_orders()``, ``waiting_orders()``.
- ``matching``: the pure price rules (``taker_price``, ``maker_price``,
  ``marketable``).
- ``CircuitBreaker(*, name, failure_threshold, reset_timeout, clock,
  on_state_change)``: ``state`` is a ``CircuitState``; each change is a
  ``CircuitTransition`` whose ``str()`` contains ``circuit``.
- ``ResilientBroker(inner, *, breaker, retry=RetryPolicy(...), sleep,
  on_retry)``: a ``Broker`` that retries transient errors with exponential
  backoff (tenacity), each attempt through the breaker.
"""

from trader_api.execution.breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    is_broker_failure,
)
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
from trader_api.execution.paper import PaperExchange
from trader_api.execution.resilient import ResilientBroker, RetryEvent, RetryPolicy

__all__ = [
    "Broker",
    "BrokerError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitTransition",
    "ClientOrderIdConflictError",
    "OrderNotOpenError",
    "OrderUpdate",
    "PaperExchange",
    "ResilientBroker",
    "RetryEvent",
    "RetryPolicy",
    "SubmitResult",
    "TransientBrokerError",
    "UnknownOrderError",
    "is_broker_failure",
]
