"""Texting the line: every keyword answered in the member's language, consent in the ledger.

Each test posts signed webhooks, runs the jobs in a real worker, and reads what the
member's phone received from the Twilio stand-in.
"""

import sqlalchemy as sa

from telline.models import ConsentEvent, InboxItem, Member, Membership, Message
from telline.scheduling.series import create_series
from telline.sms import consent
from tests.signing import post_signed
from tests.sms.conftest import LINE, add_member, outbound, run_jobs, texts_to

ANA = "+447911123456"
_sid = iter(range(10**6))


def text(client, body, sender=ANA, **extra):
    form = {"MessageSid": f"SM{next(_sid):032d}", "AccountSid": "AC" + "1" * 32, "From": sender, "To": LINE,
            "Body": body, "NumMedia": "0", **extra}
    r = post_signed(client, "/twilio/sms", form)
    assert r.status_code == 200
    return r


def ledger(session, number=ANA):
    return [(e.action, e.source) for e in session.scalars(
        sa.select(ConsentEvent).where(ConsentEvent.phone == number).order_by(ConsentEvent.id))]


def test_stop_is_recorded_confirmed_once_and_ends_all_texts(app, client, session, group, standin):
    add_member(session, group)
    text(client, " stop! ")
    run_jobs(app)
    assert ledger(session) == [("opt_in", "import"), ("opt_out", "keyword")]
    assert texts_to(standin, ANA) == ["You won't get any more texts from this number. Text START to come back."]
    text(client, "hello?")  # goes to the inbox; the acknowledgement is not sent to an opted-out number
    run_jobs(app)
    assert len(texts_to(standin, ANA)) == 1
    assert outbound(session)[-1].status == "refused"


def test_french_stop_gets_a_french_answer(app, client, session, group, standin):
    text(client, "Arrêt")
    run_jobs(app)
    assert texts_to(standin, ANA) == ["Vous ne recevrez plus de SMS de ce numéro. Envoyez START pour revenir."]


def test_advanced_opt_out_is_recorded_but_not_answered_twice(app, client, session, group, standin):
    text(client, "STOP", OptOutType="STOP")
    run_jobs(app)
    assert ledger(session) == [("opt_out", "advanced_opt_out")]
    assert texts_to(standin, ANA) == []


def test_start_opts_back_in(app, client, session, group, standin):
    text(client, "STOP")
    text(client, "start")
    run_jobs(app)
    assert [a for a, _ in ledger(session)] == ["opt_out", "opt_in"]
    assert texts_to(standin, ANA)[-1].startswith("Welcome back")
    assert not consent.is_opted_out(session, ANA)


def test_help_says_who_how_to_reach_a_person_how_to_stop_and_the_crisis_line(app, client, session, group, standin):
    text(client, "HELP")
    run_jobs(app)
    [answer] = texts_to(standin, ANA)
    assert "Carers" in answer and "Sam 07700 900123" in answer and "STOP" in answer and "116 123" in answer


def test_aide_is_answered_in_french(app, client, session, group, standin):
    text(client, "aide")
    run_jobs(app)
    [answer] = texts_to(standin, ANA)
    assert answer.startswith("Ici la ligne du groupe Carers") and "urgence" in answer


def test_join_asks_for_yes_and_yes_confirms(app, client, session, group, standin):
    text(client, "JOIN care42")
    run_jobs(app)
    member = session.scalar(sa.select(Member).where(Member.phone == ANA))
    membership = session.scalar(sa.select(Membership).where(Membership.member_id == member.id))
    assert membership.status == "pending" and ledger(session) == []
    assert texts_to(standin, ANA) == ["Reply YES to join Carers and get its texts (meeting reminders, check-ins). "
                                      "Text STOP at any time to stop."]
    text(client, "yes")
    run_jobs(app)
    session.refresh(membership)
    assert membership.status == "active"
    assert ledger(session) == [("opt_in", "keyword")]
    assert texts_to(standin, ANA)[-1].startswith("You're in Carers.")


def test_join_without_confirmation_when_the_group_says_so(app, client, session, group, standin):
    group.join_needs_confirmation = False
    session.commit()
    text(client, "REJOINDRE CARE42")
    run_jobs(app)
    assert ledger(session) == [("opt_in", "keyword")]
    assert texts_to(standin, ANA) == ["Vous avez rejoint Carers. Envoyez PROCHAIN pour la prochaine réunion, "
                                      "AIDE pour de l'aide, STOP pour arrêter."]


def test_join_with_an_unknown_code_or_none_gets_help_not_silence(app, client, session, group, standin):
    text(client, "JOIN NOPE99")
    text(client, "join")
    run_jobs(app)
    assert texts_to(standin, ANA) == [
        "We don't know the code NOPE99. Please check it with your coordinator and text JOIN and the code again.",
        "To join a group, text JOIN and its code, for example JOIN ABC123. Your coordinator can give you the code."]
    assert session.scalars(sa.select(Membership)).all() == []


def test_next_tells_members_the_meeting_in_their_time_zone_and_language(app, client, session, group, line, standin):
    import datetime as dt
    group.timezone = "Europe/London"
    series = create_series(session, group=group, line=line, title="Tuesday group",
                           first_start_local=dt.datetime(2026, 1, 6, 19, 0), rrule="FREQ=WEEKLY;BYDAY=TU")
    session.commit()
    add_member(session, group, language="fr", tz="Europe/Paris")
    text(client, "prochain")
    run_jobs(app)
    [answer] = texts_to(standin, ANA)
    assert answer.startswith("Prochaine réunion Carers : mardi ")
    assert ", 20:00. Appelez le +1 500-555-0006 et tapez le code " + series.access_code + " puis #." in answer


def test_next_is_only_for_members(app, client, session, group, line, standin):
    text(client, "NEXT", sender="+447911123999")
    run_jobs(app)
    assert texts_to(standin, "+447911123999") == [
        "Meeting details are for group members. Text JOIN and your group's code to join."]


def test_anything_else_reaches_the_inbox_with_an_acknowledgement(app, client, session, group, standin):
    add_member(session, group)
    text(client, "stop it please I'm scared")
    run_jobs(app)
    [item] = session.scalars(sa.select(InboxItem)).all()
    assert item.group_id == group.id and item.status == "open"
    assert texts_to(standin, ANA) == ["Thank you, a coordinator will read your message. "
                                      "In an emergency: call 116 123."]
    assert not consent.is_opted_out(session, ANA)


def test_anonymous_senders_empty_bodies_emoji_and_mms_reach_the_inbox(app, client, session, group, standin):
    text(client, "help me", sender="anonymous")
    text(client, "")
    text(client, "🙏")
    text(client, "", NumMedia="1", MediaUrl0="https://api.twilio.com/x.jpg")
    run_jobs(app)
    assert len(session.scalars(sa.select(InboxItem)).all()) == 4
    assert len(texts_to(standin, ANA)) == 3  # the anonymous sender cannot be answered


def test_a_retried_webhook_answers_once(app, client, session, group, standin):
    form = {"MessageSid": "SM" + "9" * 32, "From": ANA, "To": LINE, "Body": "HELP"}
    post_signed(client, "/twilio/sms", form)
    post_signed(client, "/twilio/sms", form)
    run_jobs(app)
    assert len(texts_to(standin, ANA)) == 1
    assert len(session.scalars(sa.select(Message).where(Message.direction == "inbound")).all()) == 1


def test_a_text_to_a_number_telline_does_not_know_is_kept(app, client, session, standin):
    text(client, "hello")
    run_jobs(app)
    assert standin.messages_sent() == []
    [item] = session.scalars(sa.select(InboxItem)).all()
    assert item.group_id is None


def test_a_plain_yes_from_someone_already_in_goes_to_a_person(app, client, session, group, standin):
    add_member(session, group)
    text(client, "Oui")
    run_jobs(app)
    assert len(session.scalars(sa.select(InboxItem)).all()) == 1
    assert ledger(session) == [("opt_in", "import")]


def test_features_answer_after_the_built_in_keywords_and_before_the_inbox(app):
    """The chain in the orders telline/sms/router.py documents: built-ins 10–50, features between
    50 and 1000, the inbox last."""
    from telline.sms.router import EXTENSION
    assert app.extensions[EXTENSION].names == ["opt_out", "opt_in", "help", "join", "next", "meeting_controls",
                                               "call_me", "inbox"]


def test_stop_with_an_emoji_is_an_opt_out(app, client, session, group, standin):
    add_member(session, group)
    text(client, "STOP 🛑")
    text(client, "Arrêt 🙏", sender="+447911123457")
    run_jobs(app)
    assert consent.is_opted_out(session, ANA) and consent.is_opted_out(session, "+447911123457")
    assert texts_to(standin, ANA) == ["You won't get any more texts from this number. Text START to come back."]
    assert texts_to(standin, "+447911123457") == [
        "Vous ne recevrez plus de SMS de ce numéro. Envoyez START pour revenir."]
    assert session.scalars(sa.select(InboxItem)).all() == []
