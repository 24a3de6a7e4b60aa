"""Loading what ``crystalgf evaluate`` judges: a run directory or a structure CSV, and a reference CSV.

Unreadable items (a CIF that does not parse, a frame that is missing) are skipped and counted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ase.io import read as ase_read
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystalgf.datasets import StructureTable
from crystalgf.errors import CrystalGFError, InvalidInputError
from crystalgf.interfaces import EvaluationBatch
from crystalgf.output import EXTXYZ_FILE, RESULTS_FILE
from crystalgf.schema import GeneratedCrystal

Skipped = list[tuple[str, str]]


def load_run(directory: Path) -> tuple[EvaluationBatch, Skipped]:
    """Structures and records of a run directory (``results.jsonl`` + CIF or extxyz files)."""
    results = directory / RESULTS_FILE
    if not results.is_file():
        raise InvalidInputError(f"{directory} has no {RESULTS_FILE}: not the output of crystalgf run/generate")
    batch = EvaluationBatch(ids=[], structures=[], records=[])
    skipped: Skipped = []
    frames: list | None = None
    for line, text in enumerate(results.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = GeneratedCrystal.from_json(text)
        except CrystalGFError as error:
            skipped.append((f"{RESULTS_FILE} line {line}", str(error)))
            continue
        try:
            if record.structure_file == EXTXYZ_FILE:
                frames = frames if frames is not None else ase_read(directory / EXTXYZ_FILE, index=":")
                structure = AseAtomsAdaptor.get_structure(frames[record.structure_index])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    structure = Structure.from_file(directory / record.structure_file)
        except Exception as error:  # noqa: BLE001 - any unreadable structure file is skipped and counted
            skipped.append((record.id, f"{record.structure_file}: {type(error).__name__}: {str(error)[:120]}"))
            continue
        batch.ids.append(record.id)
        batch.structures.append(structure)
        batch.records.append(record)
    if not batch.ids:
        raise InvalidInputError(f"{directory}: no readable structures ({len(skipped)} skipped)")
    return batch, skipped


def load_structure_csv(path: Path) -> tuple[EvaluationBatch, Skipped]:
    """A CDVAE-style structure CSV as a batch without records (e.g. to evaluate a data set itself)."""
    read = StructureTable().read(path)
    if not read.entries:
        raise InvalidInputError(f"{path}: no readable structures ({len(read.skipped)} skipped)")
    return EvaluationBatch(ids=[e.id for e in read.entries], structures=[e.structure for e in read.entries],
                           records=[None] * len(read.entries)), read.skipped


def load_input(path: Path) -> tuple[EvaluationBatch, Skipped]:
    """A run directory or a structure CSV."""
    if path.is_dir():
        return load_run(path)
    if path.suffix == ".csv" and path.is_file():
        return load_structure_csv(path)
    raise InvalidInputError(f"{path}: expected a run directory (with {RESULTS_FILE}) or a structure CSV")


def add_reference(batch: EvaluationBatch, path: Path, limit: int | None = None) -> Skipped:
    """Attach a reference structure CSV (columns ``material_id``, ``cif``, optional properties)."""
    read = StructureTable().read(path, limit=limit)
    if not read.entries:
        raise InvalidInputError(f"{path}: no readable reference structures ({len(read.skipped)} skipped)")
    batch.reference_ids = [e.id for e in read.entries]
    batch.reference = [e.structure for e in read.entries]
    batch.reference_properties = [e.properties for e in read.entries]
    return read.skipped

