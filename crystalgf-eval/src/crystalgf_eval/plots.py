"""Figures of a report (matplotlib, no display needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def space_group_distribution(space_groups: Sequence[int | None], path: Path, top: int = 25) -> None:
    """Bar chart of the most frequent space groups of a batch (the method's Fig. 4)."""
    counts = Counter(g for g in space_groups if g is not None).most_common(top)
    figure, axes = plt.subplots(figsize=(max(6, len(counts) * 0.35), 3.5))
    axes.bar([str(g) for g, _ in counts], [n for _, n in counts], color="#3b6ea5")
    axes.set_xlabel("space group (spglib, symprec 0.1)")
    axes.set_ylabel("structures")
    axes.tick_params(axis="x", rotation=90)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def error_histograms(errors: dict[str, list[float]], path: Path) -> None:
    """One histogram per property of |predicted - target|, with the 0.01 and 0.05 marks."""
    figure, axes = plt.subplots(1, len(errors), figsize=(4.5 * len(errors), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], errors.items()):
        ax.hist(values, bins=30, color="#c0504d")
        for mark in (0.01, 0.05):
            ax.axvline(mark, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(name)
        ax.set_xlabel("|predicted - target|")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path) -> None:
    """Row-normalised confusion matrix of space groups (rows true, columns proposed)."""
    import numpy as np

    values = np.array(matrix, dtype=float)
    rows = values.sum(axis=1, keepdims=True)
    normalised = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    size = max(5.0, len(labels) * 0.4)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("proposed space group")
    axes.set_ylabel("true space group")
    figure.colorbar(image, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
