"""Materials Project elemental reference energies for convex hulls: locate, verify, download.

The file is matbench-discovery's ``2023-02-07-mp-elemental-reference-entries.json.gz`` (MIT):
the lowest-energy MP entry of each element (MP2020-compatible energies, no structures).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from pathlib import Path

from pymatgen.entries.computed_entries import ComputedEntry

from crystalgf.errors import InvalidInputError, MissingWeightsError

FILE_NAME = "2023-02-07-mp-elemental-reference-entries.json.gz"
URL = f"https://raw.githubusercontent.com/janosh/matbench-discovery/main/data/mp/{FILE_NAME}"
SHA256 = "9fd6ef848a91c88840a0d1709b5856d0edb4af22095237e59db52f2acd6bbf79"
ENVIRONMENT_VARIABLE = "CRYSTALGF_ELEMENTAL_REFERENCES"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crystalgf" / FILE_NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(path: str | Path | None = None) -> Path:
    """The reference file: ``path``, else ``$CRYSTALGF_ELEMENTAL_REFERENCES``, else the user cache."""
    candidates = [Path(p) for p in (path, os.environ.get(ENVIRONMENT_VARIABLE)) if p] or [CACHE]
    if not candidates[0].is_file():
        raise MissingWeightsError(
            "elemental references", candidates,
            f"download them with python -m crystalgf_eval.references (to {CACHE}) or point "
            f"{ENVIRONMENT_VARIABLE} at {FILE_NAME}",
        )
    return candidates[0]


def load_elemental_references(path: Path) -> dict[str, ComputedEntry]:
    """Element -> reference entry, after checking the file's sha256."""
    if _sha256(path) != SHA256:
        raise InvalidInputError(f"{path}: sha256 differs from the published {FILE_NAME}")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return {element: ComputedEntry.from_dict(entry) for element, entry in data.items()}


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
