"""ICAL closed forms and obligations (Sander et al., 2024)."""

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.data.orthogonal import sample_rotation_sequences
from numerics.device import generator
from theorems import ical
from verify import registry

ICAL_IDS = [i for i in registry.ids() if i.startswith("ical-")]


def test_the_ical_theorems_and_empirical_claims_are_registered():
    kinds = {theorem_id: registry.theorem(theorem_id).kind for theorem_id in ICAL_IDS}
    assert kinds == {"ical-one-step-gd": "theorem", "ical-unitary-global-minima": "theorem",
                     "ical-orthogonal-heads": "theorem", "ical-pe-trigonometric": "theorem",
                     "ical-non-commuting": "empirical"}


@pytest.mark.parametrize("d", [2, 3, 5])
def test_only_multiples_of_the_identity_commute_with_the_orthogonal_group(d):
    """The non-commuting claim's symmetry argument: the generators' commutant is {c I}; the
    rotation generators alone (no reflection) leave more in d = 2 (the rotations themselves)."""
    assert ical._commutant_dimension(d) == 1
    generators = ical._orthogonal_generators(d)
    assert all((G.T * G - sp.eye(d)).is_zero_matrix for G in generators)
    if d == 2:
        X = sp.Matrix(2, 2, sp.symbols("a b c e"))
        rotation = generators[0]
        system, _ = sp.linear_eq_to_matrix(list(rotation * X - X * rotation), list(X))
        assert 4 - system.rank() == 2


@settings(max_examples=8)
@given(d=st.integers(1, 4), heads=st.integers(1, 5), T=st.integers(2, 4))
def test_obligations_hold_on_admissible_sizes(d, heads, T):
    for theorem_id in ICAL_IDS:
        theorem = registry.theorem(theorem_id)
        overrides = {"d": d, "T": T} | ({"H": heads} if "H" in theorem.default_params() else {})
        params = theorem.resolve_params(overrides)
        if theorem.assumptions(params):
            continue
        assert all(ob.check().holds for ob in theorem.proof(params)), (theorem_id, params)


def test_moment_lemma_bookkeeping():
    """E|e^{i l} + 2|^2 = 1 + 4; E|e^{i l} - e^{i l}|^2 = 0 (same frequency cancels)."""
    assert ical.expected_squared_error([((1,), 1), ((0,), 2)]) == 5
    assert ical.expected_squared_error([((1,), 1), ((1,), -1)]) == 0


def test_reference_code_formula_is_wrong_where_the_spec_says():
    """Spec: 93.27 (reference code) vs 71.59 (true) at d=3, T=4, p_(T-1)=2 for some C; here the
    difference is exactly p_(T-1)^2 ||C||_F^2 for every C, p."""
    C, p = ical.coupling_matrix(3), ical.position_weights(4)
    truth = ical.diagonal_head_loss(C, p, paired=False)
    assert sp.expand(ical.unitary_closed_form(C, p) - truth) == 0
    assert sp.expand(ical.reference_code_closed_form(C, p) - truth
                     - p[3] ** 2 * sum(x**2 for x in C)) == 0


def test_torch_and_sympy_share_the_complex_convention(cpu):
    """s_{t,j} = exp(i f_t,j . theta) with the frequencies of ical.Torus, for both data kinds."""
    for paired, random_phase in ((False, True), (True, False)):
        d, length = 4, 5
        s = sample_rotation_sequences(3, d, length, generator(cpu, 0), paired=paired,
                                      random_phase=random_phase)
        torus = ical.Torus(d, paired=paired, random_phase=random_phase)
        phases = torch.angle(s[:, 0])  # phi_j (0 without random phases)
        steps = torch.angle(s[:, 1] / s[:, 0])  # lambda_j
        angles = steps[:, ::2] if paired else steps
        theta = torch.cat((angles, phases), dim=1) if random_phase else angles
        for t in range(length):
            for j in range(d):
                f = torch.tensor(torus.entry(t, j), dtype=torch.float64)
                assert torch.allclose(s[:, t, j], torch.polar(torch.ones(3, dtype=torch.float64),
                                                              theta @ f), atol=1e-12)


@pytest.mark.parametrize(
    ("theorem_id", "overrides", "message"),
    [
        ("ical-pe-trigonometric", {"d": "3"}, "d must be even"),
        ("ical-pe-trigonometric", {"H": "4"}, "H < d is required"),
        ("ical-unitary-global-minima", {"H": "0"}, "H must be at least 1"),
        ("ical-one-step-gd", {"T": "1"}, "T must be at least 2"),
        ("ical-orthogonal-heads", {"d": "0"}, "d must be at least 1"),
    ],
)
def test_bad_sizes_are_readable_violations(theorem_id, overrides, message):
    theorem = registry.theorem(theorem_id)
    violations = theorem.assumptions(theorem.resolve_params(overrides))
    assert any(message in v for v in violations), violations
