"""G ``highest-symmetry``: the highest-numbered space groups that can hold the formula."""

from __future__ import annotations

from collections.abc import Sequence

from crystalgf.errors import InvalidInputError, NoWyckoffAssignmentError
from crystalgf.formula import format_formula
from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import ConstraintGenerator
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf.symmetry import iter_wyckoff_assignments, realizes_space_group


class HighestSymmetryGenerator(ConstraintGenerator):
    """For a formula: space groups from 230 down, smallest cell first, first assignment that keeps the group."""

    name = "highest-symmetry"
    description = "example plugin: highest-numbered space groups that fit the formula"

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        return [self._propose(request, top_k) for request in requests]

    def _propose(self, request: GenerationRequest, top_k: int) -> list[Constraint]:
        if request.formula is None:
            raise InvalidInputError("G highest-symmetry needs a formula, not an element set")
        groups = [request.space_group] if request.space_group else range(230, 0, -1)
        found: list[Constraint] = []
        for group in groups:
            for counts in request.cell_options():
                sites = next((sites for sites in iter_wyckoff_assignments(counts, group, limit=20)
                              if realizes_space_group(counts, group, sites)), None)
                if sites is not None:
                    found.append(Constraint(formula=format_formula(counts), space_group=group, wyckoff=sites,
                                            properties=request.properties, generator=self.name))
                    break
            if len(found) == top_k:
                return found
        if not found:
            raise NoWyckoffAssignmentError(f"{request.formula} fits no space group with at most {request.max_atoms} atoms")
        return found


@hookimpl
def crystalgf_add_constraint_generators() -> list[type[ConstraintGenerator]]:
    return [HighestSymmetryGenerator]
