import pytest
from flask import g


@pytest.fixture(autouse=True)
def request_scoped_csrf_cache(app):
    """The test app keeps one app context for the whole test (tests/conftest.py), so Flask's `g`
    outlives each request; Flask-WTF caches the request's CSRF token in `g`, Flask-Login the signed-in
    user. Served for real, `g` is per request: forget both at each request, as production does."""
    @app.before_request
    def forget_csrf_token() -> None:
        g.pop("csrf_token", None)
        g.pop("_login_user", None)
