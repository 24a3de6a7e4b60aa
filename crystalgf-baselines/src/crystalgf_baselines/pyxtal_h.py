"""H ``pyxtal``: a random symmetric structure for each constraint, built by PyXtal."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Structure
from pyxtal import pyxtal

from crystalgf.errors import check_number
from crystalgf.interfaces import StructureGenerator
from crystalgf.schema import Constraint
from crystalgf.validity import PLAUSIBLE_RATIO, plausibility

MAX_EXPANSION = 1.15
"""The largest uniform expansion (in length) that lifts a draw's closest pair to the plausibility criterion."""


class PyxtalGenerator(StructureGenerator):
    """Random structures with exactly the constrained space group and Wyckoff sites (PyXtal ``from_random``).

    The cell volume is PyXtal's estimate from atomic radii times ``volume_factor``; atoms are kept
    apart by PyXtal's distance checks; a draw that fails CrystalGF's plausibility criterion (a pair closer
    than 0.7 x its covalent radii sum, :mod:`crystalgf.validity`) is expanded uniformly to meet it where 15 %
    in length suffices, else drawn again, up to ``attempts`` draws in all. Each structure is drawn with its
    own seed.
    """

    name = "pyxtal"
    description = "random symmetric structure for the constraint (PyXtal), sensible volume"

    def __init__(self, volume_factor: float = 1.1, attempts: int = 10):
        check_number("H pyxtal", "volume_factor", volume_factor, 0, strict=True)
        check_number("H pyxtal", "attempts", attempts, 1, integer=True)
        self.volume_factor = float(volume_factor)
        self.attempts = attempts

    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        return [self._one(constraint, seed) for constraint, seed in zip(constraints, seeds)]

    def _one(self, constraint: Constraint, seed: int) -> Structure | None:
        counts = constraint.counts
        species = list(counts)
        sites = [[site.label for site in constraint.wyckoff_sites if site.element == element] for element in species]
        rng = np.random.default_rng(seed)
        for _ in range(self.attempts):
            crystal = pyxtal()
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    crystal.from_random(3, constraint.space_group, species, [counts[e] for e in species],
                                        factor=self.volume_factor, sites=sites, random_state=rng)
            except Exception:  # noqa: BLE001 - PyXtal signals a failed draw by raising; try another
                continue
            if crystal.valid:
                structure = crystal.to_pymatgen()
                check = plausibility(structure)
                if check.plausible:
                    return structure
                scale = PLAUSIBLE_RATIO * 1.01 / check.ratio if check.ratio > 0 else float("inf")
                if scale <= MAX_EXPANSION:
                    structure.scale_lattice(structure.volume * scale**3)
                    if plausibility(structure).plausible:
                        return structure
        return None
