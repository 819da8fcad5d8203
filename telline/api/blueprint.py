"""The /api/v1 blueprint every resource module adds its routes to."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import abort

PREFIX = "/api/v1"
# Ids are INTEGER columns: 32-bit on PostgreSQL. A larger number in a URL or a body is no id,
# answered 404 or 422 before it reaches the driver (which would refuse it, and with it the
# transaction: found by schemathesis on PostgreSQL).
MAX_ID = 2**31 - 1

bp = APIBlueprint("api", __name__, url_prefix=PREFIX)


@bp.url_value_preprocessor
def _ids_fit(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    for value in (values or {}).values():
        if isinstance(value, int) and not 0 < value <= MAX_ID:
            abort(404)
