"""Registers the LLM constraint generators and G's commands through the CrystalGF hooks."""

from __future__ import annotations

import click

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import ConstraintGenerator

from crystalgf_llm.commands import g_data, train_g


@hookimpl
def crystalgf_add_commands() -> list[click.Command]:
    return [g_data]


@hookimpl
def crystalgf_add_train_commands() -> list[click.Command]:
    return [train_g]


@hookimpl
def crystalgf_add_constraint_generators() -> list[type[ConstraintGenerator]]:
    from crystalgf_llm.generator import GENERATORS

    return GENERATORS
