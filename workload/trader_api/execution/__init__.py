"""Execution: the broker protocol and its adapters (paper exchange first)."""
