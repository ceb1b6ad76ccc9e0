"""The command line's own help, in process: every option of every command says what it is."""

from __future__ import annotations

import click
import pytest

from lab.cli import cli

COMMANDS = sorted(cli.commands) if isinstance(cli, click.Group) else []


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name: str) -> None:
    assert isinstance(cli, click.Group)
    undocumented = [param.opts[-1] for param in cli.commands[name].params
                    if isinstance(param, click.Option) and not param.hidden and not param.help]
    assert undocumented == [], f"lab {name}: options without help text"
