"""Registers the diffusion H (and its training command) through the CrystalGF hooks."""

from __future__ import annotations

import click

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import StructureGenerator

from crystalgf_diffusion.commands import train_h
from crystalgf_diffusion.generator import DiffusionGenerator, UnconditionedDiffusionGenerator


@hookimpl
def crystalgf_add_structure_generators() -> list[type[StructureGenerator]]:
    return [DiffusionGenerator, UnconditionedDiffusionGenerator]


@hookimpl
def crystalgf_add_train_commands() -> list[click.Command]:
    return [train_h]
