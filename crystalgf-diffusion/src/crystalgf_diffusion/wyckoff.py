"""Wyckoff orbits as linear maps of their free parameters (from pyxtal's symmetry operations).

Every atom j of an orbit sits at x_j = A_j f + t_j (mod 1), where f holds the orbit's free
parameters (at most 3, padded with zeros) and A_j, t_j come from the j-th operation of the
Wyckoff position. Diffusing f and expanding keeps the space group and composition exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from crystalgf.symmetry.wyckoff import pyxtal_group, split_label


@dataclass(frozen=True)
class OrbitTemplate:
    """The orbit of one Wyckoff position: ``linear`` (m, 3, 3), ``offset`` (m, 3), ``free`` (3,) mask."""

    label: str
    linear: np.ndarray
    offset: np.ndarray
    free: np.ndarray

    @property
    def multiplicity(self) -> int:
        return len(self.offset)

    def expand(self, parameters: np.ndarray) -> np.ndarray:
        """(3,) free parameters (padded) -> (m, 3) fractional coordinates in [0, 1)."""
        return np.mod(self.linear @ (parameters * self.free) + self.offset, 1.0)


@lru_cache(maxsize=None)
def orbit_template(space_group: int, label: str) -> OrbitTemplate:
    """The template of Wyckoff position ``label`` (e.g. ``"4c"``) of a space group."""
    multiplicity, letter = split_label(label)
    position = pyxtal_group(space_group).get_wp_by_letter(letter)
    rotations = np.array([op.rotation_matrix for op in position.ops], dtype=float)
    offsets = np.array([op.translation_vector for op in position.ops], dtype=float)
    free_axes = np.abs(rotations[0]).sum(axis=0) > 0  # which of x, y, z the representative depends on
    # Column k of A_j multiplies the k-th free parameter; unused axes give zero columns.
    linear = rotations * free_axes[None, None, :]
    return OrbitTemplate(label=label, linear=linear, offset=np.mod(offsets, 1.0), free=free_axes.astype(float))


def free_parameters(space_group: int, label: str, representative: np.ndarray) -> np.ndarray:
    """Free parameters (padded to 3) of an orbit whose representative position is given."""
    template = orbit_template(space_group, label)
    return np.mod(representative, 1.0) * template.free
