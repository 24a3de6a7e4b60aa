"""Shared fixtures: the real data in ../shared/data (tests fail loudly without it)."""

from __future__ import annotations

import os
import resource
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CRYSTALGF_SHARED_DATA", REPO.parent / "shared" / "data"))
MODELS = DATA.parent / "models" / "matgl"
ELEMENTAL_REFERENCES = DATA / "mp_reference" / "2023-02-07-mp-elemental-reference-entries.json.gz"


def pytest_configure(config: pytest.Config) -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    if not (DATA / "crystalgf_constraints" / "constraints.csv").is_file():
        raise pytest.UsageError(
            f"the shared data is missing at {DATA}: the tests read real data; "
            "set CRYSTALGF_SHARED_DATA to the folder holding perov_5/, mp_20_sample/, crystalgf_constraints/"
        )
    # The real matgl weights and MP elemental references from ../shared, offline.
    os.environ["CRYSTALGF_MATGL_MODELS"] = str(MODELS)
    os.environ["CRYSTALGF_ELEMENTAL_REFERENCES"] = str(ELEMENTAL_REFERENCES)
    os.environ["HF_HUB_OFFLINE"] = "1"


_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter) -> None:
    """The suite's budget (issue #24: at most 6 GB and 8 minutes on 2 cores), measured in every run's log."""
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    terminalreporter.write_line(f"suite: {time.monotonic() - _STARTED:.0f} s, peak memory of one process "
                                f"{peak / 2**20:.2f} GB (pytest or its largest child)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def constraints_csv() -> Path:
    return DATA / "crystalgf_constraints" / "constraints.csv"


@pytest.fixture(scope="session")
def perov_subset(tmp_path_factory) -> Path:
    """The first 40 Perov-5 test rows as a CSV of their own (read at test time, never committed)."""
    import csv

    rows = list(csv.DictReader((DATA / "perov_5" / "test.csv").open()))[:40]
    path = tmp_path_factory.mktemp("perov") / "perov_test_40.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
