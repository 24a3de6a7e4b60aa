"""Registers the evaluation plugins through the CrystalGF hooks."""

from __future__ import annotations

from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import Relaxer

from crystalgf_eval.relax import ChgnetRelaxer


@hookimpl
def crystalgf_add_relaxers() -> list[type[Relaxer]]:
    return [ChgnetRelaxer]
