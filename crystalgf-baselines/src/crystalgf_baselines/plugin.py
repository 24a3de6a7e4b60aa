"""Registers the baseline plugins through the CrystalGF hooks."""

from __future__ import annotations

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import ConstraintGenerator, StructureGenerator

from crystalgf_baselines.con_cdvae_h import ConCdvaeGenerator
from crystalgf_baselines.forest import ForestGenerator
from crystalgf_baselines.mattergen_h import MatterGenGenerator
from crystalgf_baselines.prior import PriorGenerator
from crystalgf_baselines.pyxtal_h import PyxtalGenerator
from crystalgf_baselines.random_g import RandomGenerator


@hookimpl
def crystalgf_add_constraint_generators() -> list[type[ConstraintGenerator]]:
    return [PriorGenerator, ForestGenerator, RandomGenerator]


@hookimpl
def crystalgf_add_structure_generators() -> list[type[StructureGenerator]]:
    return [PyxtalGenerator, MatterGenGenerator, ConCdvaeGenerator]
