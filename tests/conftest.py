"""Shared fixtures: the real data in ../shared/data (tests fail loudly without it)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CRYSTALGF_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    if not (DATA / "crystalgf_constraints" / "constraints.csv").is_file():
        raise pytest.UsageError(
            f"the shared data is missing at {DATA}: the tests read real data; "
            "set CRYSTALGF_SHARED_DATA to the folder holding perov_5/, mp_20_sample/, crystalgf_constraints/"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def constraints_csv() -> Path:
    return DATA / "crystalgf_constraints" / "constraints.csv"
