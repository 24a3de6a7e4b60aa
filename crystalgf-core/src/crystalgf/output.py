"""Writing generated structures and their records: ``structures/*.cif`` or ``structures.extxyz``, plus ``results.jsonl``.

Every structure is written completely before its record is appended, so an interrupted run
keeps all it finished.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError
from crystalgf.schema import Constraint, GeneratedCrystal

FORMATS = ("cif", "extxyz")
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
EXTXYZ_FILE = "structures.extxyz"


OWN_FILES = ("structures", RESULTS_FILE, MANIFEST_FILE, EXTXYZ_FILE)
"""What a run writes into its directory (and all that ``--overwrite`` removes)."""


def check_output_directory(directory: Path, overwrite: bool = False) -> None:
    """Refuse a non-empty output directory unless ``overwrite`` and it holds an earlier run
    (checked before any work starts)."""
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"output {directory} exists and is not a directory")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    if not overwrite:
        raise InvalidInputError(f"output directory {directory} is not empty; choose another or pass --overwrite")
    if not (directory / MANIFEST_FILE).is_file():
        raise InvalidInputError(f"--overwrite replaces only an earlier run's output; {directory} has no {MANIFEST_FILE}")


def safe_name(text: str) -> str:
    """A file-name-safe version of an id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "item"


class RunOutput:
    """The output directory of a generation run."""

    def __init__(self, directory: Path, structure_format: str = "cif", overwrite: bool = False):
        if structure_format not in FORMATS:
            raise InvalidInputError(f"unknown format {structure_format!r}; known: {', '.join(FORMATS)}")
        check_output_directory(directory, overwrite)
        self.directory = directory
        self.structure_format = structure_format
        self._count = 0
        self._names: set[str] = set()
        for name in OWN_FILES:  # an earlier run's files only
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        directory.mkdir(parents=True, exist_ok=True)
        if structure_format == "cif":
            (directory / "structures").mkdir()
        self.results_path = directory / RESULTS_FILE
        self.results_path.touch()
        self.manifest_path = directory / MANIFEST_FILE

    def write_structure(self, record_id: str, structure: Structure, constraint: Constraint) -> tuple[str, int]:
        """Write one structure; returns its file (relative to the directory) and index within that file."""
        if self.structure_format == "cif":
            relative = f"structures/{self._unique_name(record_id)}.cif"
            target = self.directory / relative
            temporary = target.with_name(target.name + ".tmp")
            CifWriter(structure).write_file(temporary)
            os.replace(temporary, target)
            return relative, 0
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update(
            id=record_id,
            formula=constraint.cell_formula,
            space_group=constraint.space_group,
            wyckoff=constraint.wyckoff_text,
            constraint=constraint.to_json(),
        )
        ase_write(self.directory / EXTXYZ_FILE, atoms, format="extxyz", append=True)
        index = self._count
        self._count += 1
        return EXTXYZ_FILE, index

    def _unique_name(self, record_id: str) -> str:
        """A file name for the id; ids that differ only in unsafe characters get a hash suffix."""
        name = safe_name(record_id)
        if name in self._names:
            name = f"{name}-{hashlib.sha256(record_id.encode()).hexdigest()[:8]}"
        self._names.add(name)
        return name

    def append_record(self, record: GeneratedCrystal) -> None:
        """Append one record line to ``results.jsonl`` and flush it."""
        with self.results_path.open("a", encoding="utf-8") as handle:
            handle.write(record.to_json() + "\n")
            handle.flush()
