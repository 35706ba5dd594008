"""The command line's help: every option of every sub-command explains itself."""

from __future__ import annotations

import argparse
import re

import pytest

from napari_ipnet import cli


def _sub_parser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(command)  # imports the command's module for its options
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[command]


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_option_has_help(command):
    sub = _sub_parser(command)
    actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
    assert actions, f"{command} has options"
    missing = [a.option_strings or [a.dest] for a in actions
               if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()]
    assert not missing, f"napari-ipnet {command}: options without help: {missing}"
    text = sub.format_help()  # every help string formats (no stray % signs)
    assert command in text


def test_top_level_help_is_plain_text():
    parser = cli.build_parser()
    assert parser.description and "`" not in parser.description
    assert not re.search(r":\w+:", parser.description), "no RST roles"
    text = parser.format_help()
    assert "`" not in text
    for command in cli.COMMANDS:
        assert command in text


def test_every_command_has_a_one_line_summary():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(helps) == set(cli.COMMANDS) and all(h and "`" not in h for h in helps.values())
