"""The mutation suite's report: kill rate per layer, and every survivor with its reason."""

from __future__ import annotations

from collections import Counter

from tests.mutation.mutants import OUTCOMES, Outcome


def kill_rates(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    """Per layer (and ``all``): killed and judged mutants, equivalent ones left out."""
    judged = [o for o in outcomes if o.status != "equivalent"]
    rates = {}
    for layer in sorted({o.layer for o in judged}) + ["all"]:
        mine = [o for o in judged if layer in ("all", o.layer)]
        rates[layer] = (sum(o.status == "killed" for o in mine), len(mine))
    return rates


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not OUTCOMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("mutation suite")
    for layer, (killed, total) in kill_rates(OUTCOMES).items():
        write(f"{layer:>13}: {killed}/{total} killed ({killed / max(total, 1):.0%})")
    counts = Counter(o.status for o in OUTCOMES)
    write(f"equivalent mutants (cannot change any result): {counts['equivalent']}")
    for outcome in OUTCOMES:
        if outcome.status != "killed":
            write(f"  {outcome.status}: [{outcome.layer}] {outcome.theorem_id}: "
                  f"{outcome.mutant} -- {outcome.by}")
