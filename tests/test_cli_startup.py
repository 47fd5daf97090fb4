"""``koembed CMD`` loads only CMD's command module (start-up time), and the map it uses matches the commands."""

from __future__ import annotations

import importlib

from koembed.cli import COMMANDS, command_modules
from koembed.cli.app import app


def test_the_command_map_names_every_registered_command_once():
    for module in COMMANDS:
        importlib.import_module(module)
    registered = sorted(c.name or c.callback.__name__ for c in app.registered_commands)
    mapped = sorted(name for names in COMMANDS.values() for name in names)
    assert registered == mapped


def test_a_command_loads_its_own_module_and_help_loads_all():
    assert command_modules(["search", "ix", "질의", "-k", "3"]) == ["koembed.cli.index"]
    assert command_modules(["encode", "--help"]) == ["koembed.cli.encode"]
    assert command_modules(["--help"]) == list(COMMANDS)
    assert command_modules([]) == list(COMMANDS)
    assert command_modules(["serch", "ix"]) == list(COMMANDS)  # typer then suggests 'search'
