"""Whether they agree: the harness, the experiments table, reports and the ``verify`` CLI."""
