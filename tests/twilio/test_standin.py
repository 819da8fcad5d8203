"""The Twilio stand-in, driven through telline's gateway and the official twilio client."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import threading
import time

import pytest
import requests
from twilio.request_validator import RequestValidator

from telline.twilio.gateway import OutcomeUnknown, TwilioError, TwilioGateway
from telline.twilio.standin import StandIn, StandInControl
from tests.prism import TWILIO_SPEC
from tests.standin_plugin import ACCOUNT_SID, AUTH_TOKEN

MEMBER, LINE, OTHER = "+15005550006", "+15005550001", "+15005550009"


def sms(gateway, to=MEMBER, from_=LINE, body="Meeting at 7pm", **kwargs):
    return gateway.send_sms(from_=from_, to=to, body=body, **kwargs)


def gateway_at(url, **kwargs):
    return TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, api_base_url=url, **kwargs)


# --- messages ---------------------------------------------------------------------
def test_a_sent_message_is_recorded_with_its_form(standin, standin_gateway):
    sent = sms(standin_gateway, status_callback="https://telline.example/cb", media_url=["https://m.example/a.png"])

    assert sent.sid.startswith("MM") and len(sent.sid) == 34 and sent.status == "queued"
    assert sent.num_segments == 1
    [request] = standin.requests("POST", "Messages.json")
    assert request.user == ACCOUNT_SID and request.status == 201
    assert (request.get("To"), request.get("From"), request.get("Body")) == (MEMBER, LINE, "Meeting at 7pm")
    assert request.get("StatusCallback") == "https://telline.example/cb"
    assert request.getlist("MediaUrl") == ["https://m.example/a.png"]
    assert [m["sid"] for m in standin.messages_sent()] == [sent.sid]

    fetched = standin_gateway.fetch_message(sent.sid)
    assert (fetched.to, fetched.from_, fetched.num_media, fetched.direction) == (MEMBER, LINE, "1", "outbound-api")
    assert fetched.date_created.tzinfo is not None and fetched.date_sent is None


@pytest.mark.parametrize("body, segments", [
    ("a" * 160, 1), ("a" * 161, 2), ("é" * 160, 1),   # é is GSM-7
    ("[" * 80, 1), ("[" * 81, 2),                      # extension characters take two septets
    ("ś" * 70, 1), ("ś" * 71, 2), ("🙂" * 35, 1),      # UCS-2, an emoji is two UTF-16 units
])
def test_num_segments_follows_gsm7_and_ucs2(standin_gateway, body, segments):
    assert sms(standin_gateway, body=body).num_segments == segments


@pytest.mark.parametrize("form, code", [
    ({"From": LINE, "Body": "hi"}, 21604),
    ({"To": MEMBER, "Body": "hi"}, 21603),
    ({"To": MEMBER, "From": LINE}, 21602),
    ({"To": "5005550006", "From": LINE, "Body": "hi"}, 21211),
    ({"To": MEMBER, "From": LINE, "Body": "x" * 1601}, 21617),
])
def test_message_create_is_validated_like_twilio(standin, form, code):
    answer = requests.post(f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=form,
                           auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["code"] == code and answer.json()["more_info"].endswith(str(code))
    assert standin.messages_sent() == []


def test_invalid_to_comes_out_of_the_gateway_as_a_final_error(standin_gateway):
    with pytest.raises(TwilioError) as refused:
        sms(standin_gateway, to="0612345678")
    assert (refused.value.status, refused.value.code, refused.value.retryable) == (400, 21211, False)


def test_find_messages_filters_by_to_and_from_newest_first(standin_gateway):
    first, _, _, last = (sms(standin_gateway).sid, sms(standin_gateway, to=OTHER).sid,
                         sms(standin_gateway, from_=OTHER).sid, sms(standin_gateway).sid)

    assert [m.sid for m in standin_gateway.find_messages(to=MEMBER, from_=LINE)] == [last, first]
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    assert standin_gateway.find_messages(to=MEMBER, from_=LINE, sent_after=tomorrow) == []
    an_hour_ago = tomorrow - datetime.timedelta(days=1, hours=1)
    assert len(standin_gateway.find_messages(to=MEMBER, from_=LINE, sent_after=an_hour_ago)) == 2


def test_lists_are_paged_like_twilio(standin, standin_gateway):
    sids = [sms(standin_gateway, body=str(n)).sid for n in range(5)]

    listed = standin_gateway.client.messages.list(to=MEMBER, page_size=2)

    assert [m.sid for m in listed] == sids[::-1]
    pages = standin.requests("GET", "Messages.json")
    assert len(pages) == 3 and all(("To", MEMBER) in p.query for p in pages)


# --- faults -------------------------------------------------------------------------
@pytest.mark.parametrize("status, code, retryable", [
    (429, 20429, True), (400, 21610, False), (400, 21211, False), (500, None, True), (503, None, True),
])
def test_injected_errors_reach_the_gateway_and_create_nothing(standin, standin_gateway, status, code, retryable):
    standin.fail(status, code, path_suffix="Messages.json")

    with pytest.raises(TwilioError) as refused:
        sms(standin_gateway)

    assert (refused.value.status, refused.value.code, refused.value.retryable) == (status, code, retryable)
    assert standin.messages_sent() == []
    assert sms(standin_gateway).status == "queued"  # only the next request failed
    assert [r.status for r in standin.requests()] == [status, 201]


def test_faults_match_method_and_path_and_can_last(standin, standin_gateway):
    standin.fail(503, method="GET", times=None)

    sent = sms(standin_gateway)  # a POST: not matched
    for _ in range(2):
        with pytest.raises(TwilioError):
            standin_gateway.fetch_message(sent.sid)
    standin.clear_faults()
    assert standin_gateway.fetch_message(sent.sid).sid == sent.sid


def test_a_slow_answer_is_an_unknown_outcome_and_reconciles(standin):
    gateway = gateway_at(standin.url, timeout=0.3)
    standin.delay(5, path_suffix="Messages.json")
    try:
        with pytest.raises(OutcomeUnknown):
            sms(gateway)
        [created] = standin.messages_sent()
        assert [m.sid for m in gateway.find_messages(to=MEMBER, from_=LINE)] == [created["sid"]]
    finally:
        gateway.client.http_client.session.close()


def test_accept_then_drop_is_an_unknown_outcome_and_the_message_exists(standin, standin_gateway):
    standin.drop(method="POST", path_suffix="Messages.json")

    with pytest.raises(OutcomeUnknown):
        sms(standin_gateway, body="did it go?")

    [created] = standin.messages_sent()
    [request] = standin.requests("POST")
    assert request.status is None  # never answered
    found = standin_gateway.find_messages(to=MEMBER, from_=LINE)
    assert [(m.sid, m.body) for m in found] == [(created["sid"], "did it go?")]


def test_a_stopped_stand_in_refuses_the_connection_which_is_safe_to_retry():
    with StandIn(AUTH_TOKEN) as gone:
        pass
    gateway = gateway_at(gone.url)
    try:
        with pytest.raises(TwilioError) as refused:
            sms(gateway)
    finally:
        gateway.client.http_client.session.close()
    assert (refused.value.status, refused.value.retryable) == (0, True)


# --- auth ---------------------------------------------------------------------------
def test_a_wrong_auth_token_is_refused(standin):
    gateway = TwilioGateway(ACCOUNT_SID, "wrong-token", api_base_url=standin.url)
    try:
        with pytest.raises(TwilioError) as refused:
            sms(gateway)
    finally:
        gateway.client.http_client.session.close()
    assert (refused.value.status, refused.value.code) == (401, 20003)


@pytest.mark.parametrize("auth", [None, ("AC" + "2" * 32, AUTH_TOKEN)], ids=["missing", "other-account"])
def test_missing_auth_or_another_accounts_path_is_refused(standin, auth):
    answer = requests.get(f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", auth=auth, timeout=5)
    assert answer.status_code == 401 and answer.json()["code"] == 20003
    assert standin.requests()[0].status == 401


# --- status callbacks -----------------------------------------------------------------
def test_status_callbacks_are_signed_like_twilios(standin, standin_gateway, receiver):
    callback = f"{receiver.url}/twilio/sms/status?line=7"
    sent = sms(standin_gateway, status_callback=callback)

    assert standin.send_status(sent.sid, "sent") == 200
    assert standin.send_status(sent.sid, "undelivered", error_code=30003) == 200

    validator = RequestValidator(AUTH_TOKEN)
    assert [(url, form["MessageStatus"], form.get("ErrorCode")) for url, form, _ in receiver.received] \
        == [(callback, "sent", None), (callback, "undelivered", "30003")]
    for url, form, signature in receiver.received:
        assert validator.validate(url, form, signature)
        assert form["MessageSid"] == form["SmsSid"] == sent.sid
        assert (form["AccountSid"], form["From"], form["To"], form["ApiVersion"]) \
            == (ACCOUNT_SID, LINE, MEMBER, "2010-04-01")
    fetched = standin_gateway.fetch_message(sent.sid)
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003) and fetched.date_sent is not None


def test_auto_status_walks_each_message_through_its_callbacks(standin, standin_gateway, receiver):
    standin.set_auto_status("sent", "delivered")
    sent = sms(standin_gateway, status_callback=f"{receiver.url}/cb")
    sms(standin_gateway)  # no callback asked: status moves, nothing is posted

    assert standin.wait_callbacks()
    assert [form["MessageStatus"] for _, form, _ in receiver.received] == ["sent", "delivered"]
    assert standin_gateway.fetch_message(sent.sid).status == "delivered"
    assert {m["status"] for m in standin.messages_sent()} == {"delivered"}


# --- calls and conferences ----------------------------------------------------------
def test_calls_are_created_listed_and_ended(standin, standin_gateway):
    call = standin_gateway.create_call(from_=LINE, to=MEMBER, url="https://telline.example/twilio/voice",
                                       status_callback="https://telline.example/cs")
    assert call.sid.startswith("CA") and call.status == "queued"

    ended = standin_gateway.update_call(call.sid, status="completed")

    assert ended.status == "completed" and ended.end_time is not None
    assert [c.sid for c in standin_gateway.client.calls.list(to=MEMBER)] == [call.sid]
    assert standin.requests("POST", f"Calls/{call.sid}.json")[0].get("Status") == "completed"


def test_conference_participants_are_dialled_moderated_and_removed(standin_gateway):
    host = standin_gateway.add_participant("group-7-meeting", from_=LINE, to=MEMBER, label="host")
    guest = standin_gateway.add_participant("group-7-meeting", from_=LINE, to=OTHER, muted=True)
    conference = host.conference_sid
    assert conference.startswith("CF") and guest.conference_sid == conference  # same meeting, by name
    assert host.status == "queued"

    assert {p.call_sid for p in standin_gateway.list_participants(conference)} == {host.call_sid, guest.call_sid}
    assert standin_gateway.update_participant(conference, guest.call_sid, muted=False, hold=True).hold is True
    held = standin_gateway.client.conferences(conference).participants.list(hold=True)
    assert [(p.call_sid, p.muted, p.status) for p in held] == [(guest.call_sid, False, "connected")]

    assert standin_gateway.remove_participant(conference, guest.call_sid) is True
    assert [p.call_sid for p in standin_gateway.list_participants(conference)] == [host.call_sid]
    assert standin_gateway.client.calls(guest.call_sid).fetch().status == "completed"

    ended = standin_gateway.update_conference(conference, status="completed")
    assert (ended.status, ended.reason_conference_ended) == ("completed", "conference-ended-via-api")
    assert standin_gateway.list_participants(conference) == []


def test_unknown_conference_or_participant_is_404(standin_gateway):
    host = standin_gateway.add_participant("room", from_=LINE, to=MEMBER)
    for attempt in (lambda: standin_gateway.update_conference("CF" + "0" * 32, status="completed"),
                    lambda: standin_gateway.update_participant(host.conference_sid, "CA" + "0" * 32, muted=True),
                    lambda: standin_gateway.remove_participant(host.conference_sid, "CA" + "0" * 32)):
        with pytest.raises(TwilioError) as missing:
            attempt()
        assert (missing.value.status, missing.value.code) == (404, 20404)


@pytest.mark.parametrize("listing", ["find_messages", "list_participants"])
def test_a_refused_list_comes_out_of_the_gateway_as_a_twilio_error(standin, standin_gateway, listing):
    standin.fail(429, 20429, method="GET")
    with pytest.raises(TwilioError) as refused:
        if listing == "find_messages":
            standin_gateway.find_messages(to=MEMBER, from_=LINE)
        else:
            standin_gateway.list_participants("CF" + "0" * 32)
    assert (refused.value.status, refused.value.code, refused.value.retryable) == (429, 20429, True)


def test_kicking_the_last_participant_ends_the_conference_as_on_twilio(standin_gateway):
    host = standin_gateway.add_participant("room", from_=LINE, to=MEMBER, end_conference_on_exit=True)
    guest = standin_gateway.add_participant("room", from_=LINE, to=OTHER)
    standin_gateway.remove_participant(host.conference_sid, guest.call_sid)
    standin_gateway.update_call(host.call_sid, status="completed")  # the host hangs up

    ended = standin_gateway.client.conferences(host.conference_sid).fetch()
    assert (ended.status, ended.reason_conference_ended, ended.call_sid_ending_conference) \
        == ("completed", "participant-with-end-conference-on-exit-left", host.call_sid)
    again = standin_gateway.add_participant("room", from_=LINE, to=MEMBER)  # a new meeting by that name
    assert again.conference_sid != host.conference_sid


def test_resources_carry_exactly_the_fields_of_twilios_spec(standin, standin_gateway):
    if not TWILIO_SPEC.is_file():
        pytest.skip(f"Twilio's OpenAPI spec is not at {TWILIO_SPEC} (set TELLINE_TWILIO_OPENAPI)")
    schemas = json.loads(TWILIO_SPEC.read_text())["components"]["schemas"]
    sms(standin_gateway)
    standin_gateway.create_call(from_=LINE, to=MEMBER, url="https://telline.example/twilio/voice")
    conference = standin_gateway.add_participant("room", from_=LINE, to=MEMBER).conference_sid
    base = f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}"
    for listing, key, schema in [("Messages", "messages", "message"), ("Calls", "calls", "call"),
                                 ("Conferences", "conferences", "conference"),
                                 (f"Conferences/{conference}/Participants", "participants", "conference.participant")]:
        page = requests.get(f"{base}/{listing}.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
        assert set(page[key][0]) == set(schemas[f"api.v2010.account.{schema}"]["properties"]), schema
        assert set(page) - {key} <= {"page", "page_size", "start", "end", "uri", "first_page_uri",
                                     "next_page_uri", "previous_page_uri"}


# --- control API --------------------------------------------------------------------
def test_the_http_control_api_steers_a_stand_in(standin, standin_gateway, receiver):
    control = StandInControl(standin.url)
    fault = control.fail(429, 20429, path_suffix="Messages.json")
    assert (fault.status, fault.code, fault.times) == (429, 20429, 1)

    with pytest.raises(TwilioError):
        sms(standin_gateway)
    sent = sms(standin_gateway, status_callback=f"{receiver.url}/cb")

    assert [r.status for r in control.requests(method="POST", path_suffix="Messages.json")] == [429, 201]
    assert control.requests()[1].get("StatusCallback") == f"{receiver.url}/cb"
    assert [m["sid"] for m in control.messages_sent()] == [sent.sid]
    assert control.send_status(sent.sid, "delivered") == 200
    control.drop()
    control.clear_faults()
    control.set_auto_status("sent")
    assert standin.auto_status == ("sent",)
    control.reset()
    assert control.requests() == [] and control.messages_sent() == [] and standin.auto_status == ()


@pytest.mark.slow
def test_a_stand_in_process_is_driven_over_http(tmp_path):
    command = [sys.executable, "-m", "telline.twilio.standin", "--port", "0", "--auth-token", AUTH_TOKEN,
               "--latency", "0.2", "--jitter", "0.05"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            url = process.stdout.readline().split()[-1]
            control, gateway = StandInControl(url), gateway_at(url)
            assert control.config()["latency"] == 0.2 and control.config()["jitter"] == 0.05
            started = time.monotonic()
            sms(gateway)
            assert time.monotonic() - started >= 0.15
            control.reset()  # the latency it was started with stays
            assert control.config()["latency"] == 0.2
            control.drop(path_suffix="Messages.json")
            with pytest.raises(OutcomeUnknown):
                sms(gateway)
            assert [m["to"] for m in control.messages_sent()] == [MEMBER]
            assert len(gateway.find_messages(to=MEMBER, from_=LINE)) == 1
            gateway.client.http_client.session.close()
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0


# --- latency ------------------------------------------------------------------------
def _post_message(url, to=MEMBER, timeout=10):
    return requests.post(f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", timeout=timeout,
                         data={"To": to, "From": LINE, "Body": "hi"}, auth=(ACCOUNT_SID, AUTH_TOKEN))


def test_an_answer_waits_the_latency_after_the_request_is_recorded_and_acted_on():
    with StandIn(AUTH_TOKEN, latency=0.4, jitter=0.1) as slow:
        seen_while_waiting = []

        def look():  # the request sleeps without the lock: the stand-in answers this meanwhile
            time.sleep(0.15)
            seen_while_waiting.append(([m["to"] for m in slow.messages_sent()], [r.status for r in slow.requests()]))
        looker = threading.Thread(target=look)
        looker.start()
        sent = time.time()
        answer = _post_message(slow.url)
        answered = time.time()
        looker.join()

        assert answer.status_code == 201
        assert answered - sent >= 0.3
        [request] = slow.requests()
        assert sent <= request.time <= sent + 0.1  # when it arrived: what Twilio meters
        assert request.status == 201
        assert seen_while_waiting == [([MEMBER], [None])]  # created at once; its answer still pending


@pytest.mark.timing
def test_the_control_api_is_not_delayed():
    with StandIn(AUTH_TOKEN, latency=1.0) as slow:
        control = StandInControl(slow.url)
        started = time.monotonic()
        control.requests()
        control.messages_sent()
        control.config()
        assert time.monotonic() - started < 0.5


@pytest.mark.timing
def test_concurrent_requests_overlap_instead_of_queueing():
    """The werkzeug server runs a thread per connection: 120 requests sleeping at once all end
    about one latency after they started, not 120 latencies."""
    latency, n = 1.0, 120
    with StandIn(AUTH_TOKEN, latency=latency) as slow:
        barrier, took, statuses = threading.Barrier(n + 1), [], []

        def one(k):
            barrier.wait()
            started = time.monotonic()
            statuses.append(_post_message(slow.url, to=f"+1617555{k:04d}").status_code)
            took.append(time.monotonic() - started)
        threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.monotonic()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started

        assert statuses == [201] * n
        assert min(took) >= latency - 0.01
        assert wall < 5 * latency, f"{n} requests took {wall:.2f} s: they queued"
        times = sorted(r.time for r in slow.requests())
        # received before the first one's answer went: each still sleeping then, all at once
        held = sum(t < times[0] + latency for t in times)
        assert held >= 100, f"only {held} requests slept at once"


def test_latencies_are_drawn_within_the_jitter_and_never_below_zero():
    with StandIn(AUTH_TOKEN, latency=0.2, jitter=0.05) as standin:
        draws = [standin._draw_latency() for _ in range(2000)]
        assert 0.15 <= min(draws) < 0.16 and 0.24 < max(draws) <= 0.25
        assert 0.19 < sum(draws) / len(draws) < 0.21
        standin.set_latency(0.02, 0.05)  # a jitter wider than the latency is clamped at 0
        draws = [standin._draw_latency() for _ in range(2000)]
        assert min(draws) == 0.0 and max(draws) <= 0.07


def test_an_injected_delay_comes_on_top_of_the_latency():
    with StandIn(AUTH_TOKEN, latency=0.2) as slow:
        slow.delay(0.3, path_suffix="Messages.json")
        started = time.monotonic()
        assert _post_message(slow.url).status_code == 201
        assert time.monotonic() - started >= 0.5


@pytest.mark.timing
def test_latency_is_set_at_run_time_through_the_control_api_and_reset_restores_it(standin):
    control = StandInControl(standin.url)
    control.set_auto_status("sent")
    control.set_latency(0.3, 0.05)
    assert control.config() == {"auto_status": ["sent"], "latency": 0.3, "jitter": 0.05}  # one leaves the other
    started = time.monotonic()
    assert _post_message(standin.url).status_code == 201
    assert time.monotonic() - started >= 0.25

    control.reset()
    assert control.config() == {"auto_status": [], "latency": 0.0, "jitter": 0.0}
    started = time.monotonic()
    _post_message(standin.url)
    assert time.monotonic() - started < 0.2


@pytest.mark.timing
def test_reset_cuts_a_sleeping_answer_short():
    with StandIn(AUTH_TOKEN, latency=30) as slow:
        threading.Timer(0.3, slow.reset).start()
        started = time.monotonic()
        _post_message(slow.url)
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("latency, jitter", [(-0.1, 0), (0.2, -1), (float("nan"), 0), (float("inf"), 0),
                                             (61, 0), ("fast", 0), (True, 0), (None, 0)])
def test_bad_latencies_are_refused_with_a_sentence(standin, latency, jitter):
    name = "jitter" if latency == 0.2 else "latency"
    with pytest.raises(ValueError, match=f"{name} must be a number of seconds from 0 to 60"):
        StandIn(AUTH_TOKEN, latency=latency, jitter=jitter)
    with pytest.raises(ValueError, match=f"{name} must be a number of seconds"):
        standin.set_latency(latency, jitter)
    if isinstance(latency, float) and not math.isfinite(latency):
        return  # JSON has no NaN or infinity
    with pytest.raises(ValueError, match=f"{name} must be a number of seconds"):
        StandInControl(standin.url).set_latency(latency, jitter)
    assert standin.config()["latency"] == 0.0


def test_the_config_endpoint_refuses_what_it_does_not_know(standin):
    base = f"{standin.url}/_standin/config"
    for body in ({"latencee": 0.2}, {"auto_status": "sent"}, [0.2]):
        answer = requests.post(base, json=body, timeout=5)
        assert answer.status_code == 400 and answer.json()["error"]
    assert standin.config() == {"auto_status": [], "latency": 0.0, "jitter": 0.0}


def test_the_command_line_refuses_a_bad_latency():
    command = [sys.executable, "-m", "telline.twilio.standin", "--port", "0", "--auth-token", AUTH_TOKEN,
               "--latency", "-0.2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "latency must be a number of seconds from 0 to 60" in done.stderr
