"""Property targeting: how often a surrogate predictor puts a structure within 0.01 / 0.05 of its target."""

from __future__ import annotations

from typing import Any

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable

TOLERANCES = (0.01, 0.05)


class PropertyTargeting(Evaluator):
    """For every target property in the records' constraints: the predicted value, the error to the
    target (0 inside an interval) and the fractions within 0.01 and 0.05 (eV or eV/atom), as in
    the method's Tables 5-6."""

    name = "property-targeting"
    description = "fraction of structures with |predicted - target| < 0.01 and < 0.05"

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        targeted = [(i, s, r) for i, s, r in zip(batch.ids, batch.structures, batch.records)
                    if r is not None and r.constraint.properties]
        if not targeted:
            raise NotApplicable("no record has a target property")
        summary: dict[str, Any] = {}
        per: dict[str, dict[str, Any]] = {item_id: {} for item_id, _, _ in targeted}
        names = sorted({name for _, _, r in targeted for name in r.constraint.properties})
        for name in names:
            items = [(i, s, r.constraint.properties[name]) for i, s, r in targeted if name in r.constraint.properties]
            predicted = services.predict(name, [i for i, _, _ in items], [s for _, s, _ in items])
            if predicted is None:
                summary[name] = {"note": f"no predictor for {name} installed"}
                continue
            errors = []
            for (item_id, _, target), value in zip(items, predicted):
                error = None if value is None else target.distance(value)
                if error is not None:
                    errors.append(error)
                per[item_id][name] = {"predicted": value, "target": str(target), "error": error}
            # A structure the predictor cannot judge counts as a miss.
            summary[name] = {"structures": len(items), "unpredicted": len(items) - len(errors),
                             "mae_to_target": sum(errors) / len(errors) if errors else None,
                             **{f"hit@{tol}": sum(e < tol for e in errors) / len(items) for tol in TOLERANCES}}
        return {"summary": summary, "per_structure": per}
