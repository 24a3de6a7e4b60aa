"""Hook specifications of CrystalGF (pluggy project name ``crystalgf``).

A plugin is a module (or object) with functions marked ``@hookimpl`` that are named like the
specs below, announced through the entry-point group ``crystalgf``::

    [project.entry-points.crystalgf]
    myplugin = "my_package.plugin"

Each ``crystalgf_add_*`` hook returns a list of plugin classes (subclasses of the interfaces in
:mod:`crystalgf.interfaces`); their ``name`` is what users type, e.g. ``--g prior``. A name may
be registered once across all installed packages.
"""

from __future__ import annotations

import click
import pluggy

from crystalgf.interfaces import (
    ConstraintGenerator,
    Dataset,
    Evaluator,
    PropertyPredictor,
    Relaxer,
    StructureGenerator,
)

PROJECT_NAME = "crystalgf"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def crystalgf_add_constraint_generators() -> list[type[ConstraintGenerator]]:
    """Return the constraint generators (G) this plugin provides.

    Called once when the plugin registry is built, e.g. for ``crystalgf run --g NAME``.
    """


@hookspec
def crystalgf_add_structure_generators() -> list[type[StructureGenerator]]:
    """Return the structure generators (H) this plugin provides.

    Called once when the plugin registry is built, e.g. for ``crystalgf run --h NAME``.
    """


@hookspec
def crystalgf_add_relaxers() -> list[type[Relaxer]]:
    """Return the structure relaxers this plugin provides (used by ``--relax NAME``)."""


@hookspec
def crystalgf_add_property_predictors() -> list[type[PropertyPredictor]]:
    """Return the property predictors (surrogate models) this plugin provides."""


@hookspec
def crystalgf_add_evaluators() -> list[type[Evaluator]]:
    """Return the evaluators (metrics over generated batches) this plugin provides."""


@hookspec
def crystalgf_add_datasets() -> list[type[Dataset]]:
    """Return the dataset readers this plugin provides."""


@hookspec
def crystalgf_add_commands() -> list[click.Command]:
    """Return extra ``crystalgf`` subcommands (click commands), e.g. ``crystalgf evaluate``.

    Called when the command line starts; a name already taken is reported and skipped.
    """


@hookspec
def crystalgf_add_train_commands() -> list[click.Command]:
    """Return ``crystalgf train`` subcommands, e.g. ``h`` (a structure generator) or ``g``."""
