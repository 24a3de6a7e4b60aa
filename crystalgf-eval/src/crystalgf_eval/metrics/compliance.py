"""Request compliance: did each structure get the composition, space group and Wyckoff sites it was asked for?"""

from __future__ import annotations

from typing import Any

from pymatgen.core import Composition

from crystalgf.errors import CrystalGFError
from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf.symmetry import same_wyckoff_sites
from crystalgf.symmetry.analysis import constraint_from_structure
from crystalgf.symmetry.detect import detect_space_group
from crystalgf.validity import structure_plausible

SYMPRECS = (0.1, 0.01, 0.001)
"""Tolerances (Å) of the space-group check; Wyckoff sites are checked at the first."""


def composition_complies(request: GenerationRequest | None, constraint: Constraint, composition: Composition) -> bool:
    """The request's rule (:meth:`~crystalgf.schema.GenerationRequest.why_composition_not_honoured`) for a
    structure built to ``constraint`` in its space group; without a request: exactly the constraint's cell."""
    if request is None:
        return constraint.is_cell_of(composition)
    return request.why_composition_not_honoured(composition, constraint.space_group) is None


class Compliance(Evaluator):
    """Per structure: composition as requested, space group as constrained (spglib at symprec
    0.1, 0.01, 0.001 Å) and Wyckoff sites as constrained (at 0.1 Å, up to equivalent relabelling);
    ``all`` is composition, space group and Wyckoff sites at 0.1 Å. ``plausible`` (every pair at least 0.7 x
    its covalent radii sum, :mod:`crystalgf.validity`) is reported beside them, and ``all_plausible`` is
    ``all`` of a plausible structure."""

    name = "compliance"
    description = "composition, space group (symprec 0.1/0.01/0.001) and Wyckoff sites as requested; plausibility"

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        items = [(i, s, r) for i, s, r in zip(batch.ids, batch.structures, batch.records) if r is not None]
        if not items:
            raise NotApplicable("needs generated records with constraints (a run directory)")
        per: dict[str, Any] = {}
        for item_id, structure, record in services.progress(items, "compliance"):
            constraint = record.constraint
            result: dict[str, Any] = {
                "composition": composition_complies(record.request, constraint, structure.composition),
                "exact_cell": constraint.is_cell_of(structure.composition),
            }
            for symprec in SYMPRECS:
                result[f"space_group@{symprec}"] = detect_space_group(structure, symprec) == constraint.space_group
            try:
                found = constraint_from_structure(structure, symprec=SYMPRECS[0])
                result["wyckoff"] = (found.space_group == constraint.space_group and
                                     same_wyckoff_sites(constraint.space_group, found.wyckoff_sites,
                                                        constraint.wyckoff_sites))
            except CrystalGFError:
                result["wyckoff"] = False
            result["all"] = result["composition"] and result["space_group@0.1"] and result["wyckoff"]
            result["plausible"] = structure_plausible(structure)
            result["all_plausible"] = result["all"] and result["plausible"]
            per[item_id] = result
        keys = next(iter(per.values())).keys()
        return {"summary": {key: sum(p[key] for p in per.values()) / len(per) for key in keys} | {"structures": len(per)},
                "per_structure": per}
