"""Pydantic models of the TraderBot spec and status."""
