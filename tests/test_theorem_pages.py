"""The results on the theorem pages: obligations in proof order, the training setup of each
budget, where the baseline was recorded and the expected run time, and the paper's notation."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from verify import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _extension():
    spec = importlib.util.spec_from_file_location("theorem_pages_under_test",
                                                  DOCS / "ext" / "theorem_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pages = _extension()


def test_obligations_are_listed_in_proof_order_with_claim_and_method():
    record = {"obligations": {  # keys sort the other way round
        "a last step": {"name": "a last step", "holds": True, "method": "symbolic",
                        "order": 1, "claim": "== 0"},
        "z first step": {"name": "z first step", "holds": False, "method": "exact at p=1/2",
                         "order": 0, "claim": "psd"}}}
    rows = pages._obligation_rows(record)
    first, last = rows.index(next(r for r in rows if "z first step" in r)), rows.index(
        next(r for r in rows if "a last step" in r))
    assert first < last
    assert "psd" in rows[first] and "FAILS" in rows[first] and "exact at p=1/2" in rows[first]
    assert "== 0" in rows[last] and "symbolic" in rows[last]


def test_the_training_setup_shows_every_budgets_sizes_and_what_they_mean():
    from verify.experiments.markov import BUDGETS

    text = "\n".join(pages._setup_rows("markov-local-minima", registry.default()))
    for name in ("N", "steps", "batch", "dtype"):
        line = next(row for row in text.splitlines() if row.startswith(f"| `{name}` |"))
        for budget in ("fast", "full"):
            assert f"`{str(getattr(BUDGETS[budget], name)).removeprefix('torch.')}`" in line
    assert "Sequence length of training" in text  # the meaning, from the dataclass docstring
    entry = registry.entry("markov-local-minima")
    seeds = next(row for row in text.splitlines() if row.startswith("| seeds |"))
    assert seeds.startswith(f"| seeds | {entry.default_seeds('fast')} | "
                            f"{entry.default_seeds('full')} |")
    d = next(row for row in text.splitlines() if row.startswith("| `d` |"))
    assert f"`{entry.budget_defaults('full')['d']}`" in d  # a parameter the full budget changes


def test_budget_attributes_are_read_from_a_numpy_docstring():
    @dataclass(frozen=True)
    class Sizes:
        """Sizes.

        Attributes
        ----------
        a, b : int
            Two sizes
            that share a line.
        c : str
            One more.
        """

        a: int
        b: int
        c: str

    assert pages._attributes(Sizes(1, 2, "x")) == {
        "a": "Two sizes that share a line.", "b": "Two sizes that share a line.", "c": "One more."}


def test_where_and_how_fast_a_baseline_was_recorded():
    record = {"budget": "fast", "recorded": {"revision": "0123456789abcdef0123+dirty",
                                             "seconds": 12.3}}
    text = pages._recorded(record)
    assert "0123456789ab" in text and "on top of" in text and "12 s" in text
    clean = pages._recorded({**record, "recorded": {"revision": "fedcba9876543210",
                                                    "seconds": 4.0}})
    assert "at revision `fedcba987654`" in clean
    lines = pages._run_time("markov-local-minima", record, registry.default())
    assert "12 s in the fast budget" in lines[0] and "in the full budget" in lines[0]


def test_the_paper_page_defines_its_notation():
    reg = registry.default()
    for paper in reg.papers():
        page = pages.paper_page(paper.prefix, reg)
        if paper.notation:
            assert "## Notation" in page
            for symbol, _ in paper.notation:
                assert f"${symbol}$" in page
        if paper.arxiv:
            assert f"https://arxiv.org/abs/{paper.arxiv}" in page


def test_a_baseline_outside_git_or_in_an_old_layout_still_gives_a_page(tmp_path, monkeypatch):
    import dataclasses
    import json

    record = {"budget": "fast", "recorded": {"revision": None, "seconds": 3.0}}
    assert "outside a git checkout" in pages._recorded(record)
    reg = registry.default()
    paper = reg.paper_of("ntp-ffn-max-margin")
    old = json.loads((paper.baselines / "ntp-ffn-max-margin.json").read_text())
    old["schema_version"] = 3
    for key in ("recorded",):
        old.pop(key)
    (tmp_path / "ntp-ffn-max-margin.json").write_text(json.dumps(old))
    moved = registry.Registry([("test", dataclasses.replace(paper, baselines=tmp_path))])
    page = pages.theorem_page("ntp-ffn-max-margin", moved)
    assert "No baseline in the current layout" in page and "--update-baseline" in page
