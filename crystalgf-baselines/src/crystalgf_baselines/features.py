"""Fixed-length composition descriptors shared by the forest G and the LLM G's retrieval.

A composition is described by up to six element slots, sorted by amount (then electronegativity):
atomic fraction, group/18, period/7 and Pauling electronegativity/4 of each element.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from pymatgen.core import Element

SLOTS = 6


@lru_cache(maxsize=None)
def element_features(symbol: str) -> tuple[float, float, float]:
    """Group/18, period/7 and Pauling electronegativity/4 (2.0/4 where pymatgen has none)."""
    element = Element(symbol)
    return element.group / 18.0, element.row / 7.0, (element.X if element.X == element.X else 2.0) / 4.0


def composition_features(counts: Mapping[str, int | float]) -> np.ndarray:
    """The ``4 * SLOTS`` slot vector of a composition (an element set: pass equal counts)."""
    total = sum(counts.values())
    slots = sorted(counts.items(), key=lambda item: (-item[1], element_features(item[0])[2]))[:SLOTS]
    vector = np.zeros(4 * SLOTS)
    for i, (element, count) in enumerate(slots):
        vector[4 * i: 4 * i + 4] = (count / total, *element_features(element))
    return vector
