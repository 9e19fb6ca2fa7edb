"""Command-line entry points: one Hydra main per pipeline stage, plus ``reproduce`` for the whole study."""

from pathlib import Path

#: The repository's Hydra config tree.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
