"""The statistics behind G ``prior``, fitted on the training side of the method's constraint data."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.core import Composition

from crystalgf.datasets import ConstraintTable, StructureTable, holdout_split
from crystalgf.formula import format_formula, parse_formula, reduce_counts, stoichiometry_pattern
from crystalgf.manifest import sha256_file
from crystalgf.schema import Constraint, parse_wyckoff_text
from crystalgf.symmetry import WyckoffSite
from crystalgf.symmetry.analysis import entry_constraint

from crystalgf_baselines.wyckoff_model import WyckoffModel, fit_weights, packaged_patterns_file, read_pattern_counts


@dataclass
class PriorTable:
    """Counts of space groups, formula units and Wyckoff letters, by stoichiometry pattern and group,
    and the training crystals themselves (cell formula, band gap, formation energy, space group;
    a property the row lacks is None) for G ``forest``."""

    space_groups_by_pattern: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    space_groups_by_element_count: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    space_groups: Counter = field(default_factory=Counter)
    formula_units_by_space_group: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    letters_by_space_group: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    patterns_by_element_count: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    crystals: list[tuple[str, float | None, float | None, int]] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    """Wyckoff sites of each crystal (``Sc[2c] Ni[6h]``), in the order of ``crystals``."""
    wyckoff_weights: list[float] = field(default_factory=list)
    """Fitted weights of the joint Wyckoff model (:mod:`crystalgf_baselines.wyckoff_model`)."""
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, constraints: Iterable[Constraint], source: dict[str, Any] | None = None) -> PriorTable:
        """Count over the given constraints."""
        table = cls(source=dict(source or {}))
        for constraint in constraints:
            counts = constraint.counts
            formula_units = reduce_counts(counts)[1]
            pattern = stoichiometry_pattern(counts)
            group = constraint.space_group
            table.space_groups_by_pattern[pattern][group] += 1
            table.space_groups_by_element_count[len(counts)][group] += 1
            table.space_groups[group] += 1
            table.formula_units_by_space_group[group][formula_units] += 1
            table.letters_by_space_group[group].update(site.letter for site in constraint.wyckoff_sites)
            table.patterns_by_element_count[len(counts)][pattern] += 1
            values = {name: target.center for name, target in constraint.properties.items()}
            table.crystals.append((format_formula(counts), values.get("band_gap"),
                                   values.get("formation_energy_per_atom"), group))
            table.sites.append(constraint.wyckoff_text)
        return table

    def known_crystals(self) -> list[tuple[dict[str, int], int, tuple[WyckoffSite, ...]]]:
        """(cell counts, space group, Wyckoff sites) of every crystal."""
        return [(parse_formula(formula), group, parse_wyckoff_text(text))
                for (formula, *_, group), text in zip(self.crystals, self.sites)]

    def to_json(self) -> dict[str, Any]:
        def plain(mapping: dict) -> dict:
            return {str(k): plain(v) if isinstance(v, dict) else v for k, v in sorted(mapping.items(), key=lambda kv: str(kv[0]))}

        return {name: plain(value) if isinstance(value := getattr(self, name), dict) and name != "source"
                else [list(c) for c in value] if name == "crystals" else value for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriorTable:
        table = cls(source=data.get("source", {}))
        for name in cls.__dataclass_fields__:
            if name == "source":
                continue
            if name == "crystals":
                table.crystals = [tuple(c) for c in data.get(name, [])]
                continue
            if name in ("sites", "wyckoff_weights"):
                setattr(table, name, list(data.get(name, [])))
                continue
            value = data[name]
            if name == "space_groups":
                table.space_groups = Counter({int(k): v for k, v in value.items()})
                continue
            target = getattr(table, name)
            int_key = name in {"space_groups_by_element_count", "formula_units_by_space_group",
                               "letters_by_space_group", "patterns_by_element_count"}
            int_inner = name in {"space_groups_by_pattern", "space_groups_by_element_count",
                                 "formula_units_by_space_group"}
            for key, inner in value.items():
                target[int(key) if int_key else key] = Counter({int(k) if int_inner else k: v for k, v in inner.items()})
        return table

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> PriorTable:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def letter_preference(self, space_group: int) -> dict[str, float]:
        """Observed letter counts of a group (for ordering the Wyckoff search)."""
        return dict(self.letters_by_space_group.get(space_group, {}))


def fit_prior(data: Path, structures: Sequence[Path] = ()) -> PriorTable:
    """Count over the training rows of ``constraints.csv`` and of any structure CSVs (CDVAE layout,
    e.g. the MP-20 sample; space group and Wyckoff sites by spglib at 0.1 Å). A row whose reduced
    formula is on the held-out side of ``holdout_split`` is never counted."""
    read = ConstraintTable().read(data)
    train = [e.constraint for e in read.entries if e.constraint is not None and _is_train(e.constraint)]
    source = {"file": data.name, "sha256": sha256_file(data), "rows": len(read.entries) + len(read.skipped),
              "skipped_rows": len(read.skipped), "train_rows": len(train), "split": "holdout_split(reduced_formula) == 'train'"}
    if structures:
        source["structures"] = []
    for path in structures:
        found = StructureTable().read(path)
        kept = [c for c in map(entry_constraint, found.entries) if c and _is_train(c)]
        train += kept
        source["structures"].append({"file": path.name, "sha256": sha256_file(path),
                                     "rows": len(found.entries) + len(found.skipped), "train_rows": len(kept)})
    table = PriorTable.fit(train, source)
    model = WyckoffModel(table.known_crystals(), read_pattern_counts(packaged_patterns_file()))
    table.wyckoff_weights = list(fit_weights(model, [Composition(c.counts).reduced_formula for c in train]))
    return table


def _is_train(constraint: Constraint) -> bool:
    return holdout_split(Composition(constraint.counts).reduced_formula) == "train"

