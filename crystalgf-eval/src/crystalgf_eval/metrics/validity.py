"""Validity as in CDVAE: structural (distances, volume) and compositional (SMACT)."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator
from crystalgf.validity import structure_valid


@lru_cache(maxsize=65536)
def composition_valid(formula: str) -> bool:
    """SMACT charge neutrality with the Pauling electronegativity test (alloys count as valid), as CDVAE."""
    from smact.screening import smact_validity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(smact_validity(formula, use_pauling_test=True, include_alloys=True))


class Validity(Evaluator):
    """Structural and compositional validity per structure and as fractions."""

    name = "validity"
    description = "structural (distances > 0.5 Å, volume > 0.1 Å^3) and SMACT compositional validity"

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        per = {}
        for item_id, structure in zip(batch.ids, batch.structures):
            structural = structure_valid(structure)
            compositional = composition_valid(structure.composition.reduced_formula)
            per[item_id] = {"structural": structural, "compositional": compositional,
                            "valid": structural and compositional}
        n = len(per)
        return {"summary": {key: sum(p[key] for p in per.values()) / n
                            for key in ("structural", "compositional", "valid")} | {"structures": n},
                "per_structure": per}
