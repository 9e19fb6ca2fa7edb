"""Peak resident memory of the current process on Linux, shared by the benchmarks.

``reset_peak_rss()`` writes 5 to ``/proc/self/clear_refs`` (Linux >= 4.0), which resets the kernel's
high-water mark ``VmHWM`` to the current RSS, so a later ``status_kib("VmHWM")`` is the peak of what ran
in between. Where the reset is not allowed, callers fall back to ``resource.getrusage`` (a lower bound).
"""

from __future__ import annotations


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (e.g. ``VmRSS``, ``VmHWM``); raises ``RuntimeError`` if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark (``VmHWM``) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
