"""Atomic writes: every file ``verify`` writes (reports, baselines, sweep tasks, captions)
appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, then a rename, so that an
    interrupted or failed write never leaves a truncated file (the temporary one is removed).

    Raises
    ------
    OSError
        When the file cannot be written (disk full, permission); ``path`` is then unchanged.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
