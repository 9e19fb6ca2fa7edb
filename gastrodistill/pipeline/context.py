"""What the stages of a study hand each other: its config, data module, distilled sets and run folder."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from gastrodistill.utils.distributed import prepare_data_rank_zero_first
from gastrodistill.utils.values import listed

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule


class StudyContext:
    """The state of one study (``cfg``: its composed config): the data module, the distilled sets, what the
    stages passed on (``state``: results, audit, reference network), what went where (``paths``), stage
    wall times in seconds (``timings``) and the notes for the summary."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.rcfg = cfg.get("reproduce") or {}
        self.dm: Any = None
        self.sets: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.paths: dict[str, Path] = {}
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.history: Path | None = None  # history/<n>/: the folder's earlier run record, when kept
        self.stale: list[str] = []  # stale_stages() as write_summary found them (rank 0)

    @functools.cached_property
    def out(self) -> Path:
        """The run folder (``paths.output_dir``), read when first needed: the checks
        (:meth:`~gastrodistill.pipeline.preflight.PreflightChecks.check_values`) need none, and a sweep's
        check composes its jobs' configs without Hydra's runtime, which names it."""
        return Path(self.cfg.paths.output_dir)

    def datamodule(self) -> ImageDataModule:
        """The data module of ``cfg.data``, built, prepared (rank 0 first) and set up on first use."""
        if self.dm is None:
            self.dm = hydra.utils.instantiate(self.cfg.data)
            prepare_data_rank_zero_first(self.dm)  # rank 0 builds the store; the others wait for it
            self.dm.setup()
        return self.dm

    def distilled_sets(self) -> dict[str, Any]:
        """The sets of this run, or those saved in ``<run>/distill`` by an earlier run of the stage."""
        if not self.sets:
            from gastrodistill.distillation.distilled_set import META_FILE, DistilledSet

            for mode in self.modes():
                d = self.out / "distill" / mode
                if (d / META_FILE).is_file():
                    self.sets[mode] = DistilledSet.load(d)
        return self.sets

    def modes(self) -> list[str]:
        """The label modes to distil (``reproduce.distill_modes``; default soft and hard); one mode given
        without brackets (``reproduce.distill_modes=hard``) is that mode, as the pre-flight reads it."""
        return [str(m) for m in listed(self.rcfg.get("distill_modes", ["soft", "hard"]), str)]
