"""Relaxer ``chgnet``: CHGNet (weights shipped inside the chgnet package) with FIRE on cell and positions."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from crystalgf.errors import check_device, check_number
from crystalgf.interfaces import Relaxation, Relaxer


class ChgnetRelaxer(Relaxer):
    """Relaxes cell and positions until forces fall below ``fmax`` (eV/Å) or ``steps`` run out.

    With ``fix_symmetry`` the structure's symmetry (found at ``symprec``) is imposed on forces and
    stress (ASE ``FixSymmetry``), so the space group is kept.
    """

    name = "chgnet"
    description = "CHGNet potential (packaged weights), FIRE relaxation of cell and positions, symmetry kept"

    def __init__(self, fmax: float = 0.1, steps: int = 300, symprec: float = 0.01, device: str = "cpu"):
        check_number("relaxer chgnet", "fmax", fmax, 0, strict=True)
        check_number("relaxer chgnet", "steps", steps, 0, integer=True)
        check_number("relaxer chgnet", "symprec", symprec, 0, strict=True)
        self.fmax = fmax
        self.steps = steps
        self.symprec = symprec
        import torch  # here, not at import: the plugin is registered by every command

        self.device = check_device(device, torch.cuda.is_available(), torch.backends.mps.is_available())

    @cached_property
    def _model(self):
        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):
            return CHGNet.load(verbose=False, use_device=self.device)

    def weights_files(self) -> list[Path]:
        import chgnet

        return sorted((Path(chgnet.__file__).parent / "pretrained" / "0.3.0").glob("*.pth.tar"))

    def relax(self, structures: Sequence[Structure], fix_symmetry: bool = True) -> list[Relaxation]:
        from chgnet.model.dynamics import CHGNetCalculator
        from threadpoolctl import threadpool_limits

        results = []
        # The cell filter's 3x3 matrix functions (scipy, OpenBLAS) gain nothing from threads, and BLAS threads
        # competing with torch's for the same cores made each FIRE step several times slower.
        with threadpool_limits(1, user_api="blas"):
            for structure in structures:
                results.append(self._relax_one(CHGNetCalculator, structure, fix_symmetry))
        return results

    def _relax_one(self, calculator: type, structure: Structure, fix_symmetry: bool) -> Relaxation:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            atoms.calc = calculator(model=self._model, use_device=self.device)
            if fix_symmetry:
                atoms.set_constraint(FixSymmetry(atoms, symprec=self.symprec))
            optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
            optimizer.run(fmax=self.fmax, steps=self.steps)
            energy = float(atoms.get_potential_energy()) / len(atoms)
            atoms.set_constraint()
            relaxed = AseAtomsAdaptor.get_structure(atoms)
        relaxed = Structure(relaxed.lattice, relaxed.species, relaxed.frac_coords)  # no calculator arrays
        return Relaxation(structure=relaxed, energy_per_atom=energy, steps=optimizer.nsteps)
