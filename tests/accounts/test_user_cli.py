"""`telline user …`: an operator makes the first admin and coordinators, their tokens, from the server."""

from telline.accounts import tokens, users
from telline.cli import cli
from telline.models import Group


def test_add_a_coordinator_with_the_password_from_stdin_never_an_argument(app, session, runner):
    g = Group(name="Carers")
    session.add(g)
    session.commit()
    added = runner.invoke(cli, ["user", "add", "Ana@Example.org", "--role", "coordinator", "--group", str(g.id),
                                "--name", "Ana", "--password-stdin"], input="correct horse battery\n")
    assert added.exit_code == 0, added.output
    assert "correct horse" not in added.output
    session.expire_all()
    ana = users.by_email(session, "ana@example.org")
    assert ana.display_name == "Ana" and ana.role == "coordinator"
    assert users.authenticate(session, "ana@example.org", "correct horse battery").id == ana.id
    listed = runner.invoke(cli, ["user", "list"])
    assert f"{ana.id}\tana@example.org\tcoordinator\tgroups {g.id}\tactive\ttokens: none" in listed.output


def test_a_password_argument_is_not_an_option(app, session, runner):
    refused = runner.invoke(cli, ["user", "add", "a@example.org", "--role", "admin", "--password", "x" * 12])
    assert refused.exit_code == 2 and "No such option" in refused.output
    assert users.by_email(session, "a@example.org") is None


def test_bad_fields_are_one_sentence_and_nothing_is_added(app, session, runner):
    short = runner.invoke(cli, ["user", "add", "b@example.org", "--role", "admin", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "10 characters" in short.output
    bad_mail = runner.invoke(cli, ["user", "add", "not-mail", "--role", "admin", "--password-stdin"],
                             input="long enough pass\n")
    assert bad_mail.exit_code == 2 and "is not an e-mail address" in bad_mail.output
    assert users.list_users(session) == []


def test_a_token_is_printed_once_works_and_is_revoked(app, session, runner):
    runner.invoke(cli, ["user", "add", "c@example.org", "--role", "admin", "--password-stdin"],
                  input="long enough pass\n")
    made = runner.invoke(cli, ["user", "token", "c@example.org", "--name", "laptop"])
    assert made.exit_code == 0, made.output
    raw = made.output.strip().splitlines()[-1]
    token_id = int(made.output.split()[1])
    assert tokens.user_for_token(session, raw).email == "c@example.org"
    listed = runner.invoke(cli, ["user", "list"])
    assert raw not in listed.output and f"{token_id} ({raw[:10]}…)" in listed.output
    assert runner.invoke(cli, ["user", "revoke-token", str(token_id)]).exit_code == 0
    session.expire_all()
    assert tokens.user_for_token(session, raw) is None
    missing = runner.invoke(cli, ["user", "revoke-token", "999"])
    assert missing.exit_code == 2 and "there is no token 999" in missing.output


def test_a_deactivated_user_cannot_sign_in_nor_get_a_token(app, session, runner):
    runner.invoke(cli, ["user", "add", "d@example.org", "--role", "admin", "--password-stdin"],
                  input="long enough pass\n")
    assert runner.invoke(cli, ["user", "deactivate", "d@example.org"]).exit_code == 0
    session.expire_all()
    assert users.authenticate(session, "d@example.org", "long enough pass") is None
    refused = runner.invoke(cli, ["user", "token", "d@example.org"])
    assert refused.exit_code == 2 and "there is no active user d@example.org" in refused.output
