"""Fixtures: tiny gastric data sets in tmp_path (helpers in gastric_testdata.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gastric_testdata import make_data


@pytest.fixture
def data_root(tmp_path) -> Path:
    return make_data(tmp_path / "data")


@pytest.fixture
def make_root(tmp_path) -> Callable[..., Path]:
    def _make(name: str = "data", **kw) -> Path:
        return make_data(tmp_path / name, **kw)

    return _make
