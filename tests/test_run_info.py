"""``run_info.json`` records the whole environment and the CPU model, so that two runs of one commit whose
digits differ can be compared (issue 9, twenty-first round)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gastrodistill.utils import run_info
from gastrodistill.utils.run_info import cpu_model, installed_packages, read_run_config, save_run_info

TWO_PROCESSORS = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
stepping\t: 1
cache size\t: 1024 KB
flags\t\t: fpu avx512f avx512_bf16

processor\t: 1
cpu family\t: 99
model\t\t: 98
model name\t: Another CPU
stepping\t: 7
"""


def test_cpu_model_reads_the_first_processors_fields_only():
    assert cpu_model(TWO_PROCESSORS) == {
        "cpu family": "25",
        "model": "17",
        "model name": "AMD EPYC 9R14",
        "stepping": "1",
        "cache size": "1024 KB",
    }


def test_cpu_model_without_those_fields_falls_back_to_the_processor_name():
    assert set(cpu_model("processor\t: 0\nflags\t: fpu\n")) == {"processor"}


def test_installed_packages_lists_this_environment_as_metadata_does():
    found = installed_packages()
    assert found["torch"] == metadata.version("torch") and found["numpy"] == metadata.version("numpy")
    names = list(found)
    assert names == sorted(names, key=str.lower)
    assert len(found) == len({d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"]})


def test_save_run_info_writes_the_packages_and_the_cpu_model(tmp_path):
    save_run_info(tmp_path)
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["packages"] == installed_packages()
    assert info["compute"]["cpu_model"] == cpu_model()
    assert info["versions"]["torch"] == info["packages"]["torch"]


def test_read_run_config_gives_back_what_save_run_info_wrote(tmp_path):
    cfg = OmegaConf.create({"seed": 3, "stages": ["distill", "evaluate"], "lr": "${x}", "x": 1.0e-8})
    save_run_info(tmp_path, cfg)
    assert read_run_config(tmp_path) == {
        "seed": 3,
        "stages": ["distill", "evaluate"],
        "lr": 1.0e-8,
        "x": 1.0e-8,
    }


@pytest.mark.parametrize(
    "content",
    [None, b"stages: [evaluate\n", b"- a list\n- not a mapping\n", b"seed: \xff\xfe\n", b""],
    ids=["missing", "not-yaml", "not-a-mapping", "not-utf8", "empty"],
)
def test_read_run_config_takes_a_damaged_record_for_none(tmp_path, content):
    if content is not None:
        (tmp_path / "config.yaml").write_bytes(content)
    assert read_run_config(tmp_path) is None


def test_package_versions_name_python_and_every_tracked_package(monkeypatch):
    """Mutants: another python field, the first tracked package skipped, another word for a missing one."""
    info = sys.version_info
    versions = run_info.package_versions()
    assert versions["python"] == f"{info.major}.{info.minor}.{info.micro}"
    assert set(versions) == {"python", *run_info.TRACKED_PACKAGES}
    monkeypatch.setattr(run_info, "TRACKED_PACKAGES", ("gastrodistill", "no-such-distribution-xyz"))
    assert run_info.package_versions() == {
        "python": versions["python"],
        "gastrodistill": metadata.version("gastrodistill"),
        "no-such-distribution-xyz": "not installed",
    }


class FakeDistribution:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


def test_installed_packages_keeps_the_first_of_two_copies_and_skips_a_nameless_one(monkeypatch):
    """The first copy on the path is the one imported (mutant: the last wins); a distribution without a
    name (a broken egg-info) is left out (mutant: kept, and the sort fails on None)."""
    found = [FakeDistribution("b", "2.0"), FakeDistribution(None, "0"), FakeDistribution("A", "1.0")]
    found.append(FakeDistribution("b", "1.0"))
    monkeypatch.setattr(run_info.metadata, "distributions", lambda: iter(found))
    assert list(run_info.installed_packages().items()) == [("A", "1.0"), ("b", "2.0")]


ARM_TWO_PROCESSORS = """
processor\t: 0
model name\t: ARMv8 Processor rev 1 (v8l)
cpu family\t: 8

processor\t: 1
model name\t: Another core
stepping\t: 3
cache size\t: 512 KB
"""


def test_cpu_model_takes_no_field_from_the_second_processor():
    """A first block without ``stepping`` or ``cache size`` (an ARM host) gets none from the next block
    (mutant: ``continue`` for ``break``); a blank line before the first block is skipped (mutant: the
    first blank line ends the search)."""
    assert cpu_model(ARM_TWO_PROCESSORS) == {"model name": "ARMv8 Processor rev 1 (v8l)", "cpu family": "8"}
    assert cpu_model("\n" + TWO_PROCESSORS) == cpu_model(TWO_PROCESSORS)


def test_cpu_model_without_proc_cpuinfo_names_the_processor(monkeypatch):
    """Mutant: an empty record when /proc/cpuinfo cannot be read."""

    class NoFile:
        def __init__(self, path):
            self.path = path

        def read_text(self, errors=None):
            raise FileNotFoundError(self.path)

    monkeypatch.setattr(run_info, "Path", NoFile)
    assert cpu_model() == {"processor": platform.processor()}


def test_compute_info_records_each_value_from_its_source(monkeypatch):
    """Each field read where it lives (mutants: interop threads read as intra-op threads, another
    variable, the CPU count of this process's affinity, CUDA availability for a count, no device name)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    monkeypatch.setattr(torch, "get_num_interop_threads", lambda: 7)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU {i}")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    info = run_info.compute_info()
    expected = {"torch_num_threads": 3, "torch_num_interop_threads": 7, "omp_num_threads_env": "5"}
    expected |= {"cpu_capability": "AVX512", "cpu_count": 64, "cuda_device_count": 3, "cuda_device": None}
    assert {k: info[k] for k in expected} == expected
    assert info["machine"] == platform.machine() and info["cpu_model"] == cpu_model()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # CUDA started: its device is named
    monkeypatch.delenv("OMP_NUM_THREADS")
    info = run_info.compute_info()
    assert info["cuda_device"] == "GPU 1" and info["omp_num_threads_env"] is None


def git(folder, *args):
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_git_revision_is_the_commit_dirty_only_with_uncommitted_changes_to_tracked_files(tmp_path):
    """Mutants: untracked files counted as changes, ``-dirty`` never added, a failed ``git rev-parse``
    (no repository) returned as an empty revision."""
    assert run_info.git_revision(tmp_path) == "unknown"  # no repository
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert len(head) == 40
    (tmp_path / "untracked.txt").write_text("not part of the code\n")
    assert run_info.git_revision(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert run_info.git_revision(str(tmp_path)) == head + "-dirty"


def test_git_revision_defaults_to_the_packages_checkout_wherever_the_command_runs(tmp_path, monkeypatch):
    """Mutant: the working directory's repository (a run started in a data folder got ``unknown``)."""
    package = Path(run_info.__file__).resolve().parent
    expected = run_info.git_revision(package)
    monkeypatch.chdir(tmp_path)
    assert run_info.git_revision() == expected
    if expected != "unknown":
        assert expected.split("-")[0] == git(package, "rev-parse", "HEAD")


def test_git_revision_without_git_is_unknown(tmp_path, monkeypatch):
    """Mutant: an OSError (no git executable) not caught."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert run_info.git_revision(tmp_path) == "unknown"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, None),
        ("- experiment=tiny\n- seed=3\n- 7\n", ["experiment=tiny", "seed=3", "7"]),
        ("", []),
        ("- [unclosed\n", []),
        (b"- seed=\xff\n", []),
    ],
    ids=["missing", "overrides", "empty", "not-yaml", "not-utf8"],
)
def test_read_hydra_overrides_gives_the_overrides_as_text(tmp_path, content, expected):
    """None without the file, [] when it cannot be read (mutants: an empty file failing, None for a
    damaged one, an override YAML reads as a number kept as a number)."""
    if content is not None:
        (tmp_path / ".hydra").mkdir()
        path = tmp_path / ".hydra" / "overrides.yaml"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert run_info.read_hydra_overrides(tmp_path) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, None),
        (
            "hydra:\n  runtime:\n    choices:\n      model: convnet\n      data: npz\n",
            {"model": "convnet", "data": "npz"},
        ),
        ("hydra:\n  runtime:\n    cwd: /x\n", None),
        ("hydra: null\n", None),
        ("hydra:\n  runtime:\n    choices: [model, data]\n", None),
    ],
    ids=["missing", "choices", "no-choices", "null", "a-list"],
)
def test_read_hydra_choices_gives_the_group_choices_or_none(tmp_path, content, expected):
    """Mutants: a missing key or a null ``hydra`` raising, a list of choices returned as it is."""
    if content is not None:
        (tmp_path / ".hydra").mkdir()
        (tmp_path / ".hydra" / "hydra.yaml").write_text(content)
    assert run_info.read_hydra_choices(tmp_path) == expected


def test_the_run_record_holds_the_extra_keys_the_git_revision_and_is_written_sorted(tmp_path):
    """Without a config only run_info.json is written (mutant: an empty config.yaml); the extra keys sit at
    the top level (mutants: dropped by run_record_texts or by save_run_info); the revision is the
    checkout's (mutant: ``unknown``); the JSON is indented and key-sorted, so two records diff line by line
    (mutants: no sort, no indent)."""
    assert save_run_info(tmp_path, extra={"stage": "distill", "mode": "soft"}) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_info.json"]
    text = (tmp_path / "run_info.json").read_text()
    info = json.loads(text)
    assert text == json.dumps(info, indent=2, sort_keys=True)
    assert info["stage"] == "distill" and info["mode"] == "soft"
    assert set(info) == {"versions", "packages", "git_revision", "compute", "stage", "mode"}
    package = Path(run_info.__file__).resolve().parent
    inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True)
    if inside.returncode == 0:
        assert info["git_revision"].removesuffix("-dirty") == inside.stdout.strip()
