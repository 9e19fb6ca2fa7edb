"""Every run records its resolved config, package versions, git revision and compute beside its outputs.

The compute record matters for reproducing a number: the same seed, code and data give the same networks
bit for bit only with the same torch thread count and device, because the order of floating-point sums
changes with the threads and a few hundred training steps carry that rounding into visibly different
networks (measured: ``docs/evaluation.md``, "Reproducing a number").
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from gastrodistill.utils.atomic import write_texts_atomic

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
    """Python's version and each tracked package's (``not installed`` when absent), for the run record."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def installed_packages() -> dict[str, str]:
    """Every distribution installed in this environment, ``{name: version}`` sorted by lower-case name
    (``pip freeze`` lists the same, less pip and setuptools). :func:`package_versions` names the stack;
    this is the whole environment, so that a run whose digits differ from another's can be compared package
    by package (issue 9, twenty-first round: the same commit gave another table on another day, with numpy,
    scipy and scikit-learn unpinned)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


CPUINFO_FIELDS = ("model name", "cpu family", "model", "stepping", "cache size")


def cpu_model(cpuinfo: str | None = None) -> dict[str, str]:
    """The CPU's model as Linux reports it: ``model name``, ``cpu family``, ``model``, ``stepping`` and
    ``cache size`` of the first processor in ``/proc/cpuinfo`` (or of ``cpuinfo``, that file's text). oneDNN
    chooses its kernels and their blocking by CPU, so two hosts with the same instruction set can still sum
    in another order. Elsewhere (no such file): ``{"processor": platform.processor()}``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return {"processor": platform.processor()}
    out: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if out:
                break  # the first processor's block has ended
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in CPUINFO_FIELDS and key not in out:
            out[key] = value.strip()
    return out or {"processor": platform.processor()}


def compute_info() -> dict[str, Any]:
    """Where this process computes: torch's intra-op and inter-op thread counts now, ``OMP_NUM_THREADS``,
    the CPU instruction set torch dispatches to (e.g. ``AVX512``), whether the CPU computes bfloat16
    natively (``native_bfloat16``: the CPU preset's precision choice), the machine, the CPU model
    (:func:`cpu_model`), the number of CUDA devices,
    and the name of the current one when this process has already started CUDA (asking for a name would
    otherwise start it: a context on GPU 0 for a CPU-only stage). The evaluation also records the thread
    count its networks train with (``training_threads``), which is not this process's when they train in
    worker processes."""
    import torch

    from gastrodistill.utils.bf16_support import cpu_has_native_bfloat16

    return {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bfloat16": cpu_has_native_bfloat16(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cuda_device_count": torch.cuda.device_count(),
        "cuda_device": (
            torch.cuda.get_device_name(torch.cuda.current_device()) if torch.cuda.is_initialized() else None
        ),
    }


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


#: What :func:`save_run_info` writes into a folder: the resolved config and the run's record.
CONFIG_FILE, INFO_FILE = "config.yaml", "run_info.json"
RECORD_FILES = (CONFIG_FILE, INFO_FILE)


def read_run_config(folder: str | Path) -> dict[str, Any] | None:
    """The resolved config that :func:`save_run_info` wrote into ``folder`` (``config.yaml``), as a plain
    mapping, or None when the file is missing, unreadable, not YAML or not a mapping: for readers to
    which a damaged record means no record (each says what it falls back to). A reader that must tell
    the user which file to restore reads ``folder / CONFIG_FILE`` itself."""
    try:
        config = yaml.safe_load((Path(folder) / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def read_hydra_overrides(folder: str | Path) -> list[str] | None:
    """The command-line overrides Hydra recorded for the run in ``folder`` (``.hydra/overrides.yaml``);
    None without the file, [] when it cannot be read."""
    path = Path(folder) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]
    except (yaml.YAMLError, UnicodeDecodeError):
        return []


def read_hydra_choices(folder: str | Path) -> dict[str, Any] | None:
    """The config-group choices Hydra recorded for the run in ``folder`` (``hydra.runtime.choices`` of
    ``.hydra/hydra.yaml``), or None without a readable file."""
    try:
        saved = yaml.safe_load((Path(folder) / ".hydra" / "hydra.yaml").read_text())
        choices = saved["hydra"]["runtime"]["choices"]
    except (OSError, yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError):
        return None
    return dict(choices) if isinstance(choices, dict) else None


def save_run_info(
    output_dir: str | Path, cfg: DictConfig | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``config.yaml`` (resolved) and ``run_info.json`` (the stack's versions, every installed
    package, git revision, compute: :func:`compute_info`; ``extra`` keys are added at the top level)."""
    return write_texts_atomic(output_dir, run_record_texts(cfg, extra))


def run_record_texts(cfg: DictConfig | None = None, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """What :func:`save_run_info` writes, by file name: ``config.yaml`` (when ``cfg`` is given) and
    ``run_info.json``, for a writer that puts them beside files of its own at once."""
    texts = {CONFIG_FILE: OmegaConf.to_yaml(cfg, resolve=True)} if cfg is not None else {}
    info = {
        "versions": package_versions(),
        "packages": installed_packages(),
        "git_revision": git_revision(),
        "compute": compute_info(),
        **(extra or {}),
    }
    texts[INFO_FILE] = json.dumps(info, indent=2, sort_keys=True)
    return texts
