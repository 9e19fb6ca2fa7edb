"""Run in a spawned process by test_progress_in_logs: the redraw interval of a fresh tqdm bar there."""

from __future__ import annotations

import io


def bar_interval() -> float:
    from tqdm import tqdm

    with tqdm(total=10, file=io.StringIO()) as bar:
        return float(bar.mininterval)
