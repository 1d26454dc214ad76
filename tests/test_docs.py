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


# ----------------------------------------------------------------------------- navigation


def _toctree_entries(text: str) -> list[str]:
    """The entries of every ``{toctree}`` block of a MyST page, in order (options skipped)."""
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
        entries += [line.strip() for line in block.splitlines()
                    if line.strip() and not line.startswith(":")]
    return entries


def _modules() -> list[str]:
    """Every module of the three packages (``__main__`` would run the command)."""
    import importlib
    import pkgutil

    names = []
    for package in ("theorems", "numerics", "verify"):
        path = importlib.import_module(package).__path__
        names += [package, *(m.name for m in pkgutil.walk_packages(path, package + ".")
                             if not m.name.endswith(".__main__"))]
    return names


def test_every_module_has_exactly_one_api_page_entry_points_first():
    api = DOCS / "api"
    documented = {}
    for page in api.glob("*.rst"):
        for module in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), flags=re.M):
            documented.setdefault(module, []).append(page.stem)
    modules = _modules()
    assert sorted(documented) == sorted(modules)
    assert all(pages_ == [module] for module, pages_ in documented.items())  # one page each
    index = (api / "index.md").read_text()
    entries = _toctree_entries(index)
    assert sorted(entries) == sorted(modules)  # every page in the index's toctrees, once
    first = _toctree_entries(index.split("```\n\n```", 1)[0] + "```")
    assert {"verify.api", "verify.records", "verify.registry", "theorems.core"} <= set(first)
    assert not any(m.startswith(("verify.experiments", "numerics")) for m in first)
    import verify

    summary = (api / "verify.rst").read_text()  # the package page lists what it offers
    assert all(re.search(rf"^   \w+\.{name}$", summary, flags=re.M) for name in verify.__all__)
    assert "api/index" in _toctree_entries((DOCS / "index.md").read_text())
    assert not (DOCS / "api.md").exists()


def test_every_theorem_is_in_exactly_one_toctree_in_paper_order(tmp_path, monkeypatch):
    """The sidebar lists each theorem once, under its paper, in the paper's order; the theorems
    index is a table, not a second toctree."""
    import posixpath

    monkeypatch.setattr(pages, "GENERATED", tmp_path / "theorems")
    monkeypatch.setattr(pages, "PAPER_PAGES", tmp_path / "papers")
    monkeypatch.setattr(pages, "theorem_page", lambda theorem_id, reg: f"# {theorem_id}\n")
    pages.write_pages()
    sources = {str(p.relative_to(DOCS).with_suffix("")): p for p in DOCS.rglob("*.*")
               if p.suffix in (".md", ".rst") and "_build" not in p.parts}
    sources |= {str(p.relative_to(tmp_path).with_suffix("")): p for p in tmp_path.rglob("*.md")}

    def walk(docname: str) -> list[str]:  # the sidebar: toctrees from the root, depth first
        found = [docname]
        for entry in _toctree_entries(sources[docname].read_text()):
            found += walk(posixpath.normpath(posixpath.join(posixpath.dirname(docname), entry)))
        return found

    sidebar = walk("index")
    theorems = [name.split("/")[-1] for name in sidebar if name.startswith("theorems/")
                and name != "theorems/index"]
    assert theorems == registry.ids()  # each once, in the papers' order
    assert _toctree_entries((tmp_path / "theorems" / "index.md").read_text()) == []
    assert sidebar.count("theorems/index") == 1 and len(sidebar) == len(set(sidebar))


# ----------------------------------------------------------------------------- Python guide


def test_the_python_guide_is_notebooks_that_fail_the_build_on_error():
    guide = DOCS / "python"
    notebooks = _toctree_entries((guide / "index.md").read_text())
    assert sorted(notebooks) == sorted(p.stem for p in guide.glob("*.md") if p.stem != "index")
    assert len(notebooks) >= 4
    for name in notebooks:
        text = (guide / f"{name}.md").read_text()
        assert text.startswith("---\njupytext:") and "name: python3" in text, name
        assert text.count("```{code-cell} ipython3") >= 2, name
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r"^nb_execution_raise_on_error = True$", conf, flags=re.M)
    assert re.search(r"^nb_execution_mode = \"(force|cache|auto)\"$", conf, flags=re.M)
    assert "python/index" in _toctree_entries((DOCS / "index.md").read_text())
    readme = (DOCS.parent / "README.md").read_text()
    section = readme.split("## Using it from Python", 1)[1].split("\n## ", 1)[0]
    assert "docs/python" in section


def test_getting_started_output_fits_100_columns():
    """The command's output shown on the page fits a narrow reader (``COLUMNS=100``), and the
    command honours ``COLUMNS`` when its output is not a terminal."""
    import os
    import subprocess
    import sys

    page = (DOCS / "getting-started.md").read_text()
    [shown] = re.findall(r"```text\n(.*?)```", page, flags=re.S)
    assert "markov-local-minima" in shown and max(map(len, shown.splitlines())) <= 100
    listing = subprocess.run([sys.executable, "-m", "verify", "--list"], capture_output=True,
                             text=True, env={**os.environ, "COLUMNS": "100"}, check=True)
    assert max(map(len, listing.stdout.splitlines())) <= 100
