"""The README's comparison tables are exactly what benchmarks/summary.py renders from benchmarks/results."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_comparisons_match_the_committed_results():
    spec = importlib.util.spec_from_file_location("summary", ROOT / "benchmarks" / "summary.py")
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- comparisons:begin -->\n(.*?)\n<!-- comparisons:end -->", readme, re.S)
    assert block, "README lacks the comparisons block"
    assert block.group(1).strip() == summary.summary().strip()
