"""benchmarks/gpu_check.sh --dry-run runs end to end on a CPU (one device, two gloo ranks, gpu tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    scratch = tmp_path / "scratch"  # the runs' temporary folders: removed by the benchmark itself
    scratch.mkdir()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "STEPS": "6",
        "TMPDIR": str(scratch),
    }
    proc = subprocess.run(
        [str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    one = json.loads((tmp_path / "one_gpu.json").read_text())
    two = json.loads((tmp_path / "two_gpus.json").read_text())
    assert one["steps"] == 6 and one["s_per_step"] > 0 and 0 <= one["data_wait_fraction"] < 1
    assert one["real_data_mode"] == "resident"
    assert two["world_size"] == 2 and two["steps"] == 6
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("gpu_check_")]  # none left behind
