"""The engine loop wiring market data -> strategy -> risk -> executor -> storage."""
