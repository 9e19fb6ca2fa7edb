"""Command-line entry points: one Hydra main per pipeline stage, plus ``reproduce`` for the whole study."""

from pathlib import Path

from gastrodistill.cli.help import register as _register_help

#: The repository's Hydra config tree.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

_register_help()
