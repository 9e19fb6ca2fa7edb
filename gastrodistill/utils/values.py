"""Type checks of config and card values that every pre-flight check shares."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any


def is_finite_number(value: Any) -> bool:
    """A finite real number (an int or a float, numpy's included; not a bool, not a string)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def is_count(value: Any, low: int = 1) -> bool:
    """An ``int`` (not a bool, not an integral float) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_switch(value: Any, key: str, error: type[Exception] = ValueError) -> bool:
    """``value`` when it is a bool; else raise ``error("<key> must be true or false, got <value>")``. Hydra
    keeps ``no``, ``off`` or ``maybe`` as strings, which ``bool()`` reads as true."""
    if not isinstance(value, bool):
        raise error(f"{key} must be true or false, got {value!r}")
    return value


def listed(value: Any, one: type | tuple[type, ...]) -> list[Any]:
    """A setting that takes one value or a list of them (``stages=distill`` or ``stages=[distill,evaluate]``)
    as a list: ``value`` itself in a list of one when it is an instance of ``one`` (a string is one name,
    not its letters), else ``list(value)``. The checks and the stages read ``stages``,
    ``reproduce.distill_modes``, ``audit.nearest.flag_spaces`` and ``audit.membership.fprs`` through it
    alike."""
    return [value] if isinstance(value, one) else list(value)


def hydra_quoted(text: str) -> str:
    """``text`` as a double-quoted string of Hydra's override grammar (its ``"`` escaped), which reads
    spaces, commas, brackets and characters outside ASCII that the unquoted grammar does not."""
    return '"' + str(text).replace('"', '\\"') + '"'


def omegaconf_literal(text: str) -> str:
    """``text`` as an OmegaConf string value that reads back as ``text`` itself: each ``${`` escaped, with
    the backslashes before it doubled (OmegaConf reads ``\\${`` as an escaped backslash and then an
    interpolation), so that a path such as ``/tmp/x${oc.env:HOME}`` is not resolved."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", str(text))


def human_bytes(n: float, iec: bool = False) -> str:
    """``n`` bytes as text in powers of 1024: ``480.9 KB`` (the results table's labels), or with
    ``iec=True`` the IEC labels ``16.3 TiB`` (memory messages)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB") if iec else ("B", "KB", "MB", "GB", "TB")
    for unit in units:
        if n < 1024 or unit == units[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable: the last unit returns")  # pragma: no cover
