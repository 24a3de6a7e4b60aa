"""Crystals as tensors for the diffusion model: lattice coefficients k, Wyckoff orbits with free
parameters f, and atoms expanded from the orbits. Encodes real structures (training) and bare
constraints (sampling), and decodes generated tensors back into pymatgen structures."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from pymatgen.core import Element, Lattice, Structure
from pyxtal import pyxtal

from crystalgf.errors import InvalidInputError
from crystalgf.schema import Constraint
from crystalgf.symmetry import crystal_system
from crystalgf_diffusion.batch import COLLATED, PROPERTIES
from crystalgf_diffusion.lattice import family_index, k_to_lattice, lattice_to_k
from crystalgf_diffusion.wyckoff import free_parameters, orbit_template


@dataclass
class CrystalSample:
    """One crystal: space group, Wyckoff orbits (element, label, free parameters), lattice k, properties."""

    space_group: int
    orbits: list[tuple[str, str]]
    parameters: np.ndarray  # (orbits, 3)
    k: np.ndarray  # (6,)
    properties: dict[str, float] = field(default_factory=dict)

    @property
    def family(self) -> int:
        return family_index(crystal_system(self.space_group))

    def to_dict(self) -> dict:
        return {"space_group": self.space_group, "orbits": [list(o) for o in self.orbits],
                "parameters": self.parameters.tolist(), "k": self.k.tolist(), "properties": self.properties}

    @classmethod
    def from_dict(cls, data: dict) -> CrystalSample:
        return cls(data["space_group"], [tuple(o) for o in data["orbits"]], np.array(data["parameters"]),
                   np.array(data["k"]), data["properties"])


def encode_structure(structure: Structure, properties: dict[str, float] | None = None,
                     tolerance: float = 0.01) -> CrystalSample:
    """Symmetrise a structure with PyXtal (standard setting) and read its orbits and lattice."""
    crystal = pyxtal()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        crystal.from_seed(structure, tol=tolerance)
    group = crystal.group.number
    orbits, parameters = [], []
    for site in crystal.atom_sites:
        label = site.wp.get_label()
        orbits.append((str(site.specie), label))
        parameters.append(free_parameters(group, label, np.asarray(site.position)))
    k = lattice_to_k(torch.tensor(crystal.lattice.matrix, dtype=torch.float64)[None])[0].numpy()
    return CrystalSample(group, orbits, np.array(parameters), k, dict(properties or {}))


def encode_constraint(constraint: Constraint) -> CrystalSample:
    """A constraint to be generated: orbits known, parameters and lattice still to be drawn."""
    orbits = [(site.element, site.label) for site in constraint.wyckoff_sites]
    properties = {name: target.center for name, target in constraint.properties.items() if name in PROPERTIES}
    return CrystalSample(constraint.space_group, orbits, np.zeros((len(orbits), 3)), np.zeros(6), properties)


def k_lattice(k: np.ndarray) -> np.ndarray:
    """The (3, 3) lattice matrix of lattice coefficients k."""
    return k_to_lattice(torch.tensor(k, dtype=torch.float64)[None])[0].numpy()


def decode(sample: CrystalSample, k: np.ndarray, parameters: np.ndarray, lattice: np.ndarray | None = None) -> Structure:
    """The structure of a sample with the given lattice coefficients (or ``lattice`` matrix) and free parameters."""
    lattice = k_lattice(k) if lattice is None else lattice
    species, coordinates = [], []
    for (element, label), free in zip(sample.orbits, parameters):
        positions = orbit_template(sample.space_group, label).expand(free)
        species += [element] * len(positions)
        coordinates.append(positions)
    return Structure(Lattice(lattice), species, np.concatenate(coordinates))


def collate(samples: list[CrystalSample]) -> dict[str, torch.Tensor]:
    """Batch tensors: per crystal (k, family, properties), per orbit (f, free mask), per atom
    (atomic number, orbit, crystal, linear map, offset)."""
    batch: dict[str, list] = {name: [] for name in COLLATED}
    orbit_count = 0
    for index, sample in enumerate(samples):
        batch["k"].append(sample.k)
        batch["family"].append(sample.family)
        batch["properties"].append([sample.properties.get(p, 0.0) for p in PROPERTIES])
        batch["has_property"].append([p in sample.properties for p in PROPERTIES])
        for (element, label), free in zip(sample.orbits, sample.parameters):
            if not Element.is_valid_symbol(element):
                raise InvalidInputError(f"unknown element {element!r}")
            template = orbit_template(sample.space_group, label)
            batch["f"].append(free)
            batch["free"].append(template.free)
            batch["orbit_crystal"].append(index)
            for linear, offset in zip(template.linear, template.offset):
                batch["atom_type"].append(Element(element).Z)
                batch["atom_orbit"].append(orbit_count)
                batch["atom_crystal"].append(index)
                batch["linear"].append(linear)
                batch["offset"].append(offset)
            orbit_count += 1
    integer = {"family", "orbit_crystal", "atom_type", "atom_orbit", "atom_crystal"}
    return {name: torch.tensor(np.array(values), dtype=torch.long if name in integer else
                               (torch.bool if name == "has_property" else torch.float32))
            for name, values in batch.items()}
