"""Running evaluators over a batch and writing ``report.json``, ``report.md`` and figures.

``report.json`` is rewritten after every metric, so a failure later keeps what was finished; a
metric that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crystalgf.interfaces import EvaluationBatch, EvaluationServices, Evaluator, NotApplicable
from crystalgf.manifest import write_json
from crystalgf.symmetry.detect import detect_space_group
from crystalgf_eval import plots
from crystalgf_eval.symmetry_accuracy import SymmetryAccuracy


def evaluate_batch(batch: EvaluationBatch, evaluators: dict[str, Evaluator], services: EvaluationServices,
                   directory: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Run each evaluator, writing the report after each one; then the figures and ``report.md``."""
    report: dict[str, Any] = {**header, "structures": len(batch.ids), "metrics": {}, "not_applicable": {},
                              "failed": {}, "figures": []}
    for name, evaluator in evaluators.items():
        try:
            report["metrics"][name] = evaluator.evaluate(batch, services)
        except NotApplicable as reason:
            report["not_applicable"][name] = str(reason)
        except Exception as error:  # noqa: BLE001 - one failing metric must not lose the others
            report["failed"][name] = f"{type(error).__name__}: {error}"
        write_json(directory / "report.json", report)
    plots.space_group_distribution([detect_space_group(s, 0.1) for s in batch.structures],
                                   directory / "space_groups.png")
    report["figures"].append("space_groups.png")
    targeting = report["metrics"].get("property-targeting")
    if targeting:
        errors: dict[str, list[float]] = {}
        for values in targeting["per_structure"].values():
            for prop, result in values.items():
                if result["error"] is not None:
                    errors.setdefault(prop, []).append(result["error"])
        if errors:
            plots.error_histograms(errors, directory / "property_errors.png")
            report["figures"].append("property_errors.png")
    write_json(directory / "report.json", report)
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def evaluate_symmetry(accuracy: SymmetryAccuracy, directory: Path, header: dict[str, Any]) -> dict[str, Any]:
    """Report a G's space-group and Wyckoff accuracy with its confusion matrix."""
    labels, matrix = accuracy.confusion()
    report = {**header, "metrics": {"symmetry-accuracy": {"summary": {
        "space_group_accuracy": accuracy.space_group_accuracy, "wyckoff_accuracy": accuracy.wyckoff_accuracy,
        "pairs": len(accuracy.pairs)}, "confusion": {"labels": labels, "matrix": matrix}}},
        "not_applicable": {}, "failed": {}, "figures": ["confusion_matrix.png"]}
    plots.confusion_matrix(labels, matrix, directory / "confusion_matrix.png")
    write_json(directory / "report.json", report)
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
    return "—" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    """Tables a person can read: one per metric, then what was not applicable or failed."""
    lines = [f"# Evaluation of {report.get('input', '')}", "",
             f"{report.get('date', '')}; {report.get('structures', 0)} structures"
             + (f", {report['skipped']} unreadable items skipped" if report.get("skipped") else "")
             + (f"; reference {report['reference']}" if report.get("reference") else ""), ""]
    for name, result in report["metrics"].items():
        lines += [f"## {name}", "", "| quantity | value |", "|---|---|"]
        lines += [f"| {key} | {_format(value)} |" for key, value in result["summary"].items()]
        lines.append("")
    for title, key in (("Not applicable", "not_applicable"), ("Failed", "failed")):
        if report[key]:
            lines += [f"## {title}", ""] + [f"- {name}: {why}" for name, why in report[key].items()] + [""]
    lines += [f"![{figure}]({figure})" for figure in report["figures"]]
    return "\n".join(lines) + "\n"
