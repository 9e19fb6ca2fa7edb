"""Type checks of config and card values that every pre-flight check shares."""

from __future__ import annotations

import math
import numbers
from typing import Any


def is_finite_number(value: Any) -> bool:
    """A finite real number (an int or a float, numpy's included; not a bool, not a string)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def is_count(value: Any, low: int = 1) -> bool:
    """An ``int`` (not a bool, not an integral float) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low
