"""Registers the evaluation plugins through the CrystalGF hooks."""

from __future__ import annotations

import click

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import Evaluator, PropertyPredictor, Relaxer

from crystalgf_eval.cli import evaluate, export_vasp
from crystalgf_eval.metrics.compliance import Compliance
from crystalgf_eval.metrics.coverage import Coverage
from crystalgf_eval.metrics.distributions import PropertyDistributions
from crystalgf_eval.metrics.matching import MatchRate
from crystalgf_eval.metrics.stability import StabilityUniquenessNovelty
from crystalgf_eval.metrics.targeting import PropertyTargeting
from crystalgf_eval.metrics.validity import Validity
from crystalgf_eval.predictors import (
    ChgnetEnergy,
    ChgnetFormationEnergy,
    M3gnetFormationEnergy,
    MegnetBandGap,
    MegnetFormationEnergy,
)
from crystalgf_eval.rank import rank
from crystalgf_eval.relax import ChgnetRelaxer


@hookimpl
def crystalgf_add_relaxers() -> list[type[Relaxer]]:
    return [ChgnetRelaxer]


@hookimpl
def crystalgf_add_property_predictors() -> list[type[PropertyPredictor]]:
    return [MegnetBandGap, ChgnetFormationEnergy, MegnetFormationEnergy, M3gnetFormationEnergy, ChgnetEnergy]


@hookimpl
def crystalgf_add_evaluators() -> list[type[Evaluator]]:
    return [Validity, Compliance, MatchRate, Coverage, PropertyDistributions, PropertyTargeting,
            StabilityUniquenessNovelty]


@hookimpl
def crystalgf_add_commands() -> list[click.Command]:
    return [evaluate, export_vasp, rank]
