"""Training data for the diffusion H: structure CSVs encoded once (PyXtal symmetrisation) and cached."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from crystalgf.datasets import StructureTable
from crystalgf.manifest import sha256_file, write_json
from crystalgf_diffusion.data import CrystalSample, encode_structure

PROPERTY_CHOICES = {"band_gap": ("band_gap",), "formation_energy": ("formation_energy_per_atom",),
                    "all": ("band_gap", "formation_energy_per_atom"), "none": ()}


def load_samples(path: Path, cache_dir: Path, conditioning: str = "none", limit: int | None = None,
                 progress: Callable[[Sequence, str], Sequence] = lambda items, _: items) -> tuple[list[CrystalSample], int]:
    """Encoded crystals of a CDVAE-style CSV and how many rows could not be used.

    The encoding is cached in ``cache_dir`` under the CSV's sha256, so it is computed once.
    Only the properties named by ``conditioning`` are kept on each sample.
    """
    cache = cache_dir / f"{path.stem}-{sha256_file(path)[:16]}{'-' + str(limit) if limit else ''}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text())
        samples, failed = [CrystalSample.from_dict(d) for d in stored["samples"]], stored["failed"]
    else:
        read = StructureTable().read(path, limit=limit)
        samples, failed = [], len(read.skipped)
        for entry in progress(read.entries, f"encoding {path.name}"):
            try:
                samples.append(encode_structure(entry.structure, entry.properties))
            except Exception:  # noqa: BLE001 - a structure PyXtal cannot symmetrise is counted, not fatal
                failed += 1
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(cache, {"source": str(path), "failed": failed, "samples": [s.to_dict() for s in samples]})
    keep = PROPERTY_CHOICES[conditioning]
    for sample in samples:
        sample.properties = {k: v for k, v in sample.properties.items() if k in keep}
    return samples, failed
