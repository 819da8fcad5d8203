"""gunicorn's access log (`telline web`), with calendar tokens and phone numbers masked: gunicorn
writes the request line and the referrer itself, past telline's log formatters."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from telline.logs import mask_secrets_in


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no types
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        found: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {key: mask_secrets_in(value) if isinstance(value, str) else value for key, value in found.items()}
