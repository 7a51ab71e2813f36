"""``/api/v1``: orders, positions, strategies, klines and risk."""

from fastapi import APIRouter

from trader_api.api.v1 import klines, orders, positions, risk, strategies

routers: tuple[APIRouter, ...] = tuple(
    module.router for module in (orders, positions, strategies, klines, risk)
)
"""Each router carries the full ``/api/v1`` prefix, so a route's ``path`` is its full template."""

__all__ = ["routers"]
