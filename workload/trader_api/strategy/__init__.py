"""Strategies: pure functions over klines producing signals."""
