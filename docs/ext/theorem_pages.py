"""Sphinx extension: one page per registered theorem, written from the registry at build time.

Each page holds the statement, assumptions, parameters, the closed-form prediction rendered
with ``sympy.latex`` (symbolic and at the default point), the proof obligations and the numeric
checks with their tolerances and reasons (from the committed proof-regression baseline), the
exact ``verify`` command, and the figures of a fast run (``docs/figures``, written by
``verify --all --plots docs/figures``). It also writes the CLI reference from the argument
parser, so neither page can fall out of date.
"""

from __future__ import annotations

import re
from pathlib import Path

import theorems
from verify import baseline
from verify.cli import build_parser

DOCS = Path(__file__).resolve().parent.parent
#: Generated pages (git-ignored; rewritten on every build).
GENERATED = DOCS / "theorems"
FIGURES = DOCS / "figures"
#: Paper prefix of the theorem ids -> the hand-written page that introduces the paper.
PAPERS = {"markov": "markov", "ical": "ical", "topics": "topics", "ntp": "ntp"}


def _text(value: object) -> str:
    """Plain text safe in Markdown (no accidental emphasis or markup)."""
    return re.sub(r"([\\`*_{}\[\]<>|#])", r"\\\1", str(value))


def _math(latex: str) -> str:
    return f"\n$$\n{latex}\n$$\n"


def prediction_latex(theorem_id: str) -> dict[str, tuple[str, str]]:
    """``name -> (LaTeX of the closed form, LaTeX of its value at the default point)``."""
    theorem = theorems.get(theorem_id)
    records = baseline.closed_form_records(theorem.predict(theorem.resolve_params({})))
    return {name: (r["latex"], r["value_latex"]) for name, r in records.items()}


def _check_rows(record: dict) -> list[str]:
    rows = ["| kind | check | claim | tolerance | why this tolerance |", "|---|---|---|---|---|"]
    relation = {"~": "≈", "<=": "≤", ">=": "≥", "!~": "≠"}
    for check in record["checks"].values():
        tolerance = check.get("tolerance") or {}
        size = ""
        if tolerance and check["relation"] in ("~", "!~"):
            size = f"{tolerance['atol']:.2g}" + (f" + {tolerance['rtol']:.2g}·\\|x\\|"
                                                 if tolerance["rtol"] else "")
        predicted = check["predicted"]
        predicted = f"{predicted:.6g}" if isinstance(predicted, float) else predicted
        rows.append(f"| {check['kind']} | {_text(check['name'])} | "
                    f"{relation.get(check['relation'], '')} {_text(predicted)} | {size} | "
                    f"{_text(tolerance.get('reason', ''))} |")
    return rows


def theorem_page(theorem_id: str) -> str:
    """The MyST Markdown page of one theorem."""
    theorem = theorems.get(theorem_id)
    key, _, place = theorem.paper.partition(", ")
    paper_page = PAPERS.get(theorem_id.split("-")[0])
    lines = [
        f"({theorem_id})=",
        f"# {_text(theorem.title)}",
        "",
        f"`{theorem_id}` · {{cite:t}}`{key}`, {_text(place)} · {theorem.kind}",
        "",
        "The statement is the project's formulation of the paper's result"
        + (f" (see {{doc}}`../papers/{paper_page}`)." if paper_page else "."),
        "",
        "## Statement",
        "",
        theorem.statement,
        "",
        "## Assumptions",
        "",
        *[f"- {text}" for text in theorem.assumption_text],
        "",
        "## Parameters",
        "",
        "| name | kind | default | meaning |",
        "|---|---|---|---|",
        *[f"| `{p.name}` | {p.kind} | `{p.default}` | {_text(p.description)} |"
          for p in theorem.parameters],
        "",
        "## Prediction",
        "",
        "Closed forms in the theorem's symbols, then their exact value at the default "
        "parameters.",
        "",
    ]
    prediction = theorem.predict(theorem.resolve_params({}))
    for name, (symbolic, value) in prediction_latex(theorem_id).items():
        description = prediction.descriptions.get(name, "")
        lines += [f"**{_text(name)}**" + (f": {_text(description)}" if description else ""),
                  _math(symbolic)]
        if value != symbolic:
            lines += ["At the default parameters:", _math(value)]
    record = baseline.load(theorem_id)
    lines += ["## Proof obligations", ""]
    if record is None:
        lines += [f"No baseline recorded yet: run `verify --theorem {theorem_id} "
                  "--update-baseline`.", ""]
    else:
        lines += ["Checked exactly by sympy at the default parameters (from the committed "
                  "proof-regression baseline):", ""]
        lines += [f"- {'✓' if holds else '✗'} {_text(name)}"
                  for name, holds in record["obligations"].items()]
        lines += ["", "## Bridge, training and control checks", "",
                  "What the numeric side measures (fast budget), against which prediction, "
                  "and with which tolerance and why:", "", *_check_rows(record), ""]
    lines += ["## Run it", "", "```bash", f"verify --theorem {theorem_id}",
              f"verify --theorem {theorem_id} --budget full --device cuda --json report.json",
              "```", ""]
    figures = sorted(FIGURES.glob(f"{theorem_id}-*.png"))
    if figures:
        lines += ["## Figures (fast budget)", ""]
        lines += [f"![{theorem_id} figure {i}](../figures/{path.name})" + "\n"
                  for i, path in enumerate(figures)]
    return "\n".join(lines) + "\n"


def write_pages(app=None) -> list[Path]:
    """Write every theorem page, the theorem index and the CLI help (``builder-inited``)."""
    GENERATED.mkdir(exist_ok=True)
    written = []
    for theorem_id in theorems.ids():
        path = GENERATED / f"{theorem_id}.md"
        path.write_text(theorem_page(theorem_id))
        written.append(path)
    rows = ["| id | title | paper |", "|---|---|---|"]
    for theorem_id in theorems.ids():
        theorem = theorems.get(theorem_id)
        rows.append(f"| {{doc}}`{theorem_id}` | {_text(theorem.title)} | "
                    f"{_text(theorem.paper)} |")
    index = ["# Theorems", "", "Every registered theorem, generated from the registry.", "",
             *rows, "", "```{toctree}", ":hidden:", "", *theorems.ids(), "```", ""]
    (GENERATED / "index.md").write_text("\n".join(index))
    help_text = build_parser().format_help()
    (GENERATED / "cli-help.txt").write_text(help_text)
    return written


def setup(app) -> dict:
    """Register the page writer with Sphinx."""
    app.connect("builder-inited", write_pages)
    return {"version": "1", "parallel_read_safe": True}
