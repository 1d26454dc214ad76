"""Figures of a verdict: one figure per curve title and one per structure record.

Curves of one title share the title's axes, scales and the prediction's reference lines (every
seed is one line). A :class:`verify.records.Structure` is drawn as small multiples: the predicted
matrix, then the trained matrix of every seed, on one colour scale symmetric about zero with one
labelled colour bar. Each figure's caption (how to read it) is written next to its PNG as
``<id>-<index>.txt``, which the docs show under the figure.

Figures are built with :class:`matplotlib.figure.Figure` directly, so drawing never changes the
global backend (safe in notebooks and in headless runs alike).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verify.files import write_atomic

if TYPE_CHECKING:  # records import this module lazily (Verdict.figures): no import back
    from verify.records import Curve, Structure

#: Panels per row of a structure figure (the predicted panel counts as one).
COLUMNS = 4


def draw_curves(theorem_id: str, curves: Sequence[Curve | Structure],
                directory: Path | None = None) -> list[Any]:
    """One figure per distinct curve title and per structure record, in order of appearance.

    With ``directory``, figure ``i`` is saved as ``<id>-<i>.png`` and its caption as
    ``<id>-<i>.txt`` (written atomically; an empty file when the figure has no caption).
    """
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    groups: dict[Any, list[Curve | Structure]] = {}
    for record in curves:
        key = ("structure", id(record)) if _is_structure(record) else record.title
        groups.setdefault(key, []).append(record)
    figures = []
    for index, group in enumerate(groups.values()):
        if _is_structure(group[0]):
            fig, caption = draw_structure(theorem_id, group[0]), group[0].caption
        else:
            fig = _draw_curve_group(theorem_id, group)
            caption = next((c.caption for c in group if c.caption), "")
        if directory is not None:  # the caption opens with the figure's title: several
            fig.savefig(directory / f"{theorem_id}-{index}.png", dpi=120)  # share a reading
            title = group[0].title[:1].upper() + group[0].title[1:]
            write_atomic(directory / f"{theorem_id}-{index}.txt",
                         (f"{title}. {caption}" if caption else title) + "\n")
        figures.append(fig)
    return figures


def _is_structure(record: Curve | Structure) -> bool:
    """A predicted-vs-trained matrix record (:class:`verify.records.Structure`), not a curve."""
    return hasattr(record, "trained")


def _draw_curve_group(theorem_id: str, group: Sequence[Curve]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for curve in group:
        steps = range(1, len(curve.values) + 1) if curve.steps is None else curve.steps
        [line] = ax.plot(steps, curve.values, lw=1.2, label=curve.label)
        for name, step in curve.marks.items():
            ax.axvline(step, color=line.get_color(), ls=":", lw=1.0, label=name)
    styles = iter(["--", ":", "-.", (0, (5, 1))])
    for name, value in group[0].references.items():
        ax.axhline(value, color="black", ls=next(styles), lw=0.9, label=f"{name} {value:.5g}")
    ax.set_xscale(group[0].xscale)
    ax.set_yscale(group[0].yscale)
    ax.set_xlabel("step")
    ax.set_ylabel("\n".join(textwrap.wrap(group[0].ylabel, 45)))
    ax.set_title(f"{theorem_id}\n{group[0].title}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_structure(theorem_id: str, record: Structure) -> Any:
    """Predicted matrix and every trained matrix side by side, one shared colour scale."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [(record.predicted_label, np.asarray(record.predicted, dtype=float))]
    panels += [(label, np.asarray(m, dtype=float))
               for label, m in zip(record.labels, record.trained, strict=True)]
    scale = record.scale
    if scale is None:
        finite = [np.abs(m[np.isfinite(m)]).max() for _, m in panels if np.isfinite(m).any()]
        scale = max(finite, default=1.0) or 1.0
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(2.3 * columns + 1.2, 2.3 * rows + 0.9))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    image = None
    for ax, (label, matrix) in zip(axes, panels, strict=False):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-scale, vmax=scale,
                          interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(f"{theorem_id}\n{record.title}", fontsize=9)
    colour_bar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    colour_bar.set_label(record.colorbar, fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    return fig
