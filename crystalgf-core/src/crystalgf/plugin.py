"""The core's own plugin: the built-in dataset readers, registered through the same hooks as any other."""

from __future__ import annotations

from crystalgf.datasets import ConstraintTable, StructureTable
from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import Dataset


@hookimpl
def crystalgf_add_datasets() -> list[type[Dataset]]:
    return [ConstraintTable, StructureTable]
