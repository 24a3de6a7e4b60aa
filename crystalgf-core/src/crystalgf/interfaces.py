"""The interfaces every plugin implements: G, H, relaxers, property predictors, evaluators, datasets.

All generators are batch-first: they take a sequence of inputs and return one output per input.
Each plugin class names itself with the class attributes ``name`` and ``description``; it is
built with keyword options (from ``--g-option key=value`` or a run config) and reports the
files it loaded in :meth:`Plugin.weights_files` so that a run's manifest can hash them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pymatgen.core import Structure

from crystalgf.schema import Constraint, GeneratedCrystal, GenerationRequest


class Plugin(ABC):
    """Common base: a registered, named, configurable component."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def weights_files(self) -> list[Path]:
        """Files (weights, fitted tables) this instance loaded; hashed into the run manifest."""
        return []


class ConstraintGenerator(Plugin):
    """G: from requests (formula or element set, target properties) to ranked constraints."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], top_k: int, seed: int) -> list[list[Constraint]]:
        """For each request, up to ``top_k`` distinct constraints, best first.

        Every constraint must be valid (it is a :class:`Constraint`) and honour the request:
        the same composition ratio (formula mode) or element set (element mode), at most
        ``request.max_atoms`` atoms in the primitive cell (or the exact cell, read as conventional or as
        primitive: :meth:`~crystalgf.schema.GenerationRequest.allows_cell`), and ``request.space_group``
        when it is set. Raise
        :class:`~crystalgf.errors.NoWyckoffAssignmentError` when a request has no valid answer.
        """


class CandidateProposer(ConstraintGenerator):
    """A G that can serve another G (the LLM G) as its candidate engine: it lists valid answers that the
    other G re-ranks. Besides a G's options, its constructor takes how far to search:
    ``groups_per_request`` (space groups whose assignments are searched, at least ``top_k``),
    ``per_group`` (constraints returned per space group; 1: the top-k are distinct groups) and
    ``assignments_per_group`` (Wyckoff assignments ranked per group and cell)."""

    @classmethod
    @abstractmethod
    def as_candidates(cls, groups_per_request: int | None = None, per_group: int | None = None,
                      assignments_per_group: int | None = None) -> CandidateProposer:
        """An instance with these search bounds (None: the proposer's own defaults) and default options."""


class StructureGenerator(Plugin):
    """H: from constraints to structures that obey them."""

    @abstractmethod
    def generate(self, constraints: Sequence[Constraint], seeds: Sequence[int]) -> list[Structure | None]:
        """One structure per constraint (``None`` where generation failed), each drawn with its own seed.

        The same constraints and seeds must give the same structures, byte for byte. A structure's random
        draws must depend only on its own seed, not on the batch around it; batched floating-point
        arithmetic may still make a structure drawn in another batch differ in the last digits.
        """


@dataclass
class Relaxation:
    """A relaxed structure and its energy."""

    structure: Structure
    energy_per_atom: float
    steps: int


class Relaxer(Plugin):
    """Relaxes structures with an interatomic potential, optionally keeping their symmetry."""

    @abstractmethod
    def relax(self, structures: Sequence[Structure], fix_symmetry: bool = True) -> list[Relaxation]:
        """Relax each structure; with ``fix_symmetry`` the space group is kept during relaxation."""


class PropertyPredictor(Plugin):
    """A surrogate model for one property (e.g. band gap in eV)."""

    property_name: ClassVar[str]
    unit: ClassVar[str]

    @abstractmethod
    def predict(self, structures: Sequence[Structure]) -> list[float | None]:
        """The predicted property of each structure, in ``unit`` (``None`` where the model cannot tell)."""


@dataclass
class EvaluationBatch:
    """What evaluators judge: structures with ids, their records (where they came from a run) and
    an optional reference set with its properties (e.g. DFT labels)."""

    ids: list[str]
    structures: list[Structure]
    records: list[GeneratedCrystal | None]
    reference_ids: list[str] = field(default_factory=list)
    reference: list[Structure] = field(default_factory=list)
    reference_properties: list[dict[str, float]] = field(default_factory=list)


class EvaluationServices(Protocol):
    """Shared, cached services an evaluator may use (provided by ``crystalgf evaluate``)."""

    def predict(self, property_name: str, ids: Sequence[str],
                structures: Sequence[Structure]) -> list[float | None] | None:
        """Predicted property per structure (``None`` items where the model cannot tell), or ``None``
        when no predictor for the property is installed."""

    def relax(self, ids: Sequence[str], structures: Sequence[Structure]) -> list[Relaxation]:
        """Relaxed structures and energies (cached per structure)."""

    def progress(self, items: Sequence[Any], description: str) -> Iterable[Any]:
        """Iterate over ``items`` showing a progress bar."""

    def cached(self, kind: str, structures: Sequence[Structure],
               compute: Callable[[Sequence[Structure]], list[Any]]) -> list[Any]:
        """``compute`` (a JSON-serialisable value per structure), computed once per structure and ``kind``."""


class NotApplicable(Exception):
    """Raised by an evaluator when the batch lacks what it needs (reference, constraints, a predictor)."""


class Evaluator(Plugin):
    """A metric over a batch of structures; returns ``{"summary": {...}, "per_structure": {id: {...}}}``."""

    @abstractmethod
    def evaluate(self, batch: EvaluationBatch, services: EvaluationServices) -> dict[str, Any]:
        """Judge the batch; raise :class:`NotApplicable` (with the reason) if it cannot."""


@dataclass
class DatasetEntry:
    """One row of a dataset: an id, properties, and a structure and/or a constraint."""

    id: str
    properties: dict[str, float]
    structure: Structure | None = None
    constraint: Constraint | None = None


@dataclass
class DatasetReadResult:
    """What a dataset reader returns: the readable entries and the skipped rows with reasons."""

    entries: list[DatasetEntry]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Dataset(Plugin):
    """A reader for one dataset format. Unreadable rows are skipped and counted, never fatal."""

    @abstractmethod
    def read(self, path: Path, limit: int | None = None) -> DatasetReadResult:
        """Read up to ``limit`` entries from ``path``."""
