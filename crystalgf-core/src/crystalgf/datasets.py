"""Dataset readers: the method's constraint table and CDVAE-style structure CSVs.

Readers skip unreadable rows and report them (row id, reason) instead of failing.
"""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

from pymatgen.core import Structure

from crystalgf.errors import InvalidInputError
from crystalgf.interfaces import Dataset, DatasetEntry, DatasetReadResult
from crystalgf.schema import Constraint

PROPERTY_COLUMNS: dict[str, tuple[str, ...]] = {
    "band_gap": ("band_gap", "ind_gap"),
    "formation_energy_per_atom": ("formation_energy_per_atom", "heat_ref"),
}
"""Source columns of each property, first present wins (``ind_gap``/``heat_ref`` are Perov-5's)."""


def read_text(path: Path) -> str:
    """The whole text of an input file (a leading byte-order mark dropped); a missing or non-UTF-8 file
    is an input error."""
    return "".join(_lines(path))


def open_csv(path: Path, required: tuple[str, ...]) -> csv.DictReader:
    """A DictReader streaming ``path`` after checking that the columns in ``required`` exist; text that
    is not UTF-8 is an input error when it is reached."""
    reader = csv.DictReader(_lines(path))
    missing = [column for column in required if column not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInputError(f"{path}: missing column(s) {', '.join(missing)}")
    return reader


def _lines(path: Path) -> Iterator[str]:
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig", newline="") as handle:  # a byte-order mark (spreadsheets write one) is not text
        try:
            yield from handle
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x})") from None


def _properties(row: dict[str, str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, columns in PROPERTY_COLUMNS.items():
        for column in columns:
            text = (row.get(column) or "").strip()
            if text:
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError(f"{column} is not finite")
                found[name] = value
                break
    return found


class _CsvDataset(Dataset):
    """A CSV reader: one entry per row, unreadable rows skipped with their reason."""

    id_column: str
    required: tuple[str, ...]

    def read(self, path: Path, limit: int | None = None) -> DatasetReadResult:
        result = DatasetReadResult(entries=[])
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1 (got {limit})")
        for line, row in enumerate(open_csv(path, self.required), start=2):
            row_id = row.get(self.id_column) or f"line {line}"
            try:
                result.entries.append(self.entry(row_id, row))
            except Exception as error:  # noqa: BLE001 - any unusable row is skipped and counted
                result.skipped.append((row_id, _reason(error)))
                continue
            if limit is not None and len(result.entries) >= limit:
                break
        return result

    def entry(self, row_id: str, row: dict[str, str]) -> DatasetEntry:
        """The entry of one row; raises if the row is unusable."""
        raise NotImplementedError


class ConstraintTable(_CsvDataset):
    """The method's constraint data (``constraints.csv``): formula, properties, space group, Wyckoff sites."""

    name = "crystalgf-constraints"
    description = "CrystalGF constraint table: id, formula, band_gap, formation_energy_per_atom, space_group, wyckoff"
    id_column = "id"
    required = ("id", "formula", "space_group", "wyckoff")

    def entry(self, row_id: str, row: dict[str, str]) -> DatasetEntry:
        properties = _properties(row)
        constraint = Constraint.from_dict({
            "formula": row["formula"],
            "space_group": int(row["space_group"]),
            "wyckoff": row["wyckoff"],
            "properties": {k: {"name": k, "value": v} for k, v in properties.items()},
        })
        return DatasetEntry(id=row_id, properties=properties, constraint=constraint)


class StructureTable(_CsvDataset):
    """CDVAE-style structure CSVs (Perov-5, MP-20, Carbon-24): ``material_id``, ``cif`` and property columns."""

    name = "cdvae-csv"
    description = "CSV with a cif column and material_id (CDVAE's Perov-5, MP-20, Carbon-24 format)"
    id_column = "material_id"
    required = ("material_id", "cif")

    def entry(self, row_id: str, row: dict[str, str]) -> DatasetEntry:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(row["cif"], fmt="cif")
        if len(structure) == 0:
            raise ValueError("the CIF has no atoms")
        return DatasetEntry(id=row_id, properties=_properties(row), structure=structure)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def holdout_split(reduced_formula: str, test_fraction: float = 0.2) -> str:
    """``"train"`` or ``"test"`` for a reduced formula, stable across runs and machines.

    All rows of one reduced formula fall on the same side (a grouped split), decided by a hash.
    """
    digest = hashlib.sha256(f"crystalgf-split:{reduced_formula}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
