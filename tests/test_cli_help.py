"""`--help` of every command says what the stage does, its main options and an example; `make help`."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

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
    assert "\nCommon: experiment=" in out and "add --cfg job" in out  # the options every command shares


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


def test_the_options_and_keys_a_help_text_names_exist_in_the_config(compose_cfg):
    """Every `group=a|b` of a --help text names option files of conf/<group>/, and every `group.key` is a key
    of the config composed with the data or logger option that has it (kills a misspelt key or option)."""
    import re

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.cli.help import HELP, command_help

    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra")
    choice = re.compile(rf"(?<![\w.])({'|'.join(groups)})=(\w+(?:\|\w+)*)")
    dotted = re.compile(rf"(?<![\w./$])((?:{'|'.join(groups)})\.[A-Za-z_][\w.]*[A-Za-z_])")
    cfgs = [compose_cfg(extra) for extra in ([], ["data=npz"], ["data=folder"], ["logger=default"])]

    def has(cfg, key):
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, throw_on_missing=False)
        return OmegaConf.is_dict(node) and leaf in list(node)  # iterating: a ??? value is a key too

    named, bad = 0, []
    for name in HELP:
        text = command_help(name)
        for group, options in choice.findall(text):
            for option in options.split("|"):
                named += 1
                if not (Path(CONF_DIR) / group / f"{option}.yaml").is_file():
                    bad.append(f"{name}: {group}={option}")
        for key in dotted.findall(text):
            named += 1
            if not any(has(cfg, key) for cfg in cfgs):
                bad.append(f"{name}: {key}")
    assert bad == [] and named > 60, (bad, named)


def test_registering_the_help_resolver_again_is_harmless():
    """Every command module imports `gastrodistill.cli`, which registers `gd_help`; a second registration
    keeps the first instead of OmegaConf's 'already registered' error (kills the check dropped)."""
    from omegaconf import OmegaConf

    from gastrodistill.cli.help import command_help, register

    register()
    register()
    assert OmegaConf.create({"h": "${gd_help:distill}"}).h == command_help("distill")
