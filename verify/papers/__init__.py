"""The built-in papers, in the order the docs and ``verify --list`` show them.

This tuple is declared under the ``transformer_theorems.papers`` entry-point group in
``pyproject.toml``, like any plugin's papers; adding a built-in paper is its modules plus one
line here.
"""

from verify.papers.ical import PAPER as ICAL
from verify.papers.markov import PAPER as MARKOV
from verify.papers.ntp import PAPER as NTP
from verify.papers.topics import PAPER as TOPICS

PAPERS = (MARKOV, ICAL, TOPICS, NTP)

__all__ = ["ICAL", "MARKOV", "NTP", "PAPERS", "TOPICS"]
