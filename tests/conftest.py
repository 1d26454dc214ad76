"""Shared fixtures and the hypothesis profile (torch and sympy calls trip per-example deadlines)."""

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=12)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")
