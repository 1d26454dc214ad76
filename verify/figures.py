"""Figures of a verdict: one matplotlib figure per curve title, with the prediction's lines.

Figures are built with :class:`matplotlib.figure.Figure` directly, so drawing never changes the
global backend (safe in notebooks and in headless runs alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def draw_curves(theorem_id: str, curves: Sequence[Any], directory: Path | None = None
                ) -> list[Any]:
    """One figure per distinct curve title; saved as ``<id>-<index>.png`` under ``directory``.

    ``curves`` are :class:`verify.records.Curve` records (every curve of a title shares the
    title's axes, scales and reference lines).
    """
    from matplotlib.figure import Figure

    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    figures = []
    titles = list(dict.fromkeys(curve.title for curve in curves))
    for index, title in enumerate(titles):
        group = [c for c in curves if c.title == title]
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.subplots()
        for curve in group:
            steps = range(1, len(curve.values) + 1) if curve.steps is None else curve.steps
            [line] = ax.plot(steps, curve.values, lw=1.2, label=curve.label)
            for name, step in curve.marks.items():
                ax.axvline(step, color=line.get_color(), ls=":", lw=1.0, label=name)
        styles = iter(["--", ":", "-.", (0, (5, 1))])
        for name, value in group[0].references.items():
            ax.axhline(value, color="black", ls=next(styles), lw=0.9, label=f"{name} {value:.5f}")
        ax.set_xscale(group[0].xscale)
        ax.set_yscale(group[0].yscale)
        ax.set_xlabel("step")
        ax.set_ylabel(group[0].ylabel)
        ax.set_title(f"{theorem_id}\n{title}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        if directory is not None:
            fig.savefig(directory / f"{theorem_id}-{index}.png", dpi=120)
        figures.append(fig)
    return figures
