"""Coverage recall and precision against a reference set (CDVAE's COV-R / COV-P)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymatgen.core import Structure
from scipy.spatial.distance import cdist

from crystalgf.errors import InvalidInputError
from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable
from crystalgf_eval.metrics.validity import composition_valid, structure_valid

CUTOFFS = {"mp20": (0.4, 10.0), "perov": (0.2, 4.0), "carbon": (0.2, 4.0)}
"""CDVAE's (structure, composition) fingerprint-distance cutoffs per data set."""


def structure_fingerprints(structures: Sequence[Structure]) -> list[list[float]]:
    """Mean over sites of matminer's CrystalNN "ops" site fingerprint."""
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

    featurizer = CrystalNNFingerprint.from_preset("ops")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [np.mean([featurizer.featurize(s, i) for i in range(len(s))], axis=0).tolist() for s in structures]


def composition_fingerprints(structures: Sequence[Structure]) -> list[list[float]]:
    """matminer's Magpie element-property statistics of each composition."""
    from matminer.featurizers.composition.composite import ElementProperty

    featurizer = ElementProperty.from_preset("magpie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [list(featurizer.featurize(s.composition)) for s in structures]


class Coverage(Evaluator):
    """COV-R: share of reference structures with a valid generated one within both fingerprint cutoffs;
    COV-P: share of valid generated structures within both cutoffs of some reference one.

    Composition fingerprints are standardised with the reference set's mean and deviation (CDVAE
    uses fixed MP-20 statistics). ``preset`` picks CDVAE's cutoffs; explicit cutoffs override it.
    """

    name = "coverage"
    description = "COV-R/COV-P with CrystalNN structure and Magpie composition fingerprints (CDVAE cutoffs)"

    def __init__(self, preset: str = "mp20", struct_cutoff: float | None = None, comp_cutoff: float | None = None):
        if preset not in CUTOFFS:
            raise InvalidInputError(f"unknown coverage preset {preset!r}; known: {', '.join(CUTOFFS)}")
        default_struct, default_comp = CUTOFFS[preset]
        self.preset = preset
        self.struct_cutoff = default_struct if struct_cutoff is None else struct_cutoff
        self.comp_cutoff = default_comp if comp_cutoff is None else comp_cutoff

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        if not batch.reference:
            raise NotApplicable("needs --reference structures")
        valid = [s for s in batch.structures
                 if structure_valid(s) and composition_valid(s.composition.reduced_formula)]
        if not valid:
            raise NotApplicable("no valid generated structure")
        gen_struct = np.array(services.cached("crystalnn-fingerprint", valid, structure_fingerprints))
        ref_struct = np.array(services.cached("crystalnn-fingerprint", batch.reference, structure_fingerprints))
        gen_comp = np.array(services.cached("magpie-fingerprint", valid, composition_fingerprints), dtype=float)
        ref_comp = np.array(services.cached("magpie-fingerprint", batch.reference, composition_fingerprints), dtype=float)
        mean, std = np.nanmean(ref_comp, axis=0), np.nanstd(ref_comp, axis=0)
        std[std == 0] = 1.0
        gen_comp, ref_comp = (np.nan_to_num((x - mean) / std) for x in (gen_comp, ref_comp))
        struct_distance, comp_distance = cdist(gen_struct, ref_struct), cdist(gen_comp, ref_comp)
        recall = np.logical_and(struct_distance.min(axis=0) <= self.struct_cutoff,
                                comp_distance.min(axis=0) <= self.comp_cutoff)
        precision = np.logical_and(struct_distance.min(axis=1) <= self.struct_cutoff,
                                   comp_distance.min(axis=1) <= self.comp_cutoff)
        return {"summary": {"cov_recall": float(recall.mean()), "cov_precision": float(precision.mean()),
                            "struct_cutoff": self.struct_cutoff, "comp_cutoff": self.comp_cutoff,
                            "valid_generated": len(valid), "reference": len(batch.reference)},
                "per_structure": {}}
