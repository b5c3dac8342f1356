"""Fixtures shared by the test modules; the helpers they use are in the `helpers` package."""

from __future__ import annotations

import pytest

from helpers import compose_cfg


@pytest.fixture
def tiny_cfg():
    """compose_cfg: run.py's config cut down to a seconds-long CPU run (TINY_RUN), plus overrides."""
    return compose_cfg
