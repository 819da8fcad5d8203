"""Every /twilio/* route refuses what Twilio did not sign."""

import base64
import hashlib
import hmac

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from telline.models import Message
from tests.conftest import AUTH_TOKEN
from tests.signing import post_signed, signature

FORM = {"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "1" * 32, "From": "+33612345678",
        "To": "+15005550006", "Body": "hello", "NumMedia": "0"}


def stored(session):
    return session.scalars(sa.select(Message)).all()


def test_twilio_published_example_is_valid_with_an_independent_hmac():
    # Twilio's documented example, recomputed here by hand (not by twilio's code).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    payload = url + "".join(k + params[k] for k in sorted(params))
    by_hand = base64.b64encode(hmac.new(b"12345", payload.encode(), hashlib.sha1).digest()).decode()
    assert by_hand == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert RequestValidator("12345").validate(url, params, by_hand)


def test_signed_request_passes_and_is_stored(client, session):
    r = post_signed(client, "/twilio/sms", FORM)
    assert r.status_code == 200
    assert [m.body for m in stored(session)] == ["hello"]


def test_hand_signed_request_passes(client, session):
    url = "http://localhost/twilio/sms"
    payload = url + "".join(k + FORM[k] for k in sorted(FORM))
    sig = base64.b64encode(hmac.new(AUTH_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()
    r = client.post("/twilio/sms", data=FORM, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 200


@pytest.mark.parametrize("tamper", ["body", "extra_field", "url", "token", "missing", "empty"])
def test_tampered_or_unsigned_requests_get_403_and_store_nothing(client, session, tamper):
    form, headers, path = dict(FORM), {}, "/twilio/sms"
    sig = signature("http://localhost/twilio/sms", FORM)
    if tamper == "body":
        form["Body"] = "STOP"
    elif tamper == "extra_field":
        form["Digits"] = "1"
    elif tamper == "url":
        path = "/twilio/sms?x=1"
    elif tamper == "token":
        sig = signature("http://localhost/twilio/sms", FORM, token="someone-elses-token")
    elif tamper == "empty":
        sig = ""
    if tamper != "missing":
        headers["X-Twilio-Signature"] = sig
    r = client.post(path, data=form, headers=headers)
    assert r.status_code == 403
    assert stored(session) == []


def test_voice_route_is_protected_too(client):
    assert client.post("/twilio/voice", data={"CallSid": "CA" + "b" * 32}).status_code == 403


def test_oversized_body_is_refused_before_anything_is_stored(client, session):
    form = dict(FORM, Body="x" * (70 * 1024))
    r = post_signed(client, "/twilio/sms", form)
    assert r.status_code == 413
    assert stored(session) == []


class TestBehindAProxy:
    """Twilio signs https://public-host/…; the app sees http://internal:8000/…"""

    PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "telline.example.org"}
    PUBLIC = "https://telline.example.org/twilio/sms"

    @pytest.fixture
    def settings_overrides(self, request):
        return request.param

    @pytest.mark.parametrize("settings_overrides", [{"proxy_hops": 1}], indirect=True)
    def test_proxy_fix_rebuilds_the_public_url(self, client, session):
        r = post_signed(client, "/twilio/sms", FORM, base="http://internal:8000",
                        signed_url=self.PUBLIC, headers=self.PROXY_HEADERS)
        assert r.status_code == 200
        assert len(stored(session)) == 1

    @pytest.mark.parametrize("settings_overrides", [{}], indirect=True)
    def test_without_proxy_config_forwarded_headers_are_not_trusted(self, client, session):
        r = post_signed(client, "/twilio/sms", FORM, base="http://internal:8000",
                        signed_url=self.PUBLIC, headers=self.PROXY_HEADERS)
        assert r.status_code == 403

    @pytest.mark.parametrize("settings_overrides", [{"public_url": "https://telline.example.org/"}],
                             indirect=True)
    def test_public_url_setting_works_without_forwarded_headers(self, client, session):
        r = post_signed(client, "/twilio/sms", FORM, base="http://internal:8000", signed_url=self.PUBLIC)
        assert r.status_code == 200
        # …and a request signed for the inside URL is refused in that mode.
        r = post_signed(client, "/twilio/sms", dict(FORM, MessageSid="SM" + "c" * 32),
                        base="http://internal:8000", signed_url="http://internal:8000/twilio/sms")
        assert r.status_code == 403


class TestSharedKeySha256:
    SETTINGS = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"

    @pytest.fixture
    def settings_overrides(self):
        return {"twilio_webhook_signing_key": "shared-key-secret"}

    def _sig(self, secret):
        return RequestValidator(secret).compute_signature("http://localhost/twilio/sms", FORM,
                                                          algorithm="HMAC_SHA256")

    def test_sha256_signed_with_the_shared_key_passes(self, client):
        r = client.post("/twilio/sms", data=FORM, headers={
            "X-Twilio-Signature": self._sig("shared-key-secret"),
            "X-Twilio-Webhooks-Signature-Settings": self.SETTINGS})
        assert r.status_code == 200

    def test_sha256_signed_with_the_auth_token_fails(self, client):
        r = client.post("/twilio/sms", data=FORM, headers={
            "X-Twilio-Signature": self._sig(AUTH_TOKEN),
            "X-Twilio-Webhooks-Signature-Settings": self.SETTINGS})
        assert r.status_code == 403
