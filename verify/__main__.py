"""``python -m verify``."""

from verify.cli import console

console()
