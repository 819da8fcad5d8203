"""The `telline` command itself: its own version and options, a description for every command,
and every `telline …` line the READMEs show names a command and options that exist."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from telline.cli import cli

REPO = Path(__file__).resolve().parents[1]
READMES = [REPO / "README.md", REPO / "deploy" / "README.md"]


def walk(command: click.Command, path: tuple[str, ...] = ("telline",)) -> Iterator[tuple[tuple[str, ...],
                                                                                            click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_version_is_tellines_own():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output == f"telline {importlib.metadata.version('telline')}\n"


def test_help_shows_only_tellines_options_and_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0, r.output
    options = re.findall(r"^\s+(-[-\w]+)", r.output.split("Options:")[1].split("Commands:")[0], re.M)
    assert options == ["--version", "--help"]
    for flask_only in ("--env-file", "--app", "--debug", "routes", "shell", "Flask"):
        assert flask_only not in r.output


@pytest.mark.parametrize("path,command", list(walk(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_says_in_one_line_what_it_does(path, command):
    assert (command.help or "").strip(), f"{' '.join(path)} has no description"
    if isinstance(command, click.Group):
        # 78: what click formats for an 80-column terminal (CliRunner alone would use 80)
        listing = CliRunner().invoke(cli, [*path[1:], "--help"], terminal_width=78).output.split("Commands:")[1]
        shown = [line for line in listing.splitlines() if line.strip()]
        assert len(shown) == len(command.commands), listing  # one line each: nothing wrapped
        assert not [line for line in shown if line.endswith("...")], listing  # nor cut short


def test_a_bad_setting_still_says_which_and_exits_2():
    r = subprocess.run([sys.executable, "-m", "telline", "sms", "failures"], capture_output=True, text=True,
                       env=dict(os.environ, TELLINE_LOG_LEVEL="LOUD"), timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.startswith("telline: configuration error: TELLINE_LOG_LEVEL"), r.stderr
    assert "Traceback" not in r.stderr


# --- the READMEs ------------------------------------------------------------------------
def shown_code(text: str) -> Iterator[str]:
    """Every piece of code a README shows: fenced blocks line by line (continuations joined,
    comments dropped: they are prose), and inline `code`."""
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            yield re.sub(r"(^|\s)#.*", "", line)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", prose)


def telline_commands(code: str) -> Iterator[list[str]]:
    """The words of each `telline …` command in a piece of code, up to a shell separator."""
    for match in re.finditer(r"(?:^|[\s(])telline((?:\s+[^\s|&;#)]+)*)", code):
        words = match.group(1).split()
        if words and re.fullmatch(r"[a-z][a-z-]*(/[a-z][a-z-]*)*|--[a-z]+", words[0]):  # not `-g telline /etc/…`
            yield words


def check(words: list[str]) -> list[str]:
    """What is wrong with `telline WORDS`: unknown commands or options. Slashes list alternatives
    (`meeting create/configure`); brackets, values, placeholders and `…` are left alone."""
    problems: list[str] = []
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        names = rest.pop(0).split("/")
        found = [command.commands.get(n) for n in names]
        if None in found or not names[0]:
            return [f"no command {'/'.join(names)!r} in {command.name!r}"]
        if len(found) > 1:
            return []  # a list of sibling commands: their options are shown elsewhere
        command = found[0]
    if isinstance(command, click.Group) and not rest:
        return [f"{command.name!r} needs a subcommand"]
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in rest:
        option = word.strip("[]").split("=")[0]
        if re.fullmatch(r"--?[a-z][\w-]*", option) and option not in known:
            problems.append(f"{command.name!r} has no option {option}")
    return problems


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_telline_command_in_the_readme_exists(readme):
    shown = [words for code in shown_code(readme.read_text()) for words in telline_commands(code)]
    assert len(shown) >= 5
    wrong = {" ".join(words): problems for words in shown if (problems := check(words))}
    assert not wrong, wrong


def test_the_checker_catches_what_it_should():
    assert check(["meeting", "roster", "5"]) == []
    assert check(["meeting", "create/configure"]) == []
    assert check(["group", "configure", "1", "[--quiet-hours", "21:00-08:00]", "--no-confirm-join"]) == []
    assert check(["meeting", "rooster", "5"]) != []
    assert check(["meeting", "create/rooster"]) != []
    assert check(["sms", "failures", "--grop", "2"]) != []
    assert check(["db"]) != []
    assert check(["--version"]) == [] and check(["--app", "x"]) != []


def test_the_readme_says_how_to_get_the_command_before_using_it():
    """Someone who just ran the README's two commands has `.venv` and no `telline` on PATH."""
    text = (REPO / "README.md").read_text()
    assert text.startswith("```sh\npython3 deploy/local.py run ")  # the two commands stay at the very top
    first_use = min(m.start() for code in [text] for m in re.finditer(r"`telline [a-z]", code))
    how = text.find(".venv/bin/activate")
    assert 0 <= how < first_use, "the README uses `telline …` before saying where the command is"
    assert ".venv/bin/telline" in text[:first_use]
    venv_bin = Path(sys.executable).parent
    if venv_bin.parent != REPO / ".venv":
        pytest.skip("not running from the repository's .venv")
    r = subprocess.run(["bash", "-c", ". .venv/bin/activate && telline --help && .venv/bin/telline --version"],
                       cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "meeting" in r.stdout, r
