"""Fetch USD exchange rates from the treasury team's FX service.

Optional helper for finance's ad-hoc notebooks (converting ``order_amount`` for regional
reports). It is deliberately NOT used by the build or the tests: the product is built from its
inputs alone, offline, and every order is already in USD. It is the only reason ``requests``
is a dependency.
"""

from __future__ import annotations

from decimal import Decimal

import requests

DEFAULT_URL = "https://fx.internal.example.com/v1/rates"


def fetch_usd_rates(url: str = DEFAULT_URL, *, timeout: float = 10.0) -> dict[str, Decimal]:
    """Return ``{currency: units per USD}``; rates come back as strings to keep them exact."""
    response = requests.get(url, params={"base": "USD"}, timeout=timeout)
    response.raise_for_status()
    payload = response.json()
    return {currency: Decimal(str(rate)) for currency, rate in payload["rates"].items()}
