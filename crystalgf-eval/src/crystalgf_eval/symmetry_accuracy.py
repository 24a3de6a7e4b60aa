"""Symmetry accuracy of a constraint generator against the true constraints (the method's Table 1)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from crystalgf.datasets import read_text
from crystalgf.errors import InvalidInputError
from crystalgf.schema import INPUT_MODES, Constraint, GenerationRequest, PropertyTarget
from crystalgf.symmetry import equivalent_letter_maps, same_wyckoff_sites

OTHER = "other"


def request_for(true: Constraint, mode: str, value: float, space_group: int | None = None,
                request_id: str = "request") -> GenerationRequest:
    """The request that asks G for a known crystal in one input mode (formula mode: the exact cell),
    optionally with its space group given (for Wyckoff accuracy)."""
    kind, prop = INPUT_MODES[mode]
    composition = {"formula": true.cell_formula, "exact_cell": True} if kind == "formula" else \
        {"elements": sorted(true.counts)}
    return GenerationRequest.from_dict({**composition, "properties": {prop: PropertyTarget(name=prop, value=value)},
                                        "space_group": space_group, "request_id": request_id,
                                        "max_atoms": max(20, sum(true.counts.values()))})


def same_constraint(proposed: Constraint, true: Constraint) -> bool:
    """Whether the whole constraint is exactly right: the same cell, space group and Wyckoff site of every
    orbit, up to the group's equivalent relabellings of the letters."""
    return (proposed.space_group == true.space_group and proposed.counts == true.counts
            and same_wyckoff_sites(true.space_group, proposed.wyckoff_sites, true.wyckoff_sites))


def wyckoff_accuracy(proposed: Constraint, true: Constraint) -> float:
    """Per element, the order-free multiset match of site labels, over the sum of max(#proposed, #true);
    0 in another space group, and the best over the group's equivalent relabellings of the letters."""
    if proposed.space_group != true.space_group:
        return 0.0
    best = 0.0
    for mapping in equivalent_letter_maps(true.space_group):
        matched = total = 0
        for element in set(true.counts) | set(proposed.counts):
            mine = Counter(f"{s.multiplicity}{mapping[s.letter]}" for s in proposed.wyckoff_sites if s.element == element)
            theirs = Counter(s.label for s in true.wyckoff_sites if s.element == element)
            matched += sum((mine & theirs).values())
            total += max(sum(mine.values()), sum(theirs.values()))
        best = max(best, matched / total if total else 0.0)
    return best


@dataclass
class SymmetryAccuracy:
    """Space-group and Wyckoff accuracy over paired (proposed, true) constraints, with the pairs kept."""

    pairs: list[tuple[Constraint, Constraint]]

    @property
    def space_group_accuracy(self) -> float:
        return sum(p.space_group == t.space_group for p, t in self.pairs) / len(self.pairs)

    @property
    def wyckoff_accuracy(self) -> float:
        return sum(wyckoff_accuracy(p, t) for p, t in self.pairs) / len(self.pairs)

    def confusion(self, min_count: int = 10) -> tuple[list[str], list[list[int]]]:
        """Confusion matrix (rows true, columns proposed) over space groups with at least ``min_count``
        true items; the rest folded into ``"other"`` as in the method's figure."""
        frequent = {g for g, n in Counter(t.space_group for _, t in self.pairs).items() if n >= min_count}
        labels = [str(g) for g in sorted(frequent)] + [OTHER]
        index = {label: i for i, label in enumerate(labels)}

        def label(group: int) -> str:
            return str(group) if group in frequent else OTHER

        matrix = [[0] * len(labels) for _ in labels]
        for proposed, true in self.pairs:
            matrix[index[label(true.space_group)]][index[label(proposed.space_group)]] += 1
        return labels, matrix


def top_proposals(path: Path) -> dict[str, Constraint]:
    """The best-ranked constraint per id of a ``crystalgf constrain`` output."""
    best: dict[str, tuple[int, Constraint]] = {}
    for line, text in enumerate(read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
            item_id, rank = str(data.pop("id")), int(data.pop("rank", 1))
        except (json.JSONDecodeError, KeyError, ValueError, AttributeError, TypeError):
            raise InvalidInputError(f"{path} line {line}: not a constrain output line (needs JSON with id)") from None
        constraint = Constraint.from_dict(data)
        if item_id not in best or rank < best[item_id][0]:
            best[item_id] = (rank, constraint)
    return {item_id: constraint for item_id, (_, constraint) in best.items()}


def pair_by_id(proposed: dict[str, Constraint], truth: dict[str, Constraint]) -> SymmetryAccuracy:
    """Pair proposals with the true constraints of the same id."""
    pairs = [(proposed[i], truth[i]) for i in proposed if i in truth]
    if not pairs:
        raise InvalidInputError("no proposal shares an id with the true constraints")
    return SymmetryAccuracy(pairs)
