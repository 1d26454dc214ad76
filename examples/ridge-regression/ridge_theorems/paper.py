"""The registration of the example paper: one :class:`~verify.records.Paper` record."""

from pathlib import Path

from ridge_theorems import theorem
from verify.records import Paper, TheoremEntry

PAPER = Paper(
    key="hoerl1970ridge",
    title="Ridge Regression: Biased Estimation for Nonorthogonal Problems",
    authors=("Arthur E. Hoerl", "Robert W. Kennard"),
    year=1970,
    arxiv="",
    prefix="ridge",
    setting=r"""
An example theorem package (not a transformer paper): a linear model trained by gradient descent
on the ridge-regression loss $L(w) = \frac{1}{2n}\|Xw - y\|^2 + \frac{\lambda}{2}\|w\|^2$ over a
fixed integer design. The closed-form minimiser, the obligations (stationarity for every
$\lambda$, strict convexity), the bridge, the training check and the control are what every
theorem in this tool has; the package shows how a paper is shipped from outside the tree.
""",
    theorems=(
        TheoremEntry(theorem.GD_OPTIMUM, "ridge_theorems.experiment:GD_OPTIMUM",
                     seeds={"fast": 1, "full": 1}),
    ),
    bibtex=r"""
@article{hoerl1970ridge,
  author  = {Hoerl, Arthur E. and Kennard, Robert W.},
  title   = {Ridge Regression: Biased Estimation for Nonorthogonal Problems},
  journal = {Technometrics},
  volume  = {12},
  number  = {1},
  pages   = {55--67},
  year    = {1970}
}
""",
    baselines=Path(__file__).resolve().parent / "baselines",
    notation=(
        (r"X, y", "the fixed integer design ($n \\times d$) and its targets"),
        (r"n, d", "number of samples and of features"),
        (r"w", "the weights; $w^*$ the minimiser"),
        (r"\lambda", "the ridge penalty"),
        (r"\beta", "smoothness constant of $L$ (largest Hessian eigenvalue): GD steps $1/\\beta$"),
    ),
)
