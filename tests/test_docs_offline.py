"""The built docs load nothing from outside the site: formulas render with no network.

Builds the HTML (about 20 s; needs the docs extra, which CI installs) and reads every page's
``<script src>``, ``<img src>`` and stylesheet ``<link href>``: each must be a file of the site
itself, and the MathJax the pages load must be among them. The "Using it from Python" notebooks
are built without running them here (``nb_execution_mode=off``); CI's own ``sphinx-build -W``
runs them.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXTERNAL = re.compile(r"^(?:[a-z]+:)?//", re.IGNORECASE)


def _resources(html: str) -> list[str]:
    scripts = re.findall(r"<(?:script|img)\b[^>]*\bsrc=\"([^\"]+)\"", html)
    styles = [href for tag in re.findall(r"<link\b[^>]*>", html)
              if "stylesheet" in tag for href in re.findall(r"\bhref=\"([^\"]+)\"", tag)]
    return scripts + styles


def test_every_page_loads_only_files_of_the_site(tmp_path):
    if any(importlib.util.find_spec(name) is None
           for name in ("sphinx", "sphinx-mathjax-offline", "myst_nb")):
        pytest.skip("the docs extra is not installed (CI installs it)")
    out = tmp_path / "html"  # a separate process: Sphinx's own warning filters, as in CI
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                            "html", "-D", "nb_execution_mode=off", str(DOCS), str(out)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 20
    notebooks = {p.stem for p in (DOCS / "python").glob("*.md")}
    assert notebooks and notebooks <= {p.stem for p in (out / "python").glob("*.html")}
    mathjax = 0
    for page in pages:
        for resource in _resources(page.read_text()):
            assert not EXTERNAL.match(resource), f"{page.relative_to(out)} loads {resource}"
            local = (page.parent / resource.split("?")[0]).resolve()
            assert local.is_file(), f"{page.relative_to(out)}: {resource} is not in the site"
            mathjax += "mathjax" in resource.lower()
    assert mathjax > 0, "no page loads MathJax"


def test_the_resource_reader_sees_a_cdn_script():
    html = ('<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js">'
            '</script><link rel="stylesheet" href="//fonts.example/x.css">'
            '<img alt="" src="https://example.org/plot.png">')
    assert all(EXTERNAL.match(r) for r in _resources(html)) and len(_resources(html)) == 3
