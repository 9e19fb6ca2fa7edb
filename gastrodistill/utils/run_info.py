"""Every run records its resolved config, package versions and git revision beside its outputs."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gastrodistill.utils.atomic import write_text_atomic

TRACKED_PACKAGES = (
    "gastrodistill",
    "torch",
    "pytorch-lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "higher",
    "wandb",
    "albumentations",
    "numpy",
    "pandas",
    "pydicom",
    "safetensors",
    "scikit-learn",
    "pillow",
)


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision(cwd: str | Path | None = None) -> str:
    """The commit of the code that ran (with ``-dirty`` when uncommitted changes exist), or ``unknown``."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_run_info(
    output_dir: str | Path, cfg: DictConfig | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``config.yaml`` (resolved) and ``run_info.json`` (package versions, git revision)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg is not None:
        write_text_atomic(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    info = {"versions": package_versions(), "git_revision": git_revision(), **(extra or {})}
    write_text_atomic(out / "run_info.json", json.dumps(info, indent=2, sort_keys=True))
    return out
