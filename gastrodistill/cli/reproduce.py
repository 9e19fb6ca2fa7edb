"""``gastrodistill-reproduce``: the whole study in one Hydra run folder (``make reproduce``).

    gastrodistill-reproduce experiment=cpu                  # ~15 min on 2 CPU cores
    gastrodistill-reproduce experiment=full trainer=ddp     # the paper's scale on GPUs
    gastrodistill-reproduce experiment=cpu 'stages=[distill,evaluate]'   # some stages only

Runs the stages of ``cfg.stages`` in order: ``generate`` (synthetic DATA_ROOT) → ``patches`` (patch
store) → ``distill`` (one set per ``reproduce.distill_modes``, soft and hard) → ``evaluate`` (baselines
and distilled sets: results table and plots) → ``audit`` (anonymity) → ``artifact`` (shareable sets).
With data other than gastric patches (``data=folder|npz|digits``) ``generate`` and ``patches`` are
skipped, with a note: they build gastric patches that such data never read.
Outputs: ``<run>/distill/<mode>``, ``<run>/eval``, ``<run>/audit``, ``<run>/artifacts/<mode>``, and
``<run>/SUMMARY.md`` listing them with each stage's wall time.

Several processes (``trainer=ddp``; Lightning's launcher, torchrun or SLURM, docs/distillation.md):
global rank 0 generates the data and builds the patch store while the others wait for it; every rank
distils; then only rank 0 runs the stages of :attr:`Pipeline.rank_zero_stages` (evaluate, audit,
artifact) and writes the run info and summary, while the other ranks end their part of the job.

The stages, their checks and the driver are :mod:`gastrodistill.pipeline`; this module is the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.pipeline.pipeline import Pipeline
from gastrodistill.pipeline.preflight import check_sweep_collections
from gastrodistill.pipeline.stages import STAGES, ReproduceConfigError
from gastrodistill.pipeline.summary import target_lines
from gastrodistill.utils.distributed import global_rank, is_global_zero

__all__ = ["STAGES", "Pipeline", "ReproduceConfigError", "check_mode_override", "check_values", "main", "run"]


def run(cfg: DictConfig) -> dict[str, Path]:
    """Run ``cfg.stages`` and print where everything went."""
    pipe = Pipeline(cfg)
    paths = pipe.run()
    if not is_global_zero():
        print(f"rank {global_rank()}: done (evaluation, audit and outputs are global rank 0's)")
        return paths
    results = pipe.out / "eval" / "results.md"
    if results.is_file() and "evaluate" not in pipe.stale:  # not a table of replaced sets
        print(results.read_text())
    for note in pipe.notes:
        print(f"note: {note}")
    if pipe.state.get("results") is not None:
        print("\n".join(target_lines(pipe.state["results"])))
    # from the first stage's start: the commands' start-up and the checks before it are not counted
    print(f"stages: {pipe.timings['total']:.0f} s in all (start-up and the checks before them not counted)")
    width = max((len(k) for k in paths), default=0)
    for k, v in paths.items():
        print(f"  {k:<{width}}  {v}")
    return paths


def check_mode_override(overrides: Sequence[str], modes: list[str], mode: str) -> None:
    """Refuse a label mode chosen on the command line (Hydra's override strings ``overrides``), which
    ``gastrodistill-reproduce`` would ignore: it distils one set per ``reproduce.distill_modes``
    (``modes``) and passes each mode to the stage.

    Refused: ``distill.mode`` in any form (set, ``++``, ``~``), and a ``distill=<option>`` whose own
    mode (``mode``, the composed ``distill.mode``) is ``hard`` while ``modes`` is not ``[hard]`` (e.g.
    ``distill=hard_cpu``: its other values are used for both label modes). A soft option is the usual
    way to choose a recipe and passes. Raises :class:`ReproduceConfigError` saying which key to set.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gastrodistill.distillation.distilled_set import MODES

    def advice(value: object) -> str:
        if value in MODES:
            return f"set reproduce.distill_modes=[{value}] to distil only {value} labels"
        return "set reproduce.distill_modes to [soft], [hard] or [soft,hard]"

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.key_or_group == "distill.mode":
            value = override.value() if override.value_type is not None else None
            raise ReproduceConfigError(
                f"distill.mode does not choose what gastrodistill-reproduce distils: it runs one set per "
                f"reproduce.distill_modes (here {modes}). Drop distill.mode and {advice(value)} (or run "
                "the distill stage alone: gastrodistill-distill distill.mode=...)"
            )
        if override.key_or_group == "distill" and mode == "hard" and modes != ["hard"]:
            raise ReproduceConfigError(
                f"distill={override.value()} sets distill.mode=hard, which gastrodistill-reproduce does not "
                f"use: it distils one set per reproduce.distill_modes (here {modes}) with that config's "
                f"other values. Keep distill={override.value()} and {advice('hard')}, or choose a soft "
                "option (e.g. distill=soft_cpu) to distil both"
            )


def check_values(cfg: DictConfig, overrides: Sequence[str] = (), here: bool = True) -> None:
    """A sweep job's values, checked before the sweep's first job starts: :meth:`Pipeline.check_values`
    (``here``: the job runs on this machine) and :func:`check_mode_override` of the job's ``overrides``."""
    pipe = Pipeline(cfg)
    pipe.check_values(here)
    check_mode_override(overrides, pipe.modes(), str(cfg.distill.get("mode")))


@check_override_keys(CONF_DIR, check_values=check_values, check_together=check_sweep_collections)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-reproduce``: the mode override checked, then :func:`run`."""
    from hydra.core.hydra_config import HydraConfig

    # the override strings as typed: reading them from the ListConfig would resolve ${...} in their values
    typed = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    check_mode_override(typed, Pipeline(cfg).modes(), str(cfg.distill.get("mode")))
    run(cfg)


if __name__ == "__main__":
    main()
