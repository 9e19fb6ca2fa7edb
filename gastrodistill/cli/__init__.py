"""Command-line entry points: one Hydra main per pipeline stage, plus ``reproduce`` for the whole study."""

from gastrodistill.cli.help import register as _register_help
from gastrodistill.utils.config_tree import CONF_DIR

__all__ = ["CONF_DIR"]

_register_help()
