"""Risk manager: pure checks of an order against limits and the portfolio."""
