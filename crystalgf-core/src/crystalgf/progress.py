"""The progress bar every long CrystalGF job shows (on stderr, so results on stdout stay clean)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class _Progress(Progress):
    """A progress display that leaves nothing behind when its job fails: the error's one line stands alone."""

    def __exit__(self, exc_type, exc_value, traceback) -> None:  # type: ignore[no-untyped-def]
        if exc_type is None:
            return super().__exit__(exc_type, exc_value, traceback)
        quiet, self.console.quiet = self.console.quiet, True
        try:
            return super().__exit__(exc_type, exc_value, traceback)
        finally:
            self.console.quiet = quiet


def progress_bar() -> Progress:
    """A rich progress display: description, bar, done/total, elapsed time (not shown when the job fails)."""
    return _Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=stderr)
