"""benchmarks/threshold_study.py: the external pool and the all-data networks are refused where their
figures would mean nothing, with what to do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _study():
    path = REPO / "benchmarks" / "threshold_study.py"
    spec = importlib.util.spec_from_file_location("threshold_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--full", "2"], "--full needs --pool external"),
        (["--pool", "external"], "--pool external and --pool-overrides go together"),
        (["--pool-overrides", "synthetic.seed=5"], "--pool external and --pool-overrides go together"),
        (["--sizes", "2"], "every --sizes >= 4"),
    ],
)
def test_arguments_are_refused_with_what_to_do(capsys, tmp_path, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        _study().main(["--set", str(tmp_path), *argv, "--", "experiment=cpu"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_pool_that_names_the_main_data_is_refused(capsys, tmp_path, monkeypatch) -> None:
    """The pool must be another collection: the main data's patients trained the all-data networks."""
    monkeypatch.setenv("GASTRODISTILL_ROOT", str(tmp_path))
    argv = ["--set", str(tmp_path), "--pool", "external", "--pool-overrides", "synthetic.seed=5"]
    with pytest.raises(SystemExit) as info:
        _study().main([*argv, "--", "experiment=cpu"])
    assert info.value.code == 2
    assert "name the main data" in capsys.readouterr().err
