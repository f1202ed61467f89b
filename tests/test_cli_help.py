"""Every option of every command has help text, and its default is shown in one style."""

from __future__ import annotations

import argparse
import re

import pytest

from pi_inspect.edge.cli import COMMANDS, build_parser


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(only=name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_its_default_in_one_style(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside a default
    try:
        parser = _subparser(name)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{name} needs {exc.name}")
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        what = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help is not argparse.SUPPRESS, f"{what} has no help"
        # the formatter adds "(default: X)"; a hand-written "(default X)" would be a second style,
        # and only an option whose default is computed (None) or a flag says its own
        assert not re.search(r"\(default ", action.help), f"{what}: {action.help!r}"
        if "(default:" in action.help:
            assert action.default in (None, "", [], False), f"{what}: {action.help!r}"
        if action.option_strings and action.default not in (None, "", [], False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(text.split()), what
