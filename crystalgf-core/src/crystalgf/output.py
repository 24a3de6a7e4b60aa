"""Writing generated structures and their records: ``structures/*.cif`` or ``structures.extxyz``, plus ``results.jsonl``.

Every structure is written completely before its record is appended, so an interrupted run
keeps all it finished, and ``--resume`` continues it (``RunOutput`` with ``keep``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import io

from ase.io import read as ase_read
from ase.io import write as ase_write
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from pymatgen.core import Structure

from crystalgf.errors import CrystalGFError, InvalidInputError
from crystalgf.schema import Constraint, GeneratedCrystal

FORMATS = ("cif", "extxyz")


class UnreadableStructureError(CrystalGFError):
    """A structure whose file would not read back, in pymatgen and ASE, as the same composition."""
RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
EXTXYZ_FILE = "structures.extxyz"


OWN_FILES = ("structures", RESULTS_FILE, MANIFEST_FILE, EXTXYZ_FILE)
"""What a run writes into its directory (and all that ``--overwrite`` removes)."""


UNFINISHED = ("running", "interrupted", "failed")
"""Manifest statuses of a run that did not finish (``running``: still running, or killed outright)."""


def check_output_directory(directory: Path, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse a non-empty output directory unless ``overwrite`` (or ``resume``) and it holds an earlier
    run (checked before any work starts)."""
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"output {directory} exists and is not a directory")
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    if not overwrite and not resume:
        status = read_manifest(directory).get("status") if (directory / MANIFEST_FILE).is_file() else None
        hint = f" (it holds an unfinished run, status {status!r}: --resume continues it)" if status in UNFINISHED else ""
        raise InvalidInputError(f"output directory {directory} is not empty; choose another or pass --overwrite{hint}")
    if not (directory / MANIFEST_FILE).is_file():
        what = "--resume continues" if resume else "--overwrite replaces"
        raise InvalidInputError(f"{what} only an earlier run's output; {directory} has no {MANIFEST_FILE}")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an earlier run in ``directory``; a damaged one is an input error."""
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise InvalidInputError(f"{path}: not a run manifest (damaged JSON); --overwrite starts the run over")
    return manifest


def read_results(directory: Path) -> tuple[list[str], list[GeneratedCrystal]]:
    """The complete lines of an earlier run's ``results.jsonl`` and their records; a last line cut off
    by a kill (no newline) is left out, any other damage is an input error."""
    path = directory / RESULTS_FILE
    if not path.is_file():
        return [], []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(GeneratedCrystal.from_json(line))
        except CrystalGFError as error:
            raise InvalidInputError(f"{path} line {number} is damaged ({error}); --overwrite starts the run over") from None
    return lines, records


def check_readable(text: str, structure_format: str, structure: Structure) -> None:
    """Raise :class:`UnreadableStructureError` unless ``text`` (a CIF, or one extended XYZ frame) reads in
    pymatgen and in ASE as ``structure``'s composition, site for site."""
    expected = structure.composition
    readers = {"pymatgen": lambda: (Structure.from_str(text, fmt="cif") if structure_format == "cif" else
                                    AseAtomsAdaptor.get_structure(ase_read(io.StringIO(text), format="extxyz"))),
               "ASE": lambda: AseAtomsAdaptor.get_structure(ase_read(io.StringIO(text), format=structure_format))}
    for reader, read in readers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = read()
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            raise UnreadableStructureError(f"{reader} cannot read the {structure_format} of "
                                           f"{expected.formula.replace(' ', '')} back: {error}") from None
        if len(found) != len(structure) or found.composition != expected:
            raise UnreadableStructureError(f"{reader} reads the {structure_format} of {expected.formula.replace(' ', '')} "
                                           f"back as {found.composition.formula.replace(' ', '')}")


def remove_own_files(directory: Path, names: tuple[str, ...]) -> None:
    """Remove a run's files (``names``, files or folders) from ``directory``, and nothing else of a user's there."""
    for name in names:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def safe_name(text: str) -> str:
    """A file-name-safe version of an id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "item"


class RunOutput:
    """The output directory of a generation run."""

    def __init__(self, directory: Path, structure_format: str = "cif", overwrite: bool = False,
                 keep: tuple[Sequence[str], Sequence[GeneratedCrystal]] | None = None):
        """A new output (an earlier run's files removed where ``overwrite``), or with ``keep`` (the first
        lines of an earlier run's ``results.jsonl`` and their records) that run continued: its other
        records and structures are removed, the kept ones stay byte for byte."""
        if structure_format not in FORMATS:
            raise InvalidInputError(f"unknown format {structure_format!r}; known: {', '.join(FORMATS)}")
        check_output_directory(directory, overwrite, resume=keep is not None)
        self.directory = directory
        self.structure_format = structure_format
        self._count = 0
        self._names: set[str] = set()
        self.results_path = directory / RESULTS_FILE
        self.manifest_path = directory / MANIFEST_FILE
        if keep is not None and (directory / MANIFEST_FILE).is_file():
            self._continue(*keep)
            return
        remove_own_files(directory, OWN_FILES)  # an earlier run's
        directory.mkdir(parents=True, exist_ok=True)
        if structure_format == "cif":
            (directory / "structures").mkdir()
        self.results_path.touch()

    def _continue(self, lines: Sequence[str], records: Sequence[GeneratedCrystal]) -> None:
        kept = {record.structure_file for record in records}
        if self.structure_format == "cif":
            missing = [name for name in sorted(kept) if not (self.directory / name).is_file()]
            if missing:
                raise InvalidInputError(f"{self.directory / missing[0]} is missing; --overwrite starts the run over")
            folder = self.directory / "structures"
            folder.mkdir(exist_ok=True)
            for path in folder.iterdir():  # structures of records not kept, and files a kill cut off
                if f"structures/{path.name}" not in kept and path.is_file():
                    path.unlink()
            self._names = {Path(name).stem for name in kept}
        else:
            self._count = len(records)
            _truncate_extxyz(self.directory / EXTXYZ_FILE, self._count)
        temporary = self.results_path.with_name(RESULTS_FILE + ".tmp")
        temporary.write_text("".join(lines), encoding="utf-8")
        os.replace(temporary, self.results_path)

    def write_structure(self, record_id: str, structure: Structure, constraint: Constraint) -> tuple[str, int]:
        """Write one structure; returns its file (relative to the directory) and index within that file.

        The text is read back with pymatgen and ASE before it is written: a structure that either cannot
        read, or reads with another composition (atoms merged), raises :class:`UnreadableStructureError`
        and nothing is written."""
        if self.structure_format == "cif":
            text = str(CifWriter(structure))
            check_readable(text, "cif", structure)
            relative = f"structures/{self._unique_name(record_id)}.cif"
            target = self.directory / relative
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_text(text, encoding="utf-8")
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
        frame = io.StringIO()
        ase_write(frame, atoms, format="extxyz")
        check_readable(frame.getvalue(), "extxyz", structure)
        with (self.directory / EXTXYZ_FILE).open("a", encoding="utf-8") as handle:
            handle.write(frame.getvalue())
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


def _truncate_extxyz(path: Path, frames: int) -> None:
    """Keep the first ``frames`` frames of an extended XYZ file (each: an atom count, a comment line, one
    line per atom), byte for byte."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    end = 0
    for _ in range(frames):
        try:
            atoms = int(lines[end])
        except (IndexError, ValueError):
            raise InvalidInputError(f"{path} holds fewer structures than results.jsonl; "
                                    "--overwrite starts the run over") from None
        end += atoms + 2
    if end > len(lines):
        raise InvalidInputError(f"{path} holds fewer structures than results.jsonl; --overwrite starts the run over")
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(lines[:end]), encoding="utf-8")
    os.replace(temporary, path)
