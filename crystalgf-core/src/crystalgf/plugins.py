"""Plugin discovery (entry-point group ``crystalgf``) and the registry of named plugins.

Code that needs the installed plugins uses :meth:`PluginRegistry.installed`: one registry per process.
A plugin that fails to import, or whose hook fails, is recorded in :attr:`PluginRegistry.broken`
with its name and error; the others still load. That includes a module that calls ``sys.exit`` when
imported: a plugin cannot end the command that loads it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import click
import pluggy

from crystalgf import hookspecs
from crystalgf.errors import CrystalGFError, InvalidInputError, PluginFailedError, UnknownPluginError
from crystalgf.interfaces import (
    ConstraintGenerator,
    Dataset,
    Evaluator,
    Plugin,
    PropertyPredictor,
    Relaxer,
    StructureGenerator,
)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME


@dataclass(frozen=True)
class PluginKind:
    """One kind of plugin: its key, what users call it, its hook and its interface."""

    key: str
    title: str
    hook: str
    interface: type[Plugin]


KINDS: tuple[PluginKind, ...] = (
    PluginKind("g", "constraint generator (G)", "crystalgf_add_constraint_generators", ConstraintGenerator),
    PluginKind("h", "structure generator (H)", "crystalgf_add_structure_generators", StructureGenerator),
    PluginKind("relaxer", "relaxer", "crystalgf_add_relaxers", Relaxer),
    PluginKind("predictor", "property predictor", "crystalgf_add_property_predictors", PropertyPredictor),
    PluginKind("evaluator", "evaluator", "crystalgf_add_evaluators", Evaluator),
    PluginKind("dataset", "dataset", "crystalgf_add_datasets", Dataset),
)
_KIND_BY_KEY = {kind.key: kind for kind in KINDS}


@dataclass(frozen=True)
class RegisteredPlugin:
    """A named plugin class and the package that registered it."""

    kind: PluginKind
    name: str
    cls: type[Plugin]
    package: str
    version: str

    def create(self, **options: Any) -> Any:
        """Instantiate with keyword options; unknown options get a one-line error listing the accepted ones,
        and a plugin that raises anything but a :class:`CrystalGFError` one that names it."""
        parameters = inspect.signature(self.cls).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [key for key in options if key not in parameters and not accepts_any]
        if unknown:
            accepted = ", ".join(parameters) or "none"
            raise InvalidInputError(f"{self.kind.key} {self.name!r} has no option {unknown[0]!r}; its options: {accepted}")
        try:
            return self.cls(**options)
        except CrystalGFError:
            raise
        except (Exception, SystemExit) as error:  # noqa: BLE001 - a plugin's own failure, named
            raise PluginFailedError(f"{self.kind.title} {self.name!r}", "to start", error) from error


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded, and why."""

    source: str
    package: str
    error: str


class PluginRegistry:
    """All plugins found through the hooks, by kind and name."""

    def __init__(self, plugins: Iterable[tuple[str, object, str, str]] = ()):
        """Register ``(name, plugin module or object, package, version)`` tuples and collect their classes."""
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self._plugins: dict[str, dict[str, RegisteredPlugin]] = {kind.key: {} for kind in KINDS}
        packages: dict[str, tuple[str, str]] = {}
        for name, plugin, package, version in plugins:
            try:
                self._manager.register(plugin, name=name)
            except (Exception, SystemExit) as error:  # noqa: BLE001 - a bad plugin must not break the others
                self.broken.append(BrokenPlugin(name, package, _describe(error)))
                continue
            packages[name] = (package, version)
        for kind in KINDS:
            self._collect(kind, packages)
        self.commands = self._collect_commands("crystalgf_add_commands", packages)
        self.train_commands = self._collect_commands("crystalgf_add_train_commands", packages)

    def _collect_commands(self, hook_name: str, packages: dict[str, tuple[str, str]]) -> dict[str, click.Command]:
        commands: dict[str, click.Command] = {}
        for impl in getattr(self._manager.hook, hook_name).get_hookimpls():  # registration order: the first keeps a name
            package = packages.get(impl.plugin_name, ("?", "?"))[0]
            try:
                for command in impl.function() or []:
                    if command.name in commands:
                        raise ValueError(f"command {command.name!r} is already registered")
                    commands[command.name] = command
            except (Exception, SystemExit) as error:  # noqa: BLE001 - a bad plugin must not break the others
                self.broken.append(BrokenPlugin(impl.plugin_name, package, _describe(error)))
        return commands

    @classmethod
    def discover(cls) -> PluginRegistry:
        """Load every plugin announced in the ``crystalgf`` entry-point group into a new registry."""
        loaded: list[tuple[str, object, str, str]] = []
        broken: list[BrokenPlugin] = []
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            package = entry_point.dist.name if entry_point.dist else "?"
            version = entry_point.dist.version if entry_point.dist else "?"
            try:
                loaded.append((entry_point.name, entry_point.load(), package, version))
            except (Exception, SystemExit) as error:  # noqa: BLE001 - report by name, keep going (sys.exit too)
                broken.append(BrokenPlugin(entry_point.name, package, _describe(error)))
        registry = cls(loaded)
        registry.broken[:0] = broken
        return registry

    @classmethod
    @cache
    def installed(cls) -> PluginRegistry:
        """The registry of the installed plugins, discovered on the first call and shared by the whole process
        (``PluginRegistry.installed.cache_clear()`` makes the next call discover again)."""
        return cls.discover()

    def _collect(self, kind: PluginKind, packages: dict[str, tuple[str, str]]) -> None:
        hook = getattr(self._manager.hook, kind.hook)
        for impl in hook.get_hookimpls():  # registration order: the first keeps a name
            package, version = packages.get(impl.plugin_name, ("?", "?"))
            try:
                classes = impl.function() or []
            except (Exception, SystemExit) as error:  # noqa: BLE001
                self.broken.append(BrokenPlugin(impl.plugin_name, package, _describe(error)))
                continue
            for plugin_cls in classes:
                name = getattr(plugin_cls, "name", None)
                problem = None
                if not (isinstance(plugin_cls, type) and issubclass(plugin_cls, kind.interface)):
                    problem = f"{plugin_cls!r} from {kind.hook} is not a {kind.interface.__name__}"
                elif not name:
                    problem = f"{plugin_cls.__name__} has no name"
                elif name in self._plugins[kind.key]:
                    owner = self._plugins[kind.key][name].package
                    problem = f"{kind.title} name {name!r} is already registered by {owner}"
                if problem:
                    self.broken.append(BrokenPlugin(impl.plugin_name, package, problem))
                    continue
                self._plugins[kind.key][name] = RegisteredPlugin(kind, name, plugin_cls, package, version)

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind (``"g"``, ``"h"``, ``"relaxer"``, ``"predictor"``, ``"evaluator"``, ``"dataset"``)."""
        return sorted(self._plugins[kind])

    def all(self) -> list[RegisteredPlugin]:
        """Every registered plugin, grouped by kind."""
        return [plugin for kind in KINDS for _, plugin in sorted(self._plugins[kind.key].items())]

    def get(self, kind: str, name: str) -> RegisteredPlugin:
        """The plugin of this kind and name; :class:`UnknownPluginError` lists the known names."""
        try:
            return self._plugins[kind][name]
        except KeyError:
            raise UnknownPluginError(_KIND_BY_KEY[kind].title, name, self.names(kind)) from None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Look up and instantiate a plugin."""
        return self.get(kind, name).create(**options)


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()
