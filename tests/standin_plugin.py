"""pytest fixtures around the local Twilio stand-in (telline.twilio.standin).

Register with `pytest_plugins = ["tests.standin_plugin"]` in the root conftest.
- `standin`: one stand-in served from a thread for the whole session, reset before
  each test (resources, recorded requests, faults, auto status) — fast and isolated.
- `standin_gateway`: a TwilioGateway pointed at it, with the same credentials as the app's
  test settings; its HTTP session is closed after the test.
"""

from __future__ import annotations

import pytest

from telline.twilio.gateway import TwilioGateway
from telline.twilio.standin import StandIn

# The same credentials as the app's test settings (tests/conftest.py), so an app under
# test can be pointed at the stand-in as it is.
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture(scope="session")
def standin_server():
    with StandIn(AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def standin(standin_server):
    standin_server.reset()
    yield standin_server
    standin_server.reset()  # also wakes any request still sleeping on an injected delay


@pytest.fixture
def standin_gateway(standin):
    gateway = TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=standin.url, timeout=5)
    yield gateway
    gateway.close()
