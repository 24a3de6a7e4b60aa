"""Crystal structure prediction: match rate and RMSE against the ground truth of each request."""

from __future__ import annotations

from typing import Any

from pymatgen.analysis.structure_matcher import StructureMatcher

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable


def matcher() -> StructureMatcher:
    """The matcher of the method's tables: stol=0.5, angle_tol=10, ltol=0.3."""
    return StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def pair_key(batch: EvaluationBatch, index: int) -> str:
    """The id a generated item is paired on: its request id, or its own id for plain structure sets."""
    record = batch.records[index]
    return record.request_id if record is not None else batch.ids[index]


class MatchRate(Evaluator):
    """Each reference structure is matched with the generated ones of the same request id; an item
    counts as matched if any candidate matches, with the smallest normalised RMS distance
    (pymatgen ``get_rms_dist``, normalised by (V/N)^(1/3)). The match rate is over all reference
    structures (one without a generated structure is a miss, as in CDVAE's evaluation);
    ``match_rate_paired`` only over those with a candidate. RMSE is averaged over matched items."""

    name = "match-rate"
    description = "CSP match rate and RMSE (StructureMatcher stol=0.5, angle_tol=10, ltol=0.3)"

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        if not batch.reference:
            raise NotApplicable("needs --reference with the ground-truth structures")
        candidates: dict[str, list[int]] = {}
        for i in range(len(batch.ids)):
            candidates.setdefault(pair_key(batch, i), []).append(i)
        structure_matcher = matcher()
        per: dict[str, Any] = {}
        for ref_id, reference in services.progress(list(zip(batch.reference_ids, batch.reference)), "match"):
            if ref_id not in candidates:
                continue
            distances = [structure_matcher.get_rms_dist(batch.structures[i], reference) for i in candidates[ref_id]]
            found = [d[0] for d in distances if d is not None]
            per[ref_id] = {"matched": bool(found), "rms": min(found) if found else None,
                           "candidates": len(candidates[ref_id])}
        if not per:
            raise NotApplicable("no generated structure shares an id with the reference")
        matched = [p["rms"] for p in per.values() if p["matched"]]
        return {"summary": {"match_rate": len(matched) / len(batch.reference),
                            "match_rate_paired": len(matched) / len(per),
                            "rmse": sum(matched) / len(matched) if matched else None,
                            "paired_references": len(per),
                            "unpaired_references": len(batch.reference) - len(per)},
                "per_structure": per}
