"""G ``random``: uniformly random space groups with a random valid Wyckoff assignment (a floor for G)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from crystalgf.errors import NoWyckoffAssignmentError
from crystalgf.formula import format_formula, reduce_counts
from crystalgf.interfaces import ConstraintGenerator
from crystalgf.pipeline import derive_seed
from crystalgf.schema import Constraint, GenerationRequest
from crystalgf.symmetry import realizes_space_group, sample_wyckoff_assignment


class RandomGenerator(ConstraintGenerator):
    """Draws a space group uniformly among those where the composition fits, then a random assignment.

    In element mode the ratio is random too: each element gets 1 to ``max_ratio`` atoms.
    """

    name = "random"
    description = "uniformly random valid space group and Wyckoff assignment"

    def __init__(self, max_ratio: int = 4, draws: int = 50):
        self.max_ratio = max_ratio
        self.draws = draws

    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        # Seeded by the request id, so a request gets the same answer in any batch.
        return [self._draw(request, top_k, np.random.default_rng(derive_seed(seed, zlib.crc32(request.request_id.encode()))))
                for request in requests]

    def _draw(self, request: GenerationRequest, top_k: int, rng: np.random.Generator) -> list[Constraint]:
        found: dict[tuple, Constraint] = {}
        for _ in range(self.draws * top_k):
            ratio = self._ratio(request, rng)
            if sum(ratio.values()) > request.max_atoms:
                continue
            cells = request.cell_options(ratio)
            groups = [request.space_group] if request.space_group else list(rng.permutation(230) + 1)
            for group in groups:
                counts = cells[int(rng.integers(len(cells)))]
                sites = sample_wyckoff_assignment(counts, int(group), rng)
                if sites is None or not realizes_space_group(counts, int(group), sites):
                    continue
                constraint = Constraint(formula=format_formula(counts), space_group=int(group), wyckoff=sites,
                                        properties=request.properties, generator=self.name)
                found.setdefault((constraint.cell_formula, constraint.space_group, tuple(sorted(sites))), constraint)
                break
            if len(found) >= top_k:
                break
        if not found:
            raise NoWyckoffAssignmentError(f"{request.composition_text} has no Wyckoff assignment found by G random "
                                           f"with at most {request.max_atoms} atoms per cell")
        return list(found.values())[:top_k]

    def _ratio(self, request: GenerationRequest, rng: np.random.Generator) -> dict[str, int]:
        if request.formula is not None:
            return request.counts if request.exact_cell else reduce_counts(request.counts)[0]
        amounts = rng.integers(1, self.max_ratio + 1, size=len(request.elements or ()))
        return reduce_counts(dict(zip(request.elements or (), (int(a) for a in amounts))))[0]
