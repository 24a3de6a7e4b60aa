"""Instruction data for G: labelled crystals -> Alpaca records of the two tasks in four input modes."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pymatgen.core import Composition

from crystalgf.datasets import holdout_split
from crystalgf.errors import InvalidInputError
from crystalgf.plugins import PluginRegistry
from crystalgf.schema import INPUT_MODES, Constraint
from crystalgf.symmetry.analysis import entry_constraint

from crystalgf_llm.prompts import Prompt, PromptBuilder, sites_text
from crystalgf_llm.retrieval import NeighbourIndex

TASKS = ("space_group", "wyckoff")
SPLITS = ("train", "validation", "test", "all")


@dataclass(frozen=True)
class LabelledCrystal:
    """A known crystal's constraint and its DFT properties."""

    id: str
    constraint: Constraint
    properties: dict[str, float]

    @property
    def reduced_formula(self) -> str:
        return Composition(self.constraint.counts).reduced_formula


def split_of(reduced_formula: str) -> str:
    """``train``, ``validation`` (1/8 of the training side) or ``test``, grouped by reduced formula."""
    if holdout_split(reduced_formula) == "test":
        return "test"
    return "validation" if holdout_split(f"validation/{reduced_formula}", 0.125) == "test" else "train"


def read_labelled(path: Path, dataset: str = "crystalgf-constraints", split: str = "all",
                  symprec: float = 0.1) -> list[LabelledCrystal]:
    """Labelled crystals of one split from a constraint table or a structure dataset (symmetry by spglib;
    structures in which it finds none are left out)."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    read = PluginRegistry.installed().create("dataset", dataset).read(path)
    crystals = []
    for entry in read.entries:
        constraint = entry_constraint(entry, symprec)
        if constraint is None:
            continue
        crystal = LabelledCrystal(entry.id, constraint, entry.properties)
        if split == "all" or split_of(crystal.reduced_formula) == split:
            crystals.append(crystal)
    return crystals


def prompts_for(crystal: LabelledCrystal, mode: str, task: str, builder: PromptBuilder,
                index: NeighbourIndex | None = None, neighbours: int = 0) -> Prompt:
    """The prompt of one task in one input mode, with its answer."""
    composition_mode, prop = INPUT_MODES[mode]
    constraint = crystal.constraint
    counts = constraint.counts
    composition = counts if composition_mode == "formula" else sorted(counts)
    properties = {prop: crystal.properties[prop]}
    if task == "space_group":
        found = index.nearest(composition, neighbours, exclude=crystal.reduced_formula) if index else []
        return builder.space_group(composition, properties, [(c.reduced_formula, c.space_group) for c in found],
                                   answer=constraint.space_group)
    return builder.wyckoff(composition, properties, constraint.space_group,
                           answer=sites_text(constraint.wyckoff_sites, list(counts)))


def build_records(crystals: Sequence[LabelledCrystal], builder: PromptBuilder, modes: Iterable[str] = tuple(INPUT_MODES),
                  tasks: Iterable[str] = TASKS, index: NeighbourIndex | None = None, neighbours: int = 0,
                  modes_per_crystal: int | None = None, seed: int = 0) -> Iterator[Prompt]:
    """Prompts of every task for each crystal, in all ``modes`` or in ``modes_per_crystal`` of them
    drawn at random (seeded). Crystals without the mode's property are skipped."""
    rng = random.Random(seed)
    modes, tasks = list(modes), list(tasks)
    for crystal in crystals:
        usable = [m for m in modes if INPUT_MODES[m][1] in crystal.properties]
        chosen = rng.sample(usable, min(modes_per_crystal, len(usable))) if modes_per_crystal else usable
        for mode in chosen:
            for task in tasks:
                yield prompts_for(crystal, mode, task, builder, index, neighbours)
