"""Property distributions: Wasserstein distances between generated and reference sets."""

from __future__ import annotations

from typing import Any

from scipy.stats import wasserstein_distance

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable
from crystalgf_eval.metrics.validity import composition_valid, structure_valid


class PropertyDistributions(Evaluator):
    """Wasserstein distances of density (g/cm^3), number of distinct elements and predicted
    formation energy (eV/atom) between the valid generated structures and the reference set."""

    name = "property-distributions"
    description = "Wasserstein distances of density, element count and predicted formation energy"

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        if not batch.reference:
            raise NotApplicable("needs --reference structures")
        pairs = [(i, s) for i, s in zip(batch.ids, batch.structures)
                 if structure_valid(s) and composition_valid(s.composition.reduced_formula)]
        if not pairs:
            raise NotApplicable("no valid generated structure")
        ids, valid = [i for i, _ in pairs], [s for _, s in pairs]
        summary: dict[str, Any] = {
            "wdist_density": wasserstein_distance([s.density for s in valid], [s.density for s in batch.reference]),
            "wdist_num_elements": wasserstein_distance([len(s.composition) for s in valid],
                                                       [len(s.composition) for s in batch.reference]),
        }
        generated = services.predict("formation_energy_per_atom", ids, valid)
        reference = services.predict("formation_energy_per_atom", batch.reference_ids, batch.reference)
        if generated is None or reference is None:
            summary["wdist_formation_energy"] = None
            summary["note"] = "no formation-energy predictor installed"
        else:
            summary["wdist_formation_energy"] = wasserstein_distance([x for x in generated if x is not None],
                                                                     [x for x in reference if x is not None])
        summary["valid_generated"] = len(valid)
        return {"summary": summary, "per_structure": {}}
