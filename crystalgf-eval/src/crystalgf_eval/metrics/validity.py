"""Validity as in CDVAE, structural (distances, volume) and compositional (SMACT), and CrystalGF's plausibility
(every pair at least 0.7 x the sum of its covalent radii; :mod:`crystalgf.validity`)."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator
from crystalgf.validity import plausibility, structure_valid


@lru_cache(maxsize=65536)
def composition_valid(formula: str) -> bool:
    """SMACT charge neutrality with the Pauling electronegativity test (alloys count as valid), as CDVAE."""
    from smact.screening import smact_validity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(smact_validity(formula, use_pauling_test=True, include_alloys=True))


class Validity(Evaluator):
    """Structural and compositional validity per structure and as fractions, with plausibility: per
    structure ``plausible``, the closest pair's ``min_distance_ratio`` (distance / sum of covalent radii),
    ``closest_pair`` and ``min_distance`` (Å); in the summary the plausible fraction and the smallest and
    median ratio. ``valid`` keeps CDVAE's meaning (structural and compositional), for comparison with
    published tables."""

    name = "validity"
    description = ("structural (distances > 0.5 Å, volume > 0.1 Å^3) and SMACT compositional validity (CDVAE); "
                   "plausible (every pair >= 0.7 x its covalent radii sum)")

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        per = {}
        for item_id, structure in zip(batch.ids, batch.structures):
            structural = structure_valid(structure)
            compositional = composition_valid(structure.composition.reduced_formula)
            per[item_id] = {"structural": structural, "compositional": compositional,
                            "valid": structural and compositional, **plausibility(structure).to_dict()}
        n = len(per)
        ratios = sorted(p["min_distance_ratio"] for p in per.values())
        return {"summary": {key: sum(p[key] for p in per.values()) / n
                            for key in ("structural", "compositional", "valid", "plausible")}
                | {"min_distance_ratio": ratios[0], "median_min_distance_ratio": ratios[n // 2], "structures": n},
                "per_structure": per}
