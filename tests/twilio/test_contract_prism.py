"""Contract: every request telline's gateway makes is one that Twilio's OpenAPI spec allows.

Prism mocks the 2010 API from Twilio's own spec (twilio/twilio-oai) and validates each
request against it: required parameters, types, formats, bounds, HTTP Basic auth. It
answers 422 with the violations when the spec does not allow a request; the gateway then
raises TwilioError(422). Prism cannot tell us what Twilio *does* (its answers are the spec's
examples): the stand-in covers behaviour, this covers the shape of what we send.

Spec quirk worked around (narrowly, below in _Exchanges): the spec types list parameters
(MediaUrl, StatusCallbackEvent, ConferenceStatusCallbackEvent, ...) as form arrays. Twilio
and its client send those as repeated keys (`MediaUrl=a&MediaUrl=b`); Prism 5.14.2 accepts
a form array only as `MediaUrl[]=a&MediaUrl[]=b` and refuses repeated keys, even a single
one, with "must be array". We rename list-valued fields to `Name[]` before they reach Prism;
test_prism_still_refuses_repeated_keys_for_arrays says when that stops being necessary.
"""

from __future__ import annotations

import datetime

import pytest
import requests

from telline.twilio.gateway import TwilioError, TwilioGateway
from tests import prism
from tests.standin_plugin import ACCOUNT_SID

pytestmark = pytest.mark.slow

MEMBER, LINE = "+15005550006", "+15005550001"
PUBLIC = "https://telline.example"
CF, CA, SM = "CF" + "a" * 32, "CA" + "b" * 32, "SM" + "c" * 32

# Each gateway method, called as telline calls it (with the options it uses or will use).
GATEWAY_CALLS = {
    "send_sms": lambda g: g.send_sms(from_=LINE, to=MEMBER, body="Meeting at 7pm",
                                     status_callback=f"{PUBLIC}/twilio/sms/status"),
    "send_sms with media": lambda g: g.send_sms(from_=LINE, to=MEMBER, body="Agenda",
                                                media_url=[f"{PUBLIC}/a.png", f"{PUBLIC}/b.png"]),
    "find_messages": lambda g: g.find_messages(
        to=MEMBER, from_=LINE, sent_after=datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)),
    "fetch_message": lambda g: g.fetch_message(SM),
    "create_call": lambda g: g.create_call(
        from_=LINE, to=MEMBER, url=f"{PUBLIC}/twilio/voice/outbound", status_callback=f"{PUBLIC}/twilio/call/status",
        status_callback_event=["initiated", "answered", "completed"], timeout=30, machine_detection="Enable"),
    "update_call": lambda g: g.update_call(CA, status="completed"),
    "update_call url": lambda g: g.update_call(CA, url=f"{PUBLIC}/twilio/voice/next"),
    "update_conference end": lambda g: g.update_conference(CF, status="completed"),
    "update_conference announce": lambda g: g.update_conference(
        CF, announce_url=f"{PUBLIC}/twilio/voice/announce", announce_method="POST"),
    "list_participants": lambda g: g.list_participants(CF),
    "add_participant": lambda g: g.add_participant(
        CF, from_=LINE, to=MEMBER, label="member-12", timeout=30, early_media=True,
        status_callback=f"{PUBLIC}/twilio/call/status",
        conference_status_callback=f"{PUBLIC}/twilio/conference/status",
        conference_status_callback_event=["start", "end", "join", "leave", "mute", "hold"]),
    "add_participant by name": lambda g: g.add_participant("group-7-meeting", from_=LINE, to=MEMBER),
    "update_participant": lambda g: g.update_participant(
        CF, CA, muted=True, hold=False, hold_url=f"{PUBLIC}/twilio/voice/hold",
        announce_url=f"{PUBLIC}/twilio/voice/announce"),
    "remove_participant": lambda g: g.remove_participant(CF, CA),
}


class _Exchanges:
    """Between the twilio client and its HTTP client: records each exchange and spells
    list-valued form fields `Name[]` for Prism (the quirk in the module docstring)."""

    def __init__(self, http_client):
        self.http_client, self.seen, self.sent_forms = http_client, [], []

    def request(self, method, url, params=None, data=None, **kwargs):
        if data:
            data = {f"{key}[]" if isinstance(value, list) else key: value for key, value in data.items()}
        response = self.http_client.request(method, url, params=params, data=data, **kwargs)
        self.seen.append((method, url, response.status_code, response.text[:2000]))
        self.sent_forms.append(dict(data or {}))
        return response

    def __getattr__(self, name):
        return getattr(self.http_client, name)


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory):
    if not prism.TWILIO_SPEC.is_file():
        pytest.skip(f"Twilio's OpenAPI spec is not at {prism.TWILIO_SPEC} (set TELLINE_TWILIO_OPENAPI)")
    with prism.mock_server(prism.TWILIO_SPEC, tmp_path_factory.mktemp("prism") / "prism.log") as url:
        yield url


@pytest.fixture
def gateway(prism_url):
    gateway = TwilioGateway(ACCOUNT_SID, "prism-checks-only-that-there-is-one", api_base_url=prism_url, timeout=30)
    gateway.client.http_client = exchanges = _Exchanges(gateway.client.http_client)
    yield gateway
    exchanges.http_client.session.close()


@pytest.mark.parametrize("call", GATEWAY_CALLS.values(), ids=GATEWAY_CALLS.keys())
def test_the_spec_allows_what_the_gateway_sends(gateway, call):
    exchanges = gateway.client.http_client
    try:
        call(gateway)
    except TwilioError as refused:
        pytest.fail(f"Prism refused {exchanges.seen[-1:]}: {refused}")
    assert exchanges.seen, "nothing reached Prism"
    assert all(200 <= status < 300 for _, _, status, _ in exchanges.seen), exchanges.seen


def test_the_gateway_passes_a_method_parameter(gateway):
    # Twilio's own `method=` parameter must reach the API, not collide with the gateway's helper.
    gateway.update_call(CA, url=f"{PUBLIC}/twilio/voice/next", method="POST")
    assert gateway.client.http_client.sent_forms[-1]["Method"] == "POST"
    assert gateway.client.http_client.seen[-1][2] == 200


def test_prism_refuses_a_request_the_spec_does_not_allow(prism_url):
    # Without this, a Prism that accepted everything would make the test above worthless.
    answer = requests.post(f"{prism_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                           data={"From": LINE, "Body": "no To"}, auth=(ACCOUNT_SID, "x"), timeout=30)
    assert answer.status_code == 422
    assert "'To'" in answer.text


def test_a_gateway_request_the_spec_does_not_allow_fails(gateway):
    with pytest.raises(TwilioError) as refused:
        gateway.send_sms(from_=LINE, to=MEMBER, body="hi", status_callback="not a URL")
    assert refused.value.status == 422


def test_prism_refuses_unauthenticated_requests(prism_url):
    answer = requests.get(f"{prism_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", timeout=30)
    assert answer.status_code == 401


def test_prism_still_refuses_repeated_keys_for_arrays(prism_url):
    # When this fails, Prism reads repeated keys as Twilio does: drop the `Name[]` renaming.
    answer = requests.post(f"{prism_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                           data={"From": LINE, "To": MEMBER, "MediaUrl": [f"{PUBLIC}/a.png", f"{PUBLIC}/b.png"]},
                           auth=(ACCOUNT_SID, "x"), timeout=30)
    assert answer.status_code == 422 and "MediaUrl must be array" in answer.text


def test_a_large_find_stays_within_the_page_size_the_spec_allows(gateway):
    gateway.find_messages(to=MEMBER, from_=LINE, limit=2000)
