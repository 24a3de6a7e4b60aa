"""The README's comparison tables, rendered from the committed results.

    python benchmarks/summary.py            # print them
    python benchmarks/summary.py --readme   # replace them in README.md

The README holds this output between ``<!-- comparisons:begin -->`` and ``<!-- comparisons:end -->``;
a test checks that the two agree, so the README cannot drift from ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- comparisons:begin -->\n)(?:.*?\n)?(<!-- comparisons:end -->)", re.S)
MODES = ("formula+band_gap", "formula+formation_energy", "elements+band_gap", "elements+formation_energy")


def _load(stem: str) -> dict | None:
    path = RESULTS / f"{stem}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def symmetry_table() -> list[str]:
    report = _load("g_symmetry_accuracy")
    if not report:
        return []
    lines = ["**G symmetry accuracy**, held-out split ([details](benchmarks/results/g_symmetry_accuracy.md)): "
             "space-group / Wyckoff accuracy, top-1; in element modes also the composition (ratio) accuracy "
             "after the Wyckoff accuracy; then the whole constraint exactly right at rank 1, within the top 5, "
             "and the exact sites given the true group (equivalent relabellings allowed)", "",
             "| G | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 1) + "|"]
    for g, result in report["results"].items():
        cells = []
        for mode in MODES:
            row = result["modes"].get(mode)
            composition = f" / {_pct(row['composition_accuracy'])}" if row and "composition_accuracy" in row else ""
            exact = f"; exact {_pct(row['exact_top1'])} / {_pct(row['exact_top5'])} / " \
                f"{_pct(row['exact_wyckoff_given_group'])}" if row and "exact_top1" in row else ""
            cells.append("—" if row is None else f"{_pct(row['space_group_accuracy'])} / "
                         f"{_pct(row['wyckoff_accuracy'])}{composition}{exact} ({row.get('rows', '?')})")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines + ["", "(rows measured in brackets)"]


CSP_DATA = ("perov_5", "mp_20_sample")


def csp_table() -> list[str]:
    """One column per test set; diffusion rows per checkpoint (the test set's own, or another) and
    redraw setting; runs on a subset or on another split are left out."""
    reports: dict[str, list[tuple[str, dict]]] = {}
    for data in CSP_DATA:
        stems = sorted(path.stem for path in RESULTS.glob(f"csp_{data}*.json") if "_first" not in path.stem)
        found = [(stem, report) for stem in stems if (report := _load(stem)) and report["test"]["file"].endswith("test.csv")]
        if found:
            reports[data] = found
    if not reports:
        return []
    links = [f"[{stem}](benchmarks/results/{stem}.md)" for found in reports.values() for stem, _ in found]
    lines = ["**Structure prediction with true constraints** (match rate / RMSE; " + ", ".join(links) + ")", "",
             "| H | " + " | ".join(f"{data} test ({found[0][1]['test']['usable']})" for data, found in reports.items())
             + " |", "|---" * (len(reports) + 1) + "|"]
    cells: dict[str, dict[str, str]] = {}
    for data, found in reports.items():
        for _, report in found:
            for row in report["rows"]:
                cells.setdefault(_csp_label(row, report), {})[data] = f"{row['match_rate']:.2%} / " + (
                    "—" if row["rmse"] is None else f"{row['rmse']:.4f}")
    for name, by_data in cells.items():
        lines.append(f"| {name} | " + " | ".join(by_data.get(data, "—") for data in reports) + " |")
    return lines


def _csp_label(row: dict, report: dict) -> str:
    if report["benchmark"] == "csp-gpu":
        guidance = row.get("guidance", 1.0) if row["conditioned"] else 1.0
        return (f"diffusion `{row['checkpoint']}` ({row['epochs']} epochs) on {row['device']}, "
                f"{'with' if row['conditioned'] else 'no'} properties{f', guidance {guidance:g}' if guidance != 1 else ''}, "
                f"{row['steps']} steps")
    options = row.get("options", {})
    if options.get("noise") is None:
        return row["h"]
    checkpoint = report["checkpoint"]["path"]
    trained = checkpoint if checkpoint == "general-small" else "test set's own training split"
    retries = f", {options['retries']} redraws" if options.get("retries") else ""
    steps = f", {options['steps']} steps" if options.get("steps") else ""
    return f"{row['h']} ({trained}, sampling noise {options['noise']:g}{steps}{retries})"


def targeting_table() -> list[str]:
    report = _load("property_targeting")
    if not report or not report["results"]:
        return []
    lines = [f"**Property targeting and composition compliance**, {report['rows_per_mode']} held-out requests per "
             "mode ([details](benchmarks/results/property_targeting.md)): hit@0.05 / hit@0.01 under the surrogate "
             "predictors, composition compliance", "",
             "| pipeline | " + " | ".join(MODES) + " | composition |", "|---" * (len(MODES) + 2) + "|"]
    for pipeline, modes in report["results"].items():
        cells = ["—" if mode not in modes else f"{_pct(modes[mode]['hit@0.05'])} / {_pct(modes[mode]['hit@0.01'])}"
                 for mode in MODES]
        compliance = sum(m["composition_compliance"] for m in modes.values()) / len(modes)
        lines.append(f"| {pipeline} | " + " | ".join(cells) + f" | {_pct(compliance)} |")
    claims = report.get("headline", {}).get("claims", [])
    return lines + ([""] + claims if claims else [])


def sun_table() -> list[str]:
    report = _load("sun")
    if not report or not report["results"]:
        return []
    lines = [f"**S.U.N.**, {report['requests']} MP-20 sample test compositions ([details](benchmarks/results/sun.md))",
             "", "| pipeline | stable | unique | novel | S.U.N. | balanced S.U.N. |", "|---|---|---|---|---|---|"]
    lines += [f"| {p} | {_pct(r['stable'])} | {_pct(r['unique'])} | {_pct(r['novel'])} | {_pct(r['sun'])} | "
              f"{_pct(r['balanced_sun'])} |" for p, r in report["results"].items()]
    return lines


def summary() -> str:
    blocks = [block for block in (symmetry_table(), csp_table(), targeting_table(), sun_table()) if block]
    return "\n\n".join("\n".join(block) for block in blocks)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="replace the tables in README.md instead of printing them")
    if parser.parse_args().readme:
        README.write_text(BLOCK.sub(lambda m: m.group(1) + summary() + "\n" + m.group(2), README.read_text()))
    else:
        print(summary())
