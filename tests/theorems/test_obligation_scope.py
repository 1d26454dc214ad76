"""Every obligation says truthfully where it was decided (issue: obligations reported at
parameters they were not checked at): its method line names exactly the symbols substituted
and the sizes its objects were built at, and where those sizes are not the requested ones the
verdict says so in a separate note, with the reason."""

from __future__ import annotations

import re

import pytest

from verify import registry
from verify.harness import scope_notes

#: A size the defaults do not use, per theorem (inside every assumption).
OTHER_SIZES = {
    "markov-global-minima": {"d": "5"}, "markov-local-minima": {"d": "5"},
    "markov-saddle-untied": {"d": "5"}, "markov-tied-saddle": {"d": "5"},
    "markov-depth-escape": {"d": "5", "layers": "3"},
    "markov-higher-order": {"k": "3", "kernel_seed": "4"},
    "ical-one-step-gd": {"d": "4", "T": "6"}, "ical-unitary-global-minima": {"d": "5", "H": "3",
                                                                             "T": "6"},
    "ical-orthogonal-heads": {"d": "3", "T": "6"}, "ical-pe-trigonometric": {"d": "6", "T": "6"},
    "ical-non-commuting": {"d": "9", "T": "5"},
    "ntp-ffn-max-margin": {"K": "9"}, "ntp-attention-max-margin": {"K": "9"},
    "ntp-loss-linear-rate": {"K": "9"}, "ntp-dataset-shift": {"K": "9"},
    "topics-value-block-structure": {"T": "5", "v": "4"},
    "topics-embedding-block-structure": {"T": "5", "v": "4"},
    "topics-attention-structure": {"T": "5", "v": "4"},
    "topics-two-stage-dynamics": {"T": "5", "v": "4"},
    "topics-wikipedia": {"topics": "12"},
    "ridge-gd-optimum": {"d": "4"},
}


def _cases():
    for theorem_id in registry.ids():
        yield theorem_id, {}
        yield theorem_id, OTHER_SIZES[theorem_id]


@pytest.mark.parametrize(("theorem_id", "overrides"), list(_cases()))
def test_method_lines_name_what_was_substituted(theorem_id, overrides):
    theorem = registry.theorem(theorem_id)
    params = theorem.resolve_params(overrides)
    assert not theorem.assumptions(params), theorem.assumptions(params)
    obligations = theorem.proof(params)
    notes = scope_notes(obligations, params)
    for obligation in obligations:
        result = obligation.check()
        assert result.holds, (obligation.name, result.value)
        substituted = obligation.substituted()
        named = dict(re.findall(r"(\w+)=([^,\s)]+)", result.method.split(", built at")[0]))
        if result.method.startswith("exact at"):
            assert named == {str(s): str(v) for s, v in substituted.items()}, result.method
            assert all(s in obligation.free_symbols() for s in substituted)
        built = dict(re.findall(r"(\w+)=(\d+)", result.method.partition("built at ")[2]))
        assert built == {k: str(v) for k, v in obligation.sizes.items()}, result.method
        differs = {k for k, v in obligation.sizes.items()
                   if k in params and str(params[k]) != str(v)}
        if differs:
            assert obligation.scope, f"{obligation.name}: built at other sizes without a reason"
            assert any(obligation.name in note and obligation.scope in note for note in notes)


def test_requested_sizes_are_used_where_they_are_cheap():
    """At the ICAL defaults nothing is built at other sizes; above the caps it is said."""
    for theorem_id in ("ical-one-step-gd", "ical-unitary-global-minima",
                       "ical-pe-trigonometric"):
        theorem = registry.theorem(theorem_id)
        params = theorem.default_params()
        assert scope_notes(theorem.proof(params), params) == [], theorem_id
    gd = registry.theorem("ical-one-step-gd")
    params = gd.resolve_params({"d": "5", "T": "9"})
    assert scope_notes(gd.proof(params), params)
