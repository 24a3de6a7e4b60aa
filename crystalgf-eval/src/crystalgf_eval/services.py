"""Cached prediction and relaxation for evaluators: each structure is computed once per cache folder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pymatgen.core import Structure
from rich.progress import Progress

from crystalgf.interfaces import NotApplicable, PropertyPredictor, Relaxation, Relaxer
from crystalgf.manifest import write_json

DEFAULT_PREDICTORS = {"band_gap": "megnet-bandgap", "formation_energy_per_atom": "chgnet-eform"}
"""Which predictor plugin answers for which property unless the user chooses another: both work offline
on a fresh install (MEGNet's band-gap model ships with crystalgf-eval; ``chgnet-eform`` is CHGNet against
the packaged MP elemental references, on the MP2020 scale of the labels, see docs/predictors.md)."""


def structure_key(structure: Structure) -> str:
    """A stable hash of a structure (lattice, species, fractional coordinates to 1e-6)."""
    text = json.dumps([
        [round(x, 6) for row in structure.lattice.matrix for x in row],
        [site.species_string for site in structure],
        [[round(x % 1.0, 6) for x in site.frac_coords] for site in structure],
    ])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CachedServices:
    """Implements :class:`crystalgf.interfaces.EvaluationServices` with a JSON cache on disk."""

    def __init__(self, cache_dir: Path, predictors: dict[str, Callable[[], PropertyPredictor]],
                 relaxer: Callable[[], Relaxer] | None, progress: Progress | None = None, settings_key: str = ""):
        """``predictors`` maps a property to a factory of its predictor; factories run on first use.
        ``settings_key`` (e.g. a hash of the relaxer's and predictors' options) separates caches of
        different settings."""
        self.settings_key = settings_key
        self.cache_dir = cache_dir
        self._predictor_factories = predictors
        self._predictors: dict[str, PropertyPredictor] = {}
        self._relaxer_factory = relaxer
        self._relaxer: Relaxer | None = None
        self._progress = progress
        cache_dir.mkdir(parents=True, exist_ok=True)

    def progress(self, items: Sequence[Any], description: str) -> Iterable[Any]:
        if self._progress is None:
            return items
        return self._progress.track(items, description=description)

    def cached(self, kind: str, structures: Sequence[Structure],
               compute: Callable[[Sequence[Structure]], list[Any]]) -> list[Any]:
        path = self.cache_dir / f"{kind}{'-' + self.settings_key if self.settings_key else ''}.json"
        cache: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        keys = [structure_key(s) for s in structures]
        missing = [i for i, key in enumerate(keys) if key not in cache]
        for start in self.progress(range(0, len(missing), 32), f"{kind} ({len(missing)} new)"):
            chunk = missing[start:start + 32]
            for i, value in zip(chunk, compute([structures[i] for i in chunk])):
                cache[keys[i]] = value
            write_json(path, cache)
        return [cache[key] for key in keys]

    def predict(self, property_name: str, ids: Sequence[str], structures: Sequence[Structure]) -> list[float] | None:
        if property_name not in self._predictor_factories:
            return None
        if property_name not in self._predictors:
            self._predictors[property_name] = self._predictor_factories[property_name]()
        predictor = self._predictors[property_name]
        return self.cached(f"predict-{predictor.name}", structures, predictor.predict)

    def relax(self, ids: Sequence[str], structures: Sequence[Structure]) -> list[Relaxation]:
        if self._relaxer_factory is None:
            raise NotApplicable("no relaxer installed")
        self._relaxer = self._relaxer or self._relaxer_factory()
        relaxer = self._relaxer

        def compute(chunk: Sequence[Structure]) -> list[dict[str, Any]]:
            return [{"structure": r.structure.as_dict(), "energy_per_atom": float(r.energy_per_atom), "steps": r.steps}
                    for r in relaxer.relax(chunk, fix_symmetry=False)]

        cached = self.cached(f"relax-{relaxer.name}", structures, compute)
        return [Relaxation(Structure.from_dict(c["structure"]), c["energy_per_atom"], c["steps"]) for c in cached]
