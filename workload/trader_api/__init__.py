"""trader-api: the trading engine (market data, strategies, risk, execution) and its REST API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("traderbot-operator")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
