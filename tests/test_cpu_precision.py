"""The CPU preset's precision by device (``${if_native_bf16:DEVICE,A,B}``): bfloat16 where the device computes
it, float32 elsewhere, and the run's saved config holds the value chosen, not the interpolation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gastrodistill.utils.bf16_support import cpu_has_native_bfloat16, native_bfloat16

#: The keys of conf/experiment/cpu.yaml chosen by the resolver, with their values without and with bfloat16.
CHOSEN = {
    ("eval", "standard", "precision"): ("32-true", "bf16-mixed"),
    ("eval", "baselines", "real", "precision"): ("32-true", "bf16-mixed"),
    ("eval", "score_autocast"): (False, True),
}


def _get(cfg, path):
    for key in path:
        cfg = cfg[key]
    return cfg


def _pretend(monkeypatch, avx512_bf16: bool, amx: bool, cuda_bf16: bool | None = None) -> None:
    """The CPU's probes say ``avx512_bf16`` / ``amx``; no CUDA device, or one that does (not) compute
    bfloat16 when ``cuda_bf16`` is given."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_bf16 is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bool(cuda_bf16))


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(False, False), (True, False), (False, True)])
def test_the_cpu_preset_trains_and_scores_in_bfloat16_only_where_the_cpu_has_it(
    compose_cfg, monkeypatch, avx512_bf16, amx
) -> None:
    _pretend(monkeypatch, avx512_bf16, amx)
    native = avx512_bf16 or amx
    cfg = compose_cfg(["experiment=cpu"])
    for path, values in CHOSEN.items():
        assert _get(cfg, path) == values[native], path
    # the preset's other precisions do not move: the distillation stays float32 on every machine
    assert cfg.distill.precision == "32-true"


def test_a_value_given_on_the_command_line_wins_over_the_machine(compose_cfg, monkeypatch) -> None:
    _pretend(monkeypatch, False, False)
    cfg = compose_cfg(["experiment=cpu", "eval.standard.precision=bf16-mixed", "eval.score_autocast=true"])
    assert cfg.eval.standard.precision == "bf16-mixed" and cfg.eval.score_autocast is True
    assert cfg.eval.baselines.real.precision == "32-true"


def test_the_saved_config_holds_the_value_chosen(compose_cfg, monkeypatch, tmp_path) -> None:
    from gastrodistill.utils.run_info import save_run_info

    for native in (False, True):
        _pretend(monkeypatch, native, False)
        out = tmp_path / f"run{int(native)}"
        save_run_info(out, compose_cfg(["experiment=cpu"]))
        text = (out / "config.yaml").read_text()
        assert "if_native_bf16" not in text
        saved = yaml.safe_load(text)
        for path, values in CHOSEN.items():
            assert _get(saved, path) == values[native], path


@pytest.mark.parametrize(("cpu_bf16", "cuda_bf16"), [(False, True), (True, False), (False, False)])
def test_on_a_gpu_host_the_evaluation_device_decides(compose_cfg, monkeypatch, cpu_bf16, cuda_bf16) -> None:
    """``eval.device: auto`` evaluates on CUDA where there is one: its bfloat16 support decides, not the
    CPU's; ``eval.device=cpu`` on the same host goes by the CPU."""
    _pretend(monkeypatch, cpu_bf16, False, cuda_bf16)
    assert native_bfloat16("auto") is cuda_bf16 and native_bfloat16("cuda:0") is cuda_bf16
    assert native_bfloat16("cpu") is cpu_bf16
    for device, native in (("auto", cuda_bf16), ("cpu", cpu_bf16)):
        cfg = compose_cfg(["experiment=cpu", f"eval.device={device}"])
        for path, values in CHOSEN.items():
            assert _get(cfg, path) == values[native], (device, path)


def test_a_failing_probe_means_float32(monkeypatch) -> None:
    def broken() -> bool:
        raise RuntimeError("no cpuinfo on this platform")

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", broken)
    assert cpu_has_native_bfloat16() is False


def test_run_info_records_the_answer(tmp_path, monkeypatch) -> None:
    from gastrodistill.utils.run_info import compute_info

    for native in (False, True):
        _pretend(monkeypatch, False, native)
        assert compute_info()["native_bfloat16"] is native


def test_native_bfloat16_agrees_with_the_kernel_cpu_flags() -> None:
    """Against an independent reading: the ``avx512_bf16`` / ``amx_tile`` flags of /proc/cpuinfo."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.is_file() else ""
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None
    )
    if flags is None:
        pytest.skip("no x86 CPU flags in /proc/cpuinfo on this machine")
    assert cpu_has_native_bfloat16() == ("avx512_bf16" in flags or "amx_tile" in flags)


def test_a_config_saved_unresolved_resolves_wherever_gastrodistill_is_imported(compose_cfg, tmp_path) -> None:
    """The root config holds the resolver (audit.receive.standard_precision). A rank of a distributed run
    that loads the config saved unresolved failed in save_run_info: the resolver was registered only where
    the config tree is composed. A fresh interpreter that imports gastrodistill alone now resolves it."""
    import subprocess
    import sys

    from omegaconf import OmegaConf

    OmegaConf.save(compose_cfg([]), tmp_path / "cfg.yaml", resolve=False)
    code = (
        "import sys, gastrodistill; from omegaconf import OmegaConf; "
        "c = OmegaConf.load(sys.argv[1]); OmegaConf.to_yaml(c, resolve=True); "
        "print(c.audit.receive.standard_precision)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cfg.yaml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ("None" if cpu_has_native_bfloat16() else "32-true")


def test_a_probe_this_torch_lacks_counts_as_no_bfloat16(monkeypatch) -> None:
    """A torch build without one of the CPU probes answers by the other one alone (kills a missing probe
    read as true)."""
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert cpu_has_native_bfloat16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert cpu_has_native_bfloat16() is True


def test_a_device_name_is_read_in_any_case_and_none_is_auto(monkeypatch) -> None:
    """``eval.device`` as a user may write it (``CUDA:1``, ``Auto``) or left empty goes by the CUDA device
    on a GPU host (kills the name not lower-cased and an empty name taken for a CPU)."""
    _pretend(monkeypatch, False, False, cuda_bf16=True)
    for device in ("CUDA:1", "Auto", None, ""):
        assert native_bfloat16(device) is True, device
    assert native_bfloat16("CPU") is False


def test_a_cuda_device_without_cuda_or_whose_query_fails_means_float32(monkeypatch) -> None:
    """``eval.device=cuda`` on a host without CUDA, or a CUDA query that raises, means no native bfloat16
    (kills the availability check dropped and a failing query read as support)."""
    _pretend(monkeypatch, True, True)  # a CPU with bfloat16 does not answer for a CUDA device
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert native_bfloat16("cuda") is False

    def broken(*_a, **_k) -> bool:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", broken)
    assert native_bfloat16("cuda:0") is False
