"""Figures: structure panels on one colour scale, every seed drawn, labels and captions from the
records, and a stage that returns a structure record built from the prediction."""

import dataclasses
import os

import numpy as np
import pytest
import torch

from verify import harness, registry
from verify.experiments import ical
from verify.figures import draw_curves, draw_structure
from verify.records import Curve, Structure


def _structure(seeds: int = 3) -> Structure:
    rng = np.random.default_rng(0)
    return Structure("VQ, trained vs predicted", 0.25 * np.eye(3),
                     tuple(0.25 * np.eye(3) + (s + 1) * 0.1 * rng.standard_normal((3, 3))
                           for s in range(seeds)),
                     tuple(f"trained, seed {s}" for s in range(seeds)), "entry of VQ",
                     "how to read it", "predicted: eta* I")


def test_structure_panels_share_one_symmetric_colour_scale_and_a_labelled_colour_bar():
    record = _structure(seeds=3)
    fig = draw_structure("ical-one-step-gd", record)
    images = [image for ax in fig.axes for image in ax.get_images()]
    assert len(images) == 4  # the predicted panel and one per seed
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == [
        "predicted: eta* I", "trained, seed 0", "trained, seed 1", "trained, seed 2"]
    limits = {image.get_clim() for image in images}
    assert len(limits) == 1
    (low, high), = limits
    largest = max(np.abs(m).max() for m in (record.predicted, *record.trained))
    assert low == -high and high == pytest.approx(largest)
    np.testing.assert_array_equal(images[0].get_array(), record.predicted)
    colour_bars = [ax for ax in fig.axes if not ax.get_images() and ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in colour_bars] == ["entry of VQ"]


def test_an_explicit_scale_is_used_as_given():
    fig = draw_structure("x", dataclasses.replace(_structure(seeds=1), scale=2.0))
    assert {image.get_clim() for ax in fig.axes for image in ax.get_images()} == {(-2.0, 2.0)}


def test_every_seed_is_drawn_with_the_records_label_and_reference_lines():
    curves = [Curve("loss", f"seed {s}", np.linspace(1.0, 0.5 + 0.1 * s, 20), {"L*": 0.5},
                    ylabel="population loss (nats, exact)") for s in range(3)]
    [fig] = draw_curves("t", curves)
    [ax] = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == ["seed 0", "seed 1", "seed 2"] and "L* 0.5" in labels
    assert ax.get_ylabel() == "population loss (nats, exact)"


def test_captions_are_written_next_to_the_pngs(tmp_path):
    curves = [Curve("loss", "seed 0", np.ones(5), {}, ylabel="y", caption="read me"),
              _structure(seeds=2)]
    figures = draw_curves("t", curves, tmp_path)
    assert len(figures) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t-0.png", "t-0.txt", "t-1.png",
                                                          "t-1.txt"]
    # the caption opens with the figure's title (two figures may share how to read them)
    assert (tmp_path / "t-0.txt").read_text() == "Loss. read me\n"
    umask = os.umask(0)
    os.umask(umask)  # readable like the PNG beside it, not private to its writer
    assert (tmp_path / "t-0.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "t-1.txt").read_text() == "VQ, trained vs predicted. how to read it\n"


def test_one_step_stage_returns_the_predicted_matrix_and_every_seed(monkeypatch):
    small = dataclasses.replace(ical.BUDGETS["fast"], train_set=64, gd_steps=3, mc_samples=256)
    monkeypatch.setitem(ical.BUDGETS, "fast", small)
    plan = harness.prepare(registry.entry("ical-one-step-gd"), {"d": "2", "T": "3"}, seeds=2)
    context = harness.stage_context(plan, torch.device("cpu"))
    _, plots = ical._gd_training(context)
    [structure] = [p for p in plots if isinstance(p, Structure)]
    np.testing.assert_allclose(structure.predicted,
                               float(context.prediction.value("eta_star")) * np.eye(2),
                               rtol=1e-15)
    assert structure.labels == ("trained, seed 0", "trained, seed 1")
    assert all(m.shape == (2, 2) for m in structure.trained)
    assert not np.allclose(structure.trained[0], structure.trained[1])
    curves = [p for p in plots if isinstance(p, Curve)]
    assert len(curves) == 2 and {c.ylabel for c in curves} == {ical.FULL_BATCH_LOSS}


def test_theorem_pages_show_each_figure_in_order_with_its_caption(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "ext" / "theorem_pages.py"
    spec = importlib.util.spec_from_file_location("theorem_pages_figures", path)
    pages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pages)
    curves = [Curve(f"title {i}", "seed 0", np.ones(3), {}, ylabel="y", caption=f"read {i}")
              for i in range(11)]
    draw_curves("t", curves, tmp_path)
    (tmp_path / "t-10.txt").unlink()  # a figure without a caption file still shows
    monkeypatch.setattr(pages, "FIGURES", tmp_path)
    text = "\n".join(pages._figures("t"))
    shown = [line.split("/")[-1] for line in text.splitlines() if line.startswith("```{figure}")]
    assert shown == [f"t-{i}.png" for i in range(11)]  # numeric order, not t-0, t-1, t-10
    assert "```{figure} ../figures/t-3.png\n:alt: t figure 3\n\nTitle 3. read 3\n```" in text
