"""The generated theory docs: every registered theorem gets a page whose LaTeX renders.

The Sphinx build itself (``sphinx-build -W``) runs in ``.ci/run``; these tests check the page
generator without Sphinx.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from verify import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _extension():
    spec = importlib.util.spec_from_file_location("theorem_pages", DOCS / "ext" /
                                                  "theorem_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pages = _extension()


def _balanced(latex: str) -> bool:
    """Braces nest, and \\left/\\right and \\begin/\\end pair up."""
    depth = 0
    for char in re.sub(r"\\[{}]", "", latex):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return (depth == 0 and latex.count(r"\left") == latex.count(r"\right")
            and latex.count(r"\begin{") == latex.count(r"\end{"))


@pytest.mark.parametrize("theorem_id", registry.ids())
def test_every_theorem_has_a_page_with_rendered_prediction(theorem_id):
    theorem = registry.theorem(theorem_id)
    page = pages.theorem_page(theorem_id)
    assert page.startswith(f"({theorem_id})=\n# ")
    assert theorem.statement in page and f"verify --theorem {theorem_id}" in page
    assert "project's formulation" in page
    rendered = pages.prediction_latex(theorem_id)
    assert set(theorem.predict(theorem.resolve_params({})).closed_forms) <= set(rendered)
    for name, (symbolic, value) in rendered.items():
        assert symbolic.strip() and value.strip(), name
        assert _balanced(symbolic) and _balanced(value), name
        assert symbolic in page
    assert page.count("$") % 2 == 0 and _balanced(theorem.statement)
    assert "No baseline recorded yet" not in page  # the committed baseline feeds the checks


def test_index_and_cli_reference_cover_everything(tmp_path, monkeypatch):
    monkeypatch.setattr(pages, "GENERATED", tmp_path)
    monkeypatch.setattr(pages, "PAPER_PAGES", tmp_path / "papers")
    written = pages.write_pages()
    assert {p.stem for p in written} == set(registry.ids())
    index = (tmp_path / "index.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith("| [`")]
    assert [row.split("`")[1] for row in rows] == registry.ids()  # each once, in paper order
    for row, theorem_id in zip(rows, registry.ids(), strict=True):
        assert f"]({theorem_id}.md)" in row and registry.theorem(theorem_id).kind in row
        assert re.search(r"\| (all \d+ checks pass|\d+ of \d+ checks fail) \|$", row)
    help_text = (tmp_path / "cli-help.txt").read_text()
    assert "--check-baseline" in help_text and "--update-baseline" in help_text


def test_every_paper_gets_a_page_from_its_registration(tmp_path, monkeypatch):
    """Paper pages, the papers' index and bibliography are generated from the Paper records:
    each page cites its paper, links arXiv, and lists exactly its theorems in its order."""
    monkeypatch.setattr(pages, "GENERATED", tmp_path)
    monkeypatch.setattr(pages, "PAPER_PAGES", tmp_path / "papers")
    pages.write_pages()
    papers = registry.default().papers()
    index = (tmp_path / "papers" / "index.md").read_text()
    assert "papers/index" in (DOCS / "index.md").read_text()
    for paper in papers:
        page = (tmp_path / "papers" / f"{paper.prefix}.md").read_text()
        assert paper.prefix in index and paper.url in page
        listed = [line.split("/")[-1] for line in page.splitlines()
                  if line.startswith("../theorems/")]
        assert listed == [entry.theorem.id for entry in paper.theorems]
        assert "@" in paper.bibtex and paper.key in pages.bibliography()


def test_citing_page_has_the_tool_and_every_paper():
    """The "Citing" page: the tool's BibTeX from CITATION.cff (whose version is the package's)
    and every registered paper's BibTeX entry."""
    import tomllib

    import yaml

    citation = yaml.safe_load(pages.CITATION.read_text())
    project = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"]
    assert str(citation["version"]) == project["version"]
    assert citation["license"] == project["license"]["text"]
    page = pages.citing_page()
    assert "@software{transformer_theorems," in page and citation["title"] in page
    for paper in registry.default().papers():
        assert paper.bibtex.strip() in page
