"""The /api/v1 blueprint every resource module adds its routes to."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import abort

PREFIX = "/api/v1"
# Ids are 63-bit at most in either database: a longer number in a URL is no id (answered 404,
# not handed to the driver, which would overflow).
MAX_ID = 2**62

bp = APIBlueprint("api", __name__, url_prefix=PREFIX)


@bp.url_value_preprocessor
def _ids_fit(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    for value in (values or {}).values():
        if isinstance(value, int) and not 0 < value < MAX_ID:
            abort(404)
