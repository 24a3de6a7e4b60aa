"""Materials Project elemental reference energies for convex hulls: locate, verify, download.

The file is matbench-discovery's ``2023-02-07-mp-elemental-reference-entries.json.gz`` (MIT):
the lowest-energy MP entry of each element (MP2020-compatible energies, no structures). A copy
ships inside this package (``crystalgf_eval/data``, with its license), so a fresh install needs no
download; a path the user names, ``$CRYSTALGF_ELEMENTAL_REFERENCES`` or a downloaded copy in the user
cache take precedence.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from pathlib import Path

from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from crystalgf import weights
from crystalgf.errors import InvalidInputError

FILE_NAME = "2023-02-07-mp-elemental-reference-entries.json.gz"
URL = f"https://raw.githubusercontent.com/janosh/matbench-discovery/main/data/mp/{FILE_NAME}"
SHA256 = "9fd6ef848a91c88840a0d1709b5856d0edb4af22095237e59db52f2acd6bbf79"
ENVIRONMENT_VARIABLE = "CRYSTALGF_ELEMENTAL_REFERENCES"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crystalgf" / FILE_NAME
PACKAGED = Path(__file__).parent / "data" / FILE_NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(path: str | Path | None = None) -> Path:
    """The reference file: ``path``, else ``$CRYSTALGF_ELEMENTAL_REFERENCES`` (either must exist), else
    the downloaded copy in the user cache, else the copy packaged with crystalgf-eval."""
    return weights.locate(
        "elemental references", weights.places_to_look(path, ENVIRONMENT_VARIABLE, [CACHE, PACKAGED]),
        f"download them with python -m crystalgf_eval.references (to {CACHE}) or point "
        f"{ENVIRONMENT_VARIABLE} at {FILE_NAME}",
    )


def load_elemental_references(path: Path) -> dict[str, ComputedEntry]:
    """Element -> reference entry, after checking the file's sha256."""
    if _sha256(path) != SHA256:
        raise InvalidInputError(f"{path}: sha256 differs from the published {FILE_NAME}")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return {element: ComputedEntry.from_dict(entry) for element, entry in data.items()}


def elemental_energies(path: str | Path | None = None) -> dict[str, float]:
    """Element -> MP2020-compatible energy per atom (eV/atom) of its reference entry (file as :func:`locate`)."""
    return {element: entry.energy_per_atom for element, entry in load_elemental_references(locate(path)).items()}


def formation_energy_per_atom(composition: Composition, energy_per_atom: float,
                              energies: dict[str, float]) -> float | None:
    """Formation energy per atom (eV/atom) of a compound with this total energy per atom against the
    elemental ``energies``; ``None`` when an element has no reference."""
    fractions = composition.fractional_composition
    if any(element.symbol not in energies for element in fractions):
        return None
    return energy_per_atom - sum(energies[element.symbol] * x for element, x in fractions.items())


def fetch(destination: Path = CACHE) -> Path:
    """Download the file (once) and verify its checksum; a mismatching download is deleted."""
    if destination.is_file() and _sha256(destination) == SHA256:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    urllib.request.urlretrieve(URL, temporary)  # noqa: S310 - fixed https URL
    if _sha256(temporary) != SHA256:
        temporary.unlink()
        raise InvalidInputError(f"downloaded {URL} does not have the expected sha256")
    temporary.replace(destination)
    return destination


if __name__ == "__main__":
    print(fetch())
