"""Atomic writes: every file ``verify`` writes (reports, baselines, sweep tasks, captions)
appears whole or not at all; and the checks that an output directory can be made, before any
work and without creating it."""

from __future__ import annotations

import os
import stat
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


def directory_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an output directory, or None when it can; creates
    nothing (a request is validated before its directories are made).

    An existing ``path`` must be a writable directory; a missing one must lie below a writable
    directory (its nearest existing ancestor, where it would be created).

    Parameters
    ----------
    path : pathlib.Path
        The directory a command is asked to write into.

    Returns
    -------
    str or None
        The problem, readable after the path (``not a directory``, ``File name too long``).
    """
    for candidate in (path, *path.parents):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:  # a name too long, a file where a directory is expected
            return exc.strerror or str(exc)
        where = "" if candidate == path else f" ({candidate})"
        if not stat.S_ISDIR(mode):
            return f"not a directory{where}"
        if not os.access(candidate, os.W_OK | os.X_OK):
            return f"directory is not writable{where}"
        return None
    return None


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (re)written as a regular file, or None: it is one, or is absent.

    A directory, a device or a pipe in its place cannot be replaced by an atomic write.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if stat.S_ISREG(mode) else "not a regular file"
