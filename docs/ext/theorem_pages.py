"""Sphinx extension: a page per registered paper and per theorem, written from the registry.

Every installed paper (built-in or from a plugin package, see :mod:`verify.registry`) gets a
page from its :class:`~verify.records.Paper` record (citation, arXiv link, setting, its
theorems in the paper's order) and its BibTeX entry in the generated bibliography. Each theorem
page holds the statement, assumptions, parameters, the closed-form prediction rendered with
``sympy.latex`` (symbolic and at the default point), the proof obligations and the numeric
checks with their tolerances and reasons (from the paper's committed proof-regression
baseline), the exact ``verify`` command, and the figures of a fast run (``docs/figures``,
written by ``verify --all --plots docs/figures``). It also writes the CLI reference from the
argument parser and the "Citing" page (the tool's BibTeX from ``CITATION.cff``, every paper's
from its record), so no page can fall out of date, and no paper needs a hand-written page.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path

from verify import baseline
from verify.cli import build_parser
from verify.harness import estimated_seconds, prediction_record
from verify.records import BUDGETS, SCHEMA_VERSION, Relation
from verify.registry import Registry, default

DOCS = Path(__file__).resolve().parent.parent
#: Generated theorem pages (git-ignored; rewritten on every build).
GENERATED = DOCS / "theorems"
#: Generated paper pages and the papers' bibliography (git-ignored).
PAPER_PAGES = DOCS / "papers"
FIGURES = DOCS / "figures"


def _text(value: object) -> str:
    """Plain text safe in Markdown (no accidental emphasis or markup)."""
    return re.sub(r"([\\`*_{}\[\]<>|#])", r"\\\1", str(value))


def _math(latex: str) -> str:
    return f"\n$$\n{latex}\n$$\n"


def prediction_latex(theorem_id: str, registry: Registry | None = None
                     ) -> dict[str, tuple[str, str]]:
    """``name -> (LaTeX of the closed form, LaTeX of its value at the default point)``."""
    return {name: (r["latex"], r["value_latex"])
            for name, r in _default_prediction(theorem_id, registry).items()}


def _default_prediction(theorem_id: str, registry: Registry | None) -> dict[str, dict]:
    """The prediction's records (:func:`verify.harness.prediction_record`) at the defaults."""
    theorem = (registry or default()).theorem(theorem_id)
    return prediction_record(theorem.predict(theorem.resolve_params({})))


#: The order in which a theorem page lists its checks, grouped by kind.
KIND_ORDER = ("bridge", "training", "guard", "control")


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _measured(check: dict) -> str:
    """The measured value, and the range over seeds where several were measured."""
    text = _number(check["measured"])
    seeds = [x for x in check.get("per_seed") or [] if isinstance(x, int | float)]
    if len(seeds) > 1:
        text += f" (seeds: {_number(min(seeds))} to {_number(max(seeds))})"
    return text


def _check_rows(record: dict) -> list[str]:
    rows = ["| kind | check | claim | measured | result | tolerance | why this tolerance |",
            "|---|---|---|---|---|---|---|"]
    checks = sorted(record["checks"].values(), key=lambda c: (
        KIND_ORDER.index(c["kind"]) if c["kind"] in KIND_ORDER else len(KIND_ORDER)))
    for check in checks:
        tolerance = check.get("tolerance") or {}
        relation = Relation(check["relation"])
        size = ""
        if tolerance and relation.uses_tolerance_size:
            size = f"{tolerance['atol']:.2g}" + (f" + {tolerance['rtol']:.2g}·\\|x\\|"
                                                 if tolerance["rtol"] else "")
        rows.append(f"| {check['kind']} | {_text(check['name'])} | "
                    f"{relation.symbol} {_text(_number(check['predicted']))} | "
                    f"{_text(_measured(check))} | {'pass' if check['passed'] else 'FAIL'} | "
                    f"{size} | {_text(tolerance.get('reason', ''))} |")
    return rows


def _recorded(record: dict) -> str:
    """Where a baseline was recorded: its budget, the git revision and the run's wall time."""
    recorded = record["recorded"]
    revision = recorded["revision"]
    if revision is None:
        revision = "outside a git checkout"
    elif revision.endswith("+dirty"):
        revision = (f"on top of revision `{revision.removesuffix('+dirty')[:12]}` plus the "
                    "changes committed with the baseline")
    else:
        revision = f"at revision `{revision[:12]}`"
    return (f"the committed baseline, {record['budget']} budget, recorded in "
            f"{recorded['seconds']:.0f} s {revision}")


def _obligation_rows(record: dict) -> list[str]:
    """The obligations in the order the proof checks them: claim, result and method."""
    rows = ["| # | obligation | claim | holds | decided |", "|---|---|---|---|---|"]
    for ob in sorted(record["obligations"].values(), key=lambda ob: ob["order"]):
        rows.append(f"| {ob['order'] + 1} | {_text(ob['name'])} | {_text(_short(ob['claim']))} "
                    f"| {'✓' if ob['holds'] else '✗ FAILS'} | {_text(ob['method'])} |")
    return rows


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _attributes(config: object) -> dict[str, str]:
    """``field -> meaning`` from the ``Attributes`` section of a budget dataclass's docstring
    (NumPy style: ``name : type`` then indented lines)."""
    meanings: dict[str, str] = {}
    current = None
    for line in inspect.cleandoc(type(config).__doc__ or "").splitlines():
        if match := re.fullmatch(r"(\w+(?:, \w+)*) : .*", line):
            current = match.group(1).split(", ")
            for name in current:
                meanings[name] = ""
        elif current and line.startswith("    "):
            for name in current:
                meanings[name] = (meanings[name] + " " + line.strip()).strip()
        else:
            current = None
    return meanings


def _setup_rows(theorem_id: str, registry: Registry) -> list[str]:
    """Per budget: the parameter defaults, the seeds and the experiment's sizes."""
    entry, experiment = registry.entry(theorem_id), registry.experiment(theorem_id)
    budgets = experiment.budgets
    rows = ["| | " + " | ".join(f"`--budget {b}`" for b in BUDGETS) + " | meaning |",
            "|---|" + "---|" * len(BUDGETS) + "---|",
            "| seeds | " + " | ".join(str(entry.default_seeds(b)) for b in BUDGETS)
            + " | training runs, each from its own seed |"]
    theorem = entry.theorem
    for parameter in theorem.parameters:
        values = [entry.budget_defaults(b).get(parameter.name, str(parameter.default))
                  for b in BUDGETS]
        if len(set(values)) > 1:
            rows.append(f"| `{parameter.name}` | " + " | ".join(f"`{v}`" for v in values)
                        + f" | {_text(parameter.description)} |")
    if BUDGETS[0] not in budgets:
        return [*rows, "", "The experiment declares no sizes per budget."]
    meanings = _attributes(budgets[BUDGETS[0]])
    for name in (f.name for f in fields(budgets[BUDGETS[0]])):
        values = [_setting(getattr(budgets[b], name)) if b in budgets else "" for b in BUDGETS]
        rows.append(f"| `{name}` | " + " | ".join(values)
                    + f" | {_text(meanings.get(name, ''))} |")
    return rows


def _setting(value: object) -> str:
    text = str(value).removeprefix("torch.")
    return f"`{text}`"


def _run_time(theorem_id: str, record: dict | None, registry: Registry) -> list[str]:
    """Expected wall time: the baseline's measured run (fast) and the paper's cost model for
    the full budget at its defaults."""
    entry = registry.entry(theorem_id)
    params = entry.theorem.resolve_params(entry.budget_defaults("full"))
    seconds = estimated_seconds(entry, params, "full", entry.default_seeds("full"))
    lines = []
    if record is not None:
        lines.append(f"Run time: {record['recorded']['seconds']:.0f} s in the fast budget "
                     "(measured when the baseline was recorded, 2-core CPU)")
    if seconds:
        lines.append(f"about {_duration(seconds)} in the full budget (the paper's cost model, "
                     "calibrated on a 2-core CPU; a GPU is faster).")
    return ["; ".join(lines) + ("." if lines and not seconds else "")] if lines else []


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def theorem_page(theorem_id: str, registry: Registry | None = None) -> str:
    """The MyST Markdown page of one theorem."""
    reg = registry or default()
    theorem, paper = reg.theorem(theorem_id), reg.paper_of(theorem_id)
    _, _, place = theorem.paper.partition(", ")
    lines = [
        f"({theorem_id})=",
        f"# {_text(theorem.title)}",
        "",
        f"`{theorem_id}` · {{cite:t}}`{paper.key}`, {_text(place)} · {theorem.kind}",
        "",
        "The statement is the project's formulation of the paper's result "
        f"(see {{doc}}`../papers/{paper.prefix}`).",
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
    for name, record in _default_prediction(theorem_id, reg).items():
        symbolic, value, description = record["latex"], record["value_latex"], record[
            "description"]
        lines += [f"**{_text(name)}**" + (f": {_text(description)}" if description else ""),
                  _math(symbolic)]
        if value != symbolic:
            lines += ["At the default parameters:", _math(value)]
    record = baseline.load(theorem_id, paper.baselines) if paper.baselines else None
    lines += ["## Proof obligations", ""]
    if record is None or record.get("schema_version") != SCHEMA_VERSION:
        state = "recorded yet" if record is None else "in the current layout"
        lines += [f"No baseline {state}: run `verify --theorem {theorem_id} "
                  "--update-baseline`.", ""]
        record = None
    else:
        lines += [f"Checked exactly by sympy, in the proof's order ({_recorded(record)}):", "",
                  *_obligation_rows(record), ""]
        params = ", ".join(f"{k} = {v}" for k, v in record["params"].items())
        lines += ["## Bridge, training and control checks", "",
                  "What the numeric side measures, against which prediction, with which "
                  "tolerance and why, and what the committed baseline measured (the "
                  f"{record['budget']} budget, at {_text(params)}, seeds "
                  f"{_text(record['seeds'])}), grouped by kind:", "", *_check_rows(record), ""]
    lines += ["## Training setup", "", *_setup_rows(theorem_id, reg), "",
              "## Run it", "", *_run_time(theorem_id, record, reg), "", "```bash",
              f"verify --theorem {theorem_id}",
              f"verify --theorem {theorem_id} --budget full --device cuda --json report.json",
              "```", ""]
    lines += _figures(theorem_id)
    return "\n".join(lines) + "\n"


def _figures(theorem_id: str) -> list[str]:
    """The committed figures of a fast run, in order, each with the caption written next to it
    (``<id>-<i>.txt``, see :func:`verify.figures.draw_curves`)."""
    pattern = re.compile(rf"{re.escape(theorem_id)}-(\d+)\.png")
    found = {int(m.group(1)): path for path in FIGURES.glob(f"{theorem_id}-*.png")
             if (m := pattern.fullmatch(path.name))}
    if not found:
        return []
    lines = ["## Figures (fast budget)", ""]
    for index in sorted(found):
        path = found[index]
        caption = path.with_suffix(".txt")
        text = caption.read_text(encoding="utf-8").strip() if caption.exists() else ""
        lines += [f"```{{figure}} ../figures/{path.name}", f":alt: {theorem_id} figure {index}",
                  "", _text(text), "```", ""]
    return lines


def _cell(row: str) -> str:
    """A table row whose LaTeX norms (``\\|``) survive the table's own ``|`` syntax."""
    return row.replace("\\|", "\\Vert ")


def paper_page(prefix: str, registry: Registry | None = None) -> str:
    """The MyST Markdown page of the paper with id prefix ``prefix``."""
    reg = registry or default()
    paper = next(p for p in reg.papers() if p.prefix == prefix)
    link = f" · [arXiv:{paper.arxiv}]({paper.url})" if paper.url else ""
    lines = [f"# {_text(paper.title)}", "",
             f"{_text(', '.join(paper.authors))} ({paper.year}){link}", "",
             paper.setting.strip(), ""]
    if paper.notation:
        lines += ["## Notation", "", "| symbol | meaning |", "|---|---|",
                  *[_cell(f"| ${symbol}$ | {meaning} |") for symbol, meaning in paper.notation],
                  ""]
    lines += ["## Theorems", "", "```{toctree}", ":maxdepth: 1", "",
              *[f"../theorems/{entry.theorem.id}" for entry in paper.theorems], "```", ""]
    return "\n".join(lines)


#: The tool's citation metadata (the repository root's ``CITATION.cff``).
CITATION = DOCS.parent / "CITATION.cff"


def tool_bibtex(citation: Path = CITATION) -> str:
    """BibTeX of the tool, from ``CITATION.cff`` (title, version, year, authors, license)."""
    import yaml

    record = yaml.safe_load(citation.read_text())
    authors = " and ".join("{" + a["name"] + "}" if "name" in a
                           else f"{a['family-names']}, {a['given-names']}"
                           for a in record["authors"])
    return "\n".join([
        "@software{transformer_theorems,",
        f"  author  = {{{authors}}},",
        f"  title   = {{{record['title']}}},",
        f"  version = {{{record['version']}}},",
        f"  year    = {{{str(record['date-released'])[:4]}}},",
        f"  license = {{{record['license']}}},",
        "}"])


def citing_page(registry: Registry | None = None) -> str:
    """The "Citing" page: the tool's BibTeX and every registered paper's."""
    reg = registry or default()
    lines = ["# Citing", "",
             "If you use transformer-theorems, cite the tool (`CITATION.cff` in the repository "
             "holds the same record) and the papers whose theorems you checked.", "",
             "## The tool", "", "```bibtex", tool_bibtex(), "```", "", "## The papers", ""]
    for paper in reg.papers():
        lines += [f"### {_text(paper.title)}", "", "Theorems: "
                  + ", ".join(f"`{entry.theorem.id}`" for entry in paper.theorems), "",
                  "```bibtex", paper.bibtex.strip(), "```", ""]
    return "\n".join(lines)


def bibliography(registry: Registry | None = None) -> str:
    """Every registered paper's BibTeX entry."""
    return "\n\n".join(p.bibtex.strip() for p in (registry or default()).papers()) + "\n"


def write_bibliography(registry: Registry | None = None) -> Path:
    """Write the papers' bibliography (``conf.py`` calls this before Sphinx reads it)."""
    PAPER_PAGES.mkdir(exist_ok=True)
    path = PAPER_PAGES / "papers.bib"
    path.write_text(bibliography(registry))
    return path


def write_pages(app=None, registry: Registry | None = None) -> list[Path]:
    """Write every paper and theorem page, both indexes and the CLI help (``builder-inited``)."""
    reg = registry or default()
    GENERATED.mkdir(exist_ok=True)
    PAPER_PAGES.mkdir(exist_ok=True)
    written = []
    for theorem_id in reg.ids():
        path = GENERATED / f"{theorem_id}.md"
        path.write_text(theorem_page(theorem_id, reg))
        written.append(path)
    for paper in reg.papers():
        (PAPER_PAGES / f"{paper.prefix}.md").write_text(paper_page(paper.prefix, reg))
    papers_index = ["# Papers", "", "Every installed paper (built-in or from a theorem package), "
                    "generated from the registry.", "", "```{toctree}", ":maxdepth: 2", "",
                    *[p.prefix for p in reg.papers()], "```", ""]
    (PAPER_PAGES / "index.md").write_text("\n".join(papers_index))
    (PAPER_PAGES / "citing.md").write_text(citing_page(reg))
    rows = ["| id | kind | claim | paper | committed baseline (fast budget) |",
            "|---|---|---|---|---|"]
    for theorem_id in reg.ids():
        theorem, paper = reg.theorem(theorem_id), reg.paper_of(theorem_id)
        rows.append(f"| [`{theorem_id}`]({theorem_id}.md) | {theorem.kind} | "
                    f"{_text(theorem.title)} | {_text(_short_authors(paper))} "
                    f"({paper.year}) | {_status(theorem_id, reg)} |")
    index = ["# Theorems", "", "Every registered theorem in its paper's order, generated from "
             "the registry; the status is that of the committed proof-regression baseline.", "",
             *rows, ""]
    (GENERATED / "index.md").write_text("\n".join(index))
    help_text = build_parser().format_help()
    (GENERATED / "cli-help.txt").write_text(help_text)
    return written


def _short_authors(paper) -> str:
    """The first author's family name, with "et al." when there are more."""
    first = paper.authors[0].split()[-1] if paper.authors else paper.key
    return first + (" et al." if len(paper.authors) > 1 else "")


def _status(theorem_id: str, registry: Registry) -> str:
    """``all N checks pass`` (obligations included) from the committed baseline, or which
    fail; ``no baseline`` when none is committed."""
    directory = registry.paper_of(theorem_id).baselines
    record = baseline.load(theorem_id, directory) if directory else None
    if record is None:
        return "no baseline"
    results = ([c["passed"] for c in record["checks"].values()]
               + [o["holds"] for o in record["obligations"].values()])
    failing = results.count(False)
    return (f"all {len(results)} checks pass" if not failing
            else f"{failing} of {len(results)} checks fail")


def setup(app) -> dict:
    """Register the page writer with Sphinx."""
    app.connect("builder-inited", write_pages)
    return {"version": "2", "parallel_read_safe": True}
