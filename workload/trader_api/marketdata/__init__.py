"""Market data feeds (simulated, CSV replay) and kline aggregation."""
