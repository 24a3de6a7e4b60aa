"""CrystalGF: crystal generation under strict symmetry and composition constraints.

The core package holds the contracts shared by every plugin: the schema
(:mod:`crystalgf.schema`), the G and H interfaces (:mod:`crystalgf.interfaces`),
the hook specifications (:mod:`crystalgf.hookspecs`) and crystallography utilities
(:mod:`crystalgf.symmetry`). It never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crystalgf-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
