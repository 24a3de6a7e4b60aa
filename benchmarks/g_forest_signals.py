"""What more knowledge buys the forest G: grouped cross-validation of extra signals for the space group.

    python benchmarks/g_forest_signals.py

The forest G's space-group ranking for an exact cell (the method's formula mode) is measured by 5-fold
cross-validation on the training side of ``constraints.csv`` (the held-out formulas are never read),
folds grouped by reduced formula; the MP-20 sample's training-side crystals join every training fold
that does not hold out their formula, as ``fit_prior.py --structures`` adds them to the G's table. The forest is set up as the forest G's (300
trees, seed 0, the inputs of ``crystalgf_baselines.forest.forest_features``) but is not mixed with the
prior; only groups in which the cell has a Wyckoff assignment are ranked. Each signal is mixed in as
``(1 - a) P_forest + a P_signal`` for several ``a``, or appended to the forest's inputs:

- ``substitution analogues``: known crystals with the same multiset of cell counts vote for their
  group, weighted by the geometric mean over elements (best count-preserving element mapping) of the
  ICSD-mined substitution correlations shipped with pymatgen (Hautier et al. 2011), taking for each pair
  of elements the largest over their oxidation states;
- ``MP Wyckoff statistics``: how often each group occurs in the Materials Project with Wyckoff sites
  whose multiplicities can be split into the cell's element counts (pyxtal's ``spg_num_wps_mp.csv``,
  88,678 structures, each count less one, since the held-out crystals themselves are MP entries);
- ``MEGNet element embedding`` / ``matscholar element embedding``: learned element vectors shipped with
  matminer (16-d; 200-d reduced to 8 by PCA) added to the forest's inputs (fraction-weighted mean,
  max and min over the elements, or one per element slot).

Writes ``benchmarks/results/g_forest_signals.{json,md}``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import time
import zlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyxtal
from pyxtal.symmetry import Group
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier

from common import CONSTRAINTS, DATA, hardware, run, write_results
from crystalgf.manifest import now, package_versions
from crystalgf.symmetry.assignment import has_wyckoff_assignment
from crystalgf_baselines.features import SLOTS, element_features
from crystalgf_baselines.forest import forest_features
from crystalgf_llm.instructions import read_labelled

PROPERTIES = {"formula+band_gap": "band_gap", "formula+formation_energy": "formation_energy_per_atom"}
MIXTURES = (0.1, 0.2, 0.3, 0.5)
FOLDS = 5
MATMINER_DATA = Path(__import__("matminer").__file__).parent / "utils" / "data_files"


def _crystals() -> tuple[list[dict], list[dict]]:
    """(training-side constraint rows, training-side MP-20 sample crystals) as plain records."""
    def record(crystal) -> dict:
        return {"counts": dict(crystal.constraint.counts), "group": crystal.constraint.space_group,
                "formula": crystal.reduced_formula, **crystal.properties}
    rows = [record(c) for split in ("train", "validation") for c in read_labelled(CONSTRAINTS, split=split)]
    extra = [record(c) for split in ("train", "val", "test")
             for c in read_labelled(DATA / "mp_20_sample" / f"{split}.csv", "cdvae-csv", split="train")]
    return rows, extra


def _fold(formula: str) -> int:
    return zlib.crc32(formula.encode()) % FOLDS


@lru_cache(maxsize=None)
def _feasible(cell: tuple[tuple[str, int], ...], group: int) -> bool:
    return has_wyckoff_assignment(dict(cell), group)


@lru_cache(maxsize=None)
def _element_similarity() -> dict[tuple[str, str], float]:
    from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionProbability

    table = SubstitutionProbability()
    similarity: dict[tuple[str, str], float] = collections.defaultdict(float)
    for first in table.species:
        for second in table.species:
            pair = (first.symbol, second.symbol)
            similarity[pair] = max(similarity[pair], table.pair_corr(first, second))
    return dict(similarity)


def _analogy(cell: Mapping[str, int], known: Mapping[str, int]) -> float:
    """Best count-preserving mapping of ``known``'s elements onto ``cell``'s: geometric mean similarity."""
    similarity, mine, best = _element_similarity(), list(cell), 0.0
    for theirs in itertools.permutations(known):
        if all(cell[a] == known[b] for a, b in zip(mine, theirs)):
            product = np.prod([max(similarity.get((a, b), 0.0), 1.0 if a == b else 0.0) for a, b in zip(mine, theirs)])
            best = max(best, product ** (1 / len(mine)))
    return best


def substitution_votes(training: list[dict]) -> Callable[[dict], dict[int, float]]:
    by_counts = collections.defaultdict(list)
    for row in training:
        by_counts[tuple(sorted(row["counts"].values()))].append(row)

    def votes(row: dict) -> dict[int, float]:
        found: dict[int, float] = collections.Counter()
        for known in by_counts[tuple(sorted(row["counts"].values()))]:
            found[known["group"]] += _analogy(row["counts"], known["counts"])
        return found
    return votes


@lru_cache(maxsize=None)
def _mp_wyckoff_rows() -> dict[int, list[tuple[int, tuple[int, ...], int]]]:
    """Atoms per cell -> (group, site multiplicities, number of MP structures less one)."""
    path = Path(pyxtal.__file__).parent / "database" / "spg_num_wps_mp.csv"
    multiplicities = {g: [wp.multiplicity for wp in Group(g)] for g in range(1, 231)}
    rows = collections.defaultdict(list)
    for line in path.read_text().splitlines()[1:]:
        group, atoms, sites, count = line.split(",")
        sizes = tuple(sorted((multiplicities[int(group)][int(i)] for i in sites.split("-")), reverse=True))
        rows[int(atoms)].append((int(group), sizes, int(count) - 1))
    return dict(rows)


def _splits_into(sizes: tuple[int, ...], counts: tuple[int, ...]) -> bool:
    """Whether site multiplicities can be shared out so that each element gets exactly its count."""
    @lru_cache(maxsize=None)
    def place(i: int, left: tuple[int, ...]) -> bool:
        if i == len(sizes):
            return not any(left)
        return any(place(i + 1, tuple(sorted(left[:j] + (n - sizes[i],) + left[j + 1:])))
                   for j, n in enumerate(left) if n >= sizes[i] and n not in left[:j])
    return len(sizes) >= len(counts) and place(0, tuple(sorted(counts)))


@lru_cache(maxsize=None)
def _mp_statistics(counts: tuple[int, ...]) -> dict[int, float]:
    found: dict[int, float] = collections.Counter()
    for group, sizes, count in _mp_wyckoff_rows().get(sum(counts), []):
        if count and _splits_into(sizes, counts):
            found[group] += count
    return found


def mp_votes(_: list[dict]) -> Callable[[dict], dict[int, float]]:
    return lambda row: _mp_statistics(tuple(sorted(row["counts"].values())))


def _embedding(name: str, dimensions: int) -> dict[str, np.ndarray]:
    from pymatgen.core import Element

    raw = json.loads((MATMINER_DATA / name).read_text())
    table = {str(Element.from_Z(z)): v for z, v in enumerate(raw) if z} if isinstance(raw, list) else raw
    symbols, vectors = list(table), np.array(list(table.values()), dtype=float)
    if dimensions < vectors.shape[1]:
        vectors = PCA(dimensions, random_state=0).fit_transform(vectors)
    vectors = (vectors - vectors.mean(axis=0)) / (vectors.std(axis=0) + 1e-9)
    return dict(zip(symbols, vectors))


def embedding_inputs(name: str, dimensions: int, per_slot: bool) -> Callable[[Mapping[str, int]], np.ndarray]:
    table = _embedding(name, dimensions)
    blank = np.zeros(dimensions)

    def inputs(counts: Mapping[str, int]) -> np.ndarray:
        vectors = [table.get(element, blank) for element in counts]
        if per_slot:  # the forest's slot order: by amount, then electronegativity
            slots = sorted(counts, key=lambda e: (-counts[e], element_features(e)[2]))[:SLOTS]
            return np.concatenate([table.get(e, blank) for e in slots] + [blank] * (SLOTS - len(slots)))
        total = sum(counts.values())
        mean = sum(counts[e] / total * v for e, v in zip(counts, vectors))
        return np.concatenate([mean, np.max(vectors, axis=0), np.min(vectors, axis=0)])
    return inputs


SIGNALS = {"substitution analogues": substitution_votes, "MP Wyckoff statistics": mp_votes}
INPUTS = {"MEGNet element embedding (mean/max/min)": ("megnet_elemental_embedding.json", 16, False),
          "matscholar element embedding (8-d per slot)": ("matscholar_els.json", 8, True)}


def _ranked(probabilities: dict[int, float], cell: tuple) -> list[int]:
    return [g for g in sorted(probabilities, key=lambda g: -probabilities[g]) if _feasible(cell, g)]


def cross_validate(rows: list[dict], extra: list[dict], prop: str,
                   inputs: Callable[[Mapping[str, int]], np.ndarray] | None = None) -> dict[str, list[list[int]]]:
    """Ranked feasible groups per row (in ``rows`` order) of the forest and of each mixture."""
    ranked: dict[str, list[list[int]]] = collections.defaultdict(lambda: [[] for _ in rows])

    def x(row: dict) -> np.ndarray:
        plain = forest_features(row["counts"], "cell", [row[prop]])
        return plain if inputs is None else np.concatenate([plain, inputs(row["counts"])])

    for fold in range(FOLDS):
        training = [r for r in rows + extra if _fold(r["formula"]) != fold and r.get(prop) is not None]
        members = [i for i, r in enumerate(rows) if _fold(r["formula"]) == fold]
        forest = RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1)
        forest.fit(np.array([x(r) for r in training]), [r["group"] for r in training])
        probabilities = forest.predict_proba(np.array([x(rows[i]) for i in members]))
        voters = {} if inputs is not None else {name: make(training) for name, make in SIGNALS.items()}
        for i, p in zip(members, probabilities):
            cell = tuple(sorted(rows[i]["counts"].items()))
            learned = dict(zip(map(int, forest.classes_), p))
            ranked["forest"][i] = _ranked(learned, cell)
            for name, votes in voters.items():
                found = votes(rows[i])
                total = sum(found.values()) or 1.0
                for a in MIXTURES:
                    mixed = {g: (1 - a) * learned.get(g, 0.0) + a * found.get(g, 0.0) / total
                             for g in set(learned) | set(found)}
                    ranked[f"{name}, a = {a}"][i] = _ranked(mixed, cell)
                ranked[f"{name} alone"][i] = _ranked({g: v / total for g, v in found.items()}, cell)
    return ranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    started = time.time()
    rows, extra = _crystals()
    results: dict[str, dict[str, dict[str, float]]] = collections.defaultdict(dict)
    for mode, prop in PROPERTIES.items():
        variants = dict(cross_validate(rows, extra, prop))
        for label, (name, dimensions, per_slot) in INPUTS.items():
            variants[f"forest + {label}"] = cross_validate(rows, extra, prop, embedding_inputs(name, dimensions, per_slot))["forest"]
        for label, ranked in variants.items():
            truth = [r["group"] for r in rows]
            results[label][mode] = {f"top{k}": round(100 * float(np.mean([t in found[:k] for t, found in zip(truth, ranked)])), 2)
                                    for k in (1, 3)}
        print(mode, {label: r[mode]["top1"] for label, r in results.items()}, flush=True)
    share = results["forest"]["formula+band_gap"]["top1"] / 100
    error = 100 * (share * (1 - share) / len(rows)) ** 0.5  # binomial standard error of one top-1 share
    report = {"benchmark": "g_forest_signals", "date": now(), "hardware": hardware(), "seed": 0, "folds": FOLDS,
              "rows": len(rows), "extra_training_crystals": len(extra), "standard_error_points": round(error, 2),
              "seconds": round(time.time() - started),
              "versions": package_versions(), "results": results}
    lines = ["# Extra signals for the forest G's space group (exact cells)", "",
             f"{report['date']}, {report['hardware']}, seed 0. {FOLDS}-fold cross-validation grouped by reduced formula "
             f"over the {len(rows)} training-side rows of constraints.csv (+ {len(extra)} MP-20 sample crystals in each "
             "training fold that does not hold out their formula); top-1 / top-3 space-group accuracy (%) among groups the cell fits. "
             f"How each signal is built: the docstring of benchmarks/g_forest_signals.py. One standard error of a "
             f"single top-1 share: {error:.1f} points (differences between variants, measured on the same rows, "
             "are more precise).", "",
             "| variant | " + " | ".join(PROPERTIES) + " |", "|---|" + "---|" * len(PROPERTIES)]
    for label, by_mode in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{by_mode[m]['top1']:.1f} / {by_mode[m]['top3']:.1f}" for m in PROPERTIES) + " |")
    write_results("g_forest_signals", report, lines)


if __name__ == "__main__":
    run(main)
