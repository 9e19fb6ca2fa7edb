"""``run_info.json`` records the whole environment and the CPU model, so that two runs of one commit whose
digits differ can be compared (issue 9, twenty-first round)."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from omegaconf import OmegaConf

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
