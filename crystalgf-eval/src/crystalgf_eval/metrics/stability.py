"""Stability, uniqueness, novelty: S.U.N. and the method's balanced S.U.N."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable
from crystalgf.symmetry import crystal_system
from crystalgf.symmetry.detect import detect_space_group
from crystalgf_eval.metrics.matching import matcher
from crystalgf_eval.references import load_elemental_references, locate


class StabilityUniquenessNovelty(Evaluator):
    """Relaxes generated and reference structures with the same potential (cached), builds the convex
    hull of the reference set plus the MP elemental references, and calls a structure

    - stable if its energy above that hull is at most ``stable_threshold`` eV/atom (0.1, as MatterGen),
    - unique if no earlier structure of the batch matches it (StructureMatcher, relaxed structures),
    - novel if no reference structure matches it.

    S.U.N. rate = share that is all three; balanced S.U.N. = mean of the per-crystal-system S.U.N.
    rates over the crystal systems present in the batch.
    """

    name = "sun"
    description = "energy above hull (CHGNet), uniqueness, novelty; S.U.N. and balanced S.U.N."

    def __init__(self, stable_threshold: float = 0.1, elemental_references: str | None = None):
        self.stable_threshold = stable_threshold
        self.elemental_references = elemental_references

    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        if not batch.reference:
            raise NotApplicable("needs --reference structures (the known crystals for the hull and novelty)")
        elements = load_elemental_references(locate(self.elemental_references))
        relaxed = services.relax(batch.ids, batch.structures)
        reference = services.relax(batch.reference_ids, batch.reference)
        entries = [PDEntry(r.structure.composition, r.energy_per_atom * len(r.structure)) for r in reference]
        entries += [PDEntry(entry.composition, entry.energy) for entry in elements.values()]
        needed = {el.symbol for r in relaxed for el in r.structure.composition.elements}
        missing = needed - set(elements)
        if missing:
            raise NotApplicable(f"no elemental reference for {', '.join(sorted(missing))}")
        hulls: dict[frozenset[str], PhaseDiagram] = {}

        def hull_of(chemical_system: frozenset[str]) -> PhaseDiagram:
            if chemical_system not in hulls:
                hulls[chemical_system] = PhaseDiagram(
                    [e for e in entries if {el.symbol for el in e.composition.elements} <= chemical_system])
            return hulls[chemical_system]

        structure_matcher = matcher()
        per: dict[str, Any] = {}
        kept: dict[str, list[Any]] = defaultdict(list)
        known: dict[str, list[Any]] = defaultdict(list)
        for r in reference:
            known[r.structure.composition.reduced_formula].append(r.structure)
        for item_id, relaxation in services.progress(list(zip(batch.ids, relaxed)), "S.U.N."):
            structure = relaxation.structure
            entry = PDEntry(structure.composition, relaxation.energy_per_atom * len(structure))
            chemical_system = frozenset(el.symbol for el in structure.composition.elements)
            e_hull = float(hull_of(chemical_system).get_decomp_and_e_above_hull(entry, allow_negative=True)[1])
            formula = structure.composition.reduced_formula
            unique = not any(structure_matcher.fit(structure, other) for other in kept[formula])
            if unique:
                kept[formula].append(structure)
            novel = not any(structure_matcher.fit(structure, other) for other in known[formula])
            group = detect_space_group(structure, 0.1) or 1
            stable = e_hull <= self.stable_threshold
            per[item_id] = {"e_above_hull": e_hull, "stable": stable, "unique": unique, "novel": novel,
                            "sun": stable and unique and novel, "crystal_system": crystal_system(group)}
        systems = Counter(p["crystal_system"] for p in per.values())
        by_system = {system: sum(p["sun"] for p in per.values() if p["crystal_system"] == system) / count
                     for system, count in systems.items()}
        n = len(per)
        return {"summary": {"stable": sum(p["stable"] for p in per.values()) / n,
                            "unique": sum(p["unique"] for p in per.values()) / n,
                            "novel": sum(p["novel"] for p in per.values()) / n,
                            "sun": sum(p["sun"] for p in per.values()) / n,
                            "balanced_sun": sum(by_system.values()) / len(by_system),
                            "sun_by_crystal_system": by_system,
                            "mean_e_above_hull": sum(p["e_above_hull"] for p in per.values()) / n,
                            "stable_threshold": self.stable_threshold, "structures": n},
                "per_structure": per}
