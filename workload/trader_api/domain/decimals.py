"""How a decimal is written for clients: plain digits, never exponent notation."""

from __future__ import annotations

from decimal import Decimal


def plain_decimal(value: Decimal) -> str:
    """Write ``value`` in positional notation: ``Decimal("1E-7")`` is ``"0.0000001"``.

    NB: ``str(Decimal)`` switches to exponent form for small and large
    magnitudes (``"1E-7"``, ``"1E+3"`` after arithmetic); clients parsing
    money with a plain-decimal grammar, or comparing strings, then break.
    Every decimal a response or an event carries goes through here.
    """
    return format(value, "f")
