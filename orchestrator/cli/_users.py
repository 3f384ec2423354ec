"""``swarmpod users ...``: the service's accounts (the commands live in :mod:`..accounts`)."""

from __future__ import annotations

import argparse

from ..accounts._cli import add_account_commands, run_account_command
from ._command import Command, Subparsers

__all__ = ["USERS"]


def _declare(commands: Subparsers, traced: argparse.ArgumentParser) -> None:
    add_account_commands(commands)


USERS = Command("users", _declare, run_account_command)
"""``swarmpod users``."""
