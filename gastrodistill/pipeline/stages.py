"""The study's stages by name, and its config error."""

from __future__ import annotations

STAGES = ("generate", "patches", "distill", "evaluate", "audit", "artifact")
#: The stages that make and read gastric patches, and the data module they are for.
GASTRIC_STAGES = ("generate", "patches")
GASTRIC_DATA = "gastrodistill.data.gastric.GastricPatchDataModule"


#: The stages that read the distilled sets of the run folder.
SET_STAGES = ("evaluate", "audit", "artifact")
#: The stages that log the run (Lightning's CSV and W&B loggers under ``experiment_name``) or write cards.
LOGGING_STAGES = ("distill", "evaluate", "audit", "artifact")


class ReproduceConfigError(ValueError):
    """``stages`` or ``reproduce.*`` names something that cannot run; the message says what to change."""
