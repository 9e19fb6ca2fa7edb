"""`--help` of every command says what the stage does, its main options and an example; `make help`."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

COMMANDS = {
    "generate": "gastrodistill-generate",
    "build_patches": "gastrodistill-patches",
    "distill": "gastrodistill-distill",
    "evaluate": "gastrodistill-evaluate",
    "audit": "gastrodistill-audit",
    "reproduce": "gastrodistill-reproduce",
}


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_of_every_command(module, monkeypatch, capsys):
    mod = importlib.import_module(f"gastrodistill.cli.{module}")
    monkeypatch.setattr(sys, "argv", [COMMANDS[module], "--help"])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as info:
        mod.main()
    GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert info.value.code in (0, None)
    assert out.startswith(f"{COMMANDS[module]}: ")  # what the stage does, first
    assert "Main options:" in out and "Example" in out
    assert f"\n  {COMMANDS[module]} " in out  # an example command line
    assert "data: digits, folder, gastric, npz" in out  # the config groups
    assert "powered by Hydra" not in out  # not Hydra's generic page


def test_help_names_map_console_scripts():
    from gastrodistill.cli.help import command_help

    assert command_help("gastrodistill-patches").startswith("gastrodistill-patches:")
    assert command_help("build_patches") == command_help("gastrodistill-patches")
    assert "a gastrodistill command" in command_help("something_else")


def test_make_help_expands_variables():
    root = Path(__file__).parents[1]
    out = subprocess.run(["make", "-s", "help"], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "$(" not in out.stdout and "setup" in out.stdout and "torch==" in out.stdout
