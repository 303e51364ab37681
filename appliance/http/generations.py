"""
Generations of the C{http} domain: install steps for C{root["http"]}.
Each is idempotent and never edited once landed.
"""
from __future__ import annotations

from typing import Any


def evolve1(root: Any) -> None:
    """Tenants, their token index and the callback queue."""
    from appliance.http.model import KEY, HTTPRoot
    if KEY not in root:
        root[KEY] = HTTPRoot()


GENERATIONS = (evolve1,)
