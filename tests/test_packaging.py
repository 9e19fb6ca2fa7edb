"""A regular (non-editable) install ships the configs: the wheel holds conf/ and commands compose anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("gastrodistill", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # setuptools warns of configuration it will stop accepting (a license table; config folders that
    # Python sees as packages but `packages` does not list): a build that warns today fails later.
    assert "BuildBackendWarning" not in proc.stderr, proc.stderr[-3000:]
    (whl,) = out.glob("gastrodistill-*.whl")
    return whl


def test_wheel_holds_every_config_and_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml"))
    assert configs and all(f"gastrodistill/conf/{c}" in names for c in configs), [
        c for c in configs if f"gastrodistill/conf/{c}" not in names
    ]
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "gastrodistill").rglob("*.py"))
    missing = [m for m in modules if m not in names]
    assert not missing, f"modules missing from the wheel (add their package to pyproject): {missing}"


def test_installed_command_composes_from_an_unrelated_folder(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    code = (
        "import gastrodistill.cli as c, sys; print(c.CONF_DIR); "
        "sys.argv=['gastrodistill-distill','--cfg','job','experiment=tiny','data=npz','data.path=x.npz']; "
        "from gastrodistill.cli import distill; distill.main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    conf_dir, *rest = proc.stdout.splitlines()
    assert Path(conf_dir) == site / "gastrodistill" / "conf"
    job = "\n".join(rest)
    assert "experiment_name: tiny" in job and "NpzDataModule" in job and "storage_size: 16" in job
