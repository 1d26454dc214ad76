"""The example plugin's experiment (``examples/ridge-regression``) at a rank-deficient design."""

import verify


def test_the_contraction_bound_uses_the_curvature_where_gradient_descent_moves():
    """d = 6 > rank X = 3: on the whole space the smallest Hessian eigenvalue is lambda itself,
    and at lambda = 1/1000 its contraction bound was 0.07 while the run reached
    w* to round-off; on the row space of X, where the run and w* lie, the bound is below the
    training tolerance."""
    result = verify.check("ridge-gd-optimum", lam="1/1000", n=40, d=6, device="cpu")
    checks = {check.key: check for check in result.checks}
    assert result.passed, [check.name for check in result.checks if not check.passed]
    assert checks["gd-contraction-bound"].measured <= 1e-10
    assert checks["gd-reaches-w-star"].measured <= 1e-12
