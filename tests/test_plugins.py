import types

import pytest

from crystalgf.errors import UnknownPluginError
from crystalgf.hookspecs import hookimpl
from crystalgf.interfaces import ConstraintGenerator
from crystalgf.plugins import PluginRegistry


def test_discovery_finds_every_installed_package():
    registry = PluginRegistry.discover()
    assert registry.broken == []
    packages = {(p.kind.key, p.name): p.package for p in registry.all()}
    assert packages[("g", "prior")] == "crystalgf-baselines"
    assert packages[("g", "random")] == "crystalgf-baselines"
    assert packages[("h", "pyxtal")] == "crystalgf-baselines"
    assert packages[("relaxer", "chgnet")] == "crystalgf-eval"
    assert packages[("dataset", "cdvae-csv")] == "crystalgf-core"
    assert packages[("g", "highest-symmetry")] == "crystalgf-example-plugin"
    assert packages[("h", "diffusion")] == "crystalgf-diffusion"
    assert packages[("evaluator", "sun")] == "crystalgf-eval"
    assert packages[("predictor", "megnet-bandgap")] == "crystalgf-eval"
    assert {"evaluate", "export-vasp"} <= set(registry.commands) and "h" in registry.train_commands


def test_the_installed_registry_is_discovered_once_and_registries_built_apart_stay_apart():
    installed = PluginRegistry.installed()
    assert PluginRegistry.installed() is installed
    assert PluginRegistry.discover() is not installed
    own = types.SimpleNamespace(crystalgf_add_constraint_generators=hookimpl(lambda: [_Named]))
    assert PluginRegistry([("own", own, "pkg-own", "1")]).names("g") == ["prior"]
    assert PluginRegistry.installed() is installed and installed.get("g", "prior").package == "crystalgf-baselines"


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownPluginError, match="unknown constraint generator .G. 'llm-nope'; known: .*prior"):
        PluginRegistry.discover().get("g", "llm-nope")


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(tmp_path, monkeypatch):
    dist = tmp_path / "crystalgf_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crystalgf-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crystalgf]\nbroken = crystalgf_broken_missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = PluginRegistry.discover()
    assert [(b.source, b.package) for b in registry.broken] == [("broken", "crystalgf-broken")]
    assert "ModuleNotFoundError" in registry.broken[0].error
    assert "prior" in registry.names("g")


class _Named(ConstraintGenerator):
    name = "prior"

    def generate(self, requests, top_k, seed):
        return []


def test_hook_errors_and_name_clashes_are_reported():
    failing = types.SimpleNamespace(crystalgf_add_structure_generators=hookimpl(lambda: 1 / 0))
    clashing = types.SimpleNamespace(crystalgf_add_constraint_generators=hookimpl(lambda: [_Named, _Named]))
    registry = PluginRegistry([("failing", failing, "pkg-a", "1"), ("clashing", clashing, "pkg-b", "2")])
    errors = {b.source: b.error for b in registry.broken}
    assert "ZeroDivisionError" in errors["failing"]
    assert "already registered by pkg-b" in errors["clashing"]
    assert registry.names("g") == ["prior"]


def test_the_first_registered_plugin_keeps_a_name():
    class Second(_Named):
        description = "registered second"

    first = types.SimpleNamespace(crystalgf_add_constraint_generators=hookimpl(lambda: [_Named]))
    second = types.SimpleNamespace(crystalgf_add_constraint_generators=hookimpl(lambda: [Second]))
    registry = PluginRegistry([("builtin", first, "crystalgf-baselines", "1"), ("third", second, "pkg-x", "1")])
    assert registry.get("g", "prior").cls is _Named
    assert [(b.source, b.package) for b in registry.broken] == [("third", "pkg-x")]
