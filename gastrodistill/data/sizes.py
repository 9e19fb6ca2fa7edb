"""Size config keys and the memory they cost: one reading of ``data.image_size``, ``data.storage_size``,
``data.patch_size`` and ``data.overlap`` for every data module, and a check, before anything is
allocated, that images resized to a size fit in memory.

A size may arrive as an int, as an integral float, or as text (``${oc.env:IMG}`` and quoted YAML
values are strings): a string of digits is read as that integer. Booleans (``true`` is 1 to Python),
other text and fractions are refused with one line naming the key and what to write. Light on
purpose (numpy only), so that the patch geometry can use it without importing torch.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gastrodistill.data.errors import DataInputError
from gastrodistill.utils.values import human_bytes

#: A size written as text (``${oc.env:IMG}``, a quoted YAML value): digits only, spaces around allowed.
_DIGITS = re.compile(r"\s*\+?\d+\s*")


# ---- size keys (data.image_size, data.storage_size, data.patch_size, data.overlap) ------------------
def _whole_number(value: object) -> int | None:
    """``value`` as an ``int`` when it is a whole number: an int, an integral float or a string of digits
    (what an environment interpolation or a quoted YAML value gives); ``None`` for anything else, a
    boolean included (``true`` is not a size, though Python counts it as 1)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _size_hint(value: object) -> str:
    """Why a refused size value is not read as one (booleans and text are the surprising cases)."""
    if isinstance(value, bool | np.bool_):
        return " (a boolean, not a number of pixels)"
    if isinstance(value, str):
        return " (text that is not a whole number; write digits only)"
    return ""


def pixel_size(
    value: object,
    key: str,
    error: type[DataInputError] = DataInputError,
    *,
    low: int = 1,
    example: int = 64,
    null: str = "",
) -> int | None:
    """A size config key (``data.storage_size``, ``data.patch_size``, ...) as an ``int`` of pixels.

    ``None`` stays ``None`` (the caller decides whether null is allowed and says so in ``null``, e.g.
    ``"keep patch_size"``); a string of digits is read as that integer. Raises ``error`` naming ``key``
    for a boolean, other text, a fraction, or a value below ``low``.
    """
    if value is None:
        return None
    size = _whole_number(value)
    if size is None or size < low:
        what = "a positive whole number of pixels" if low == 1 else f"a whole number of pixels >= {low}"
        or_null = f", or null to {null}" if null else ""
        raise error(f"{key} must be {what}, got {value!r}{_size_hint(value)}; e.g. {key}={example}{or_null}")
    return size


def image_size_hw(
    value: object, key: str = "data.image_size", error: type[DataInputError] = DataInputError
) -> tuple[int, int] | None:
    """``data.image_size`` as ``(height, width)`` in px; ``None`` keeps the files' size.

    Takes a positive int or a list/tuple of two (strings of digits are read as those integers, so
    ``${oc.env:IMG}`` and ``"32"`` are 32, never the characters ``3`` and ``2``). Raises ``error``
    naming ``key`` for anything else (0, -1, [64], true, "big", ...).
    """
    if value is None:
        return None
    pair = isinstance(value, Sequence) and not isinstance(value, str | bytes)
    given: list[object] = list(value) if pair else [value, value]  # type: ignore[arg-type]
    sides = [_whole_number(v) for v in given]
    if len(sides) != 2 or any(s is None or s < 1 for s in sides):
        hint = next((_size_hint(v) for v in given if _size_hint(v)), "")
        raise error(
            f"{key} must be a positive int (px) or [height, width] of positive ints, got "
            f"{given if pair else value!r}{hint}; e.g. {key}=64 or {key}=[64,48], or null to keep the "
            "files' size"
        )
    return (int(sides[0]), int(sides[1]))  # type: ignore[arg-type]


# ---- memory ---------------------------------------------------------------------------------------
#: Bytes per pixel of the float32 tensors that training, evaluation and the audit make of the images.
FLOAT_BYTES = 4
_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit (a container's), or ``None`` when there is none."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((_CGROUP / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory this process can still take, or ``None`` when the system does not say.

    psutil's ``available`` when psutil is installed, else Linux's ``MemAvailable`` (free memory plus
    reclaimable caches), else the machine's physical memory (``os.sysconf``); capped by a container's
    cgroup limit when one is set.
    """
    have: int | None = None
    try:
        import psutil  # optional: not a dependency of the project

        have = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed, or no answer on this platform
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    have = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            pass
        if have is None:
            try:
                have = int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
            except (AttributeError, ValueError, OSError):
                have = None
    room = _cgroup_room()
    if room is not None:
        have = room if have is None else min(have, room)
    return have


def check_fits_in_memory(
    n_images: int,
    channels: int,
    size: tuple[int, int],
    key: str = "data.image_size",
    error: type[DataInputError] = DataInputError,
    key_set: bool = True,
) -> None:
    """Refuse, before anything is allocated, images that would not fit in memory at ``size``.

    The estimate is ``n_images x channels x height x width x 4`` bytes (the float32 tensors made of
    them), compared with :func:`available_memory`; nothing is refused when the system does not say
    how much memory is left. Raises ``error`` naming ``key``, the memory needed and the largest square
    side that would fit. ``key_set=False``: ``size`` is the images' own (``key`` left unset), and the
    message says so.
    """
    need = int(n_images) * int(channels) * int(size[0]) * int(size[1]) * FLOAT_BYTES
    have = available_memory()
    if have is None or need <= have:
        return
    fits = int((have / max(1, int(n_images) * int(channels) * FLOAT_BYTES)) ** 0.5)
    advice = f"at most about {fits} px per side fits" if fits >= 1 else "even 1 px per side does not fit"
    what = (
        f"{key}={size[0]}x{size[1]}"
        if key_set
        else f"{size[0]}x{size[1]} px (the images' own size; {key} unset)"
    )
    raise error(
        f"{what}: {n_images} images of {channels} channel(s) at that size need about "
        f"{human_bytes(need, iec=True)} of memory, more than the {human_bytes(have, iec=True)} available; "
        f"choose a smaller {key} ({advice}), or use fewer images"
    )
