"""Lightning's output around the project's Trainers: its advertisement and the torch-version pytree warning
dropped, the device summary kept (quiet: dropped too), everything restored after the block."""

from __future__ import annotations

import logging
import warnings

import pytest
import pytorch_lightning as pl

from gastrodistill.utils.lightning_output import (
    LIGHTNING_LOGGERS,
    RANK_ZERO_LOGGERS,
    lightning_output,
)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def rank_zero_lines():
    """Every line Lightning's rank-zero loggers pass on at their own level (Lightning sets its packages'
    loggers to INFO), whatever the root logger's configuration."""
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in RANK_ZERO_LOGGERS]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler.lines
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def _trainer() -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)


def test_a_real_trainer_keeps_its_device_summary_and_loses_its_tip_only_inside_the_block(rank_zero_lines):
    _trainer()
    outside = list(rank_zero_lines)
    assert any(line.startswith("GPU available") for line in outside)
    assert any(line.startswith("💡 Tip") for line in outside)  # what the block exists to drop

    rank_zero_lines.clear()
    with lightning_output():
        _trainer()
    assert any(line.startswith("GPU available") for line in rank_zero_lines)
    assert not any("Tip" in line for line in rank_zero_lines)

    rank_zero_lines.clear()
    _trainer()  # the filter is gone after the block
    assert any(line.startswith("💡 Tip") for line in rank_zero_lines)


def test_quiet_drops_the_device_summary_and_restores_the_levels_also_when_the_block_raises(rank_zero_lines):
    before = [logging.getLogger(n).level for n in LIGHTNING_LOGGERS]
    with lightning_output(quiet=True):
        _trainer()
    assert rank_zero_lines == []
    with pytest.raises(RuntimeError), lightning_output(quiet=True):
        raise RuntimeError("stop")
    assert [logging.getLogger(n).level for n in LIGHTNING_LOGGERS] == before
    for name in RANK_ZERO_LOGGERS:
        assert logging.getLogger(name).filters == []


def test_only_the_pytree_deprecation_lightning_triggers_is_silenced():
    from pytorch_lightning.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _tree_flatten(1)  # Lightning's own helper, as every fit calls it
        (real,) = seen
        assert real.category is FutureWarning and "LeafSpec" in str(real.message)
        seen.clear()
        with lightning_output():
            _tree_flatten(1)
            warnings.warn("another deprecation", FutureWarning, stacklevel=1)
            warnings.warn(str(real.message), UserWarning, stacklevel=1)  # the same words, another category
        _tree_flatten(1)  # outside the block it is shown again
    shown = [(str(w.message), w.category) for w in seen]
    assert shown == [
        ("another deprecation", FutureWarning),
        (str(real.message), UserWarning),
        (str(real.message), FutureWarning),
    ]


def test_paths_in_lightnings_lines_are_shown_in_the_run_folder_or_by_their_last_parts(
    rank_zero_lines, tmp_path
):
    """Lightning names a resumed checkpoint by its absolute path, which reached ``distill.log`` (its folders
    may name a site or a person); within the block it is relative to the run folder, or, outside it, only
    its last three parts. Fractions, URLs and relative paths stay as they are; after the block, nothing is
    rewritten."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    run = tmp_path / "St_Mary_runs" / "run1"
    inside = run / "soft" / "checkpoints" / "last.ckpt"
    outside = tmp_path / "St_Mary_runs" / "run0" / "soft" / "checkpoints" / "step000002.ckpt"
    with lightning_output(run_dir=run):
        rank_zero_info("Restoring states from the checkpoint path at %s", inside)
        rank_zero_info(f"Restored all states from the checkpoint at {outside}")
        rank_zero_info("epoch 1/2 of https://lightning.ai/docs, logs in logs/csv")
    assert rank_zero_lines == [
        "Restoring states from the checkpoint path at soft/checkpoints/last.ckpt",
        "Restored all states from the checkpoint at …/soft/checkpoints/step000002.ckpt",
        "epoch 1/2 of https://lightning.ai/docs, logs in logs/csv",
    ]
    rank_zero_lines.clear()
    rank_zero_info(f"at {outside}")
    assert rank_zero_lines == [f"at {outside}"]


@pytest.fixture
def every_lightning_logger():
    """Lines reaching a handler on each of Lightning's package loggers (both package names and Fabric's),
    named here rather than taken from the module, with those loggers at INFO as Lightning sets its own."""
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield names, handler.lines
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def test_every_lightning_package_logger_is_filtered_and_quieted(every_lightning_logger, tmp_path):
    """``lightning.pytorch`` (the unified package) and ``lightning_fabric`` (``Seed set to ...``) get the same
    treatment as ``pytorch_lightning``: tips dropped, paths shortened, info lines dropped when ``quiet`` while
    warnings stay (WARNING, not a higher level)."""
    names, lines = every_lightning_logger
    where = tmp_path / "site" / "person" / "run" / "last.ckpt"
    with lightning_output():
        for name in names:
            rank_zero = logging.getLogger(f"{name}.utilities.rank_zero")
            rank_zero.info("💡 Tip: an advertisement")
            rank_zero.info("resumed from %s", where)
    assert lines == ["resumed from …/person/run/last.ckpt"] * len(names)
    lines.clear()
    with lightning_output(quiet=True):
        pl.seed_everything(0)  # Fabric's own info line
        for name in names:
            rank_zero = logging.getLogger(f"{name}.utilities.rank_zero")
            rank_zero.info("an info line")
            rank_zero.warning("a warning of %s", name)
    assert lines == [f"a warning of {name}" for name in names]
    pl.seed_everything(0)
    assert lines[-1] == "Seed set to 0"  # what quiet dropped


def test_run_folder_given_relative_or_through_a_link_still_shortens_its_paths(
    rank_zero_lines, tmp_path, monkeypatch
):
    """Lightning names the checkpoint by its absolute, resolved path while the run folder may be given
    relative to the working folder or through a symbolic link: both are resolved before comparing."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    run = tmp_path / "runs" / "run1"
    (run / "soft").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "runs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    ckpt = (run / "soft" / "last.ckpt").resolve()
    for run_dir in ("runs/run1", tmp_path / "link" / "run1"):
        with lightning_output(run_dir=run_dir):
            rank_zero_info(f"Restoring states from the checkpoint path at {ckpt}")
    assert rank_zero_lines == ["Restoring states from the checkpoint path at soft/last.ckpt"] * 2


def test_without_a_run_folder_paths_keep_their_last_parts_and_relative_ones_stay(rank_zero_lines, tmp_path):
    """No ``run_dir`` (the default): an absolute path keeps its last three parts. Paths that start with
    ``./``, ``../`` or ``~/`` are not absolute and stay as they are, and two absolute paths joined by a comma
    are two paths (neither leaks the folders above the run)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    deep = tmp_path / "site" / "person" / "soft" / "checkpoints" / "last.ckpt"
    with lightning_output():
        rank_zero_info(f"at {deep}")
        rank_zero_info("logs in ./logs/csv, ../runs/r1/x and ~/runs/r2/y")
    run = tmp_path / "site" / "person"
    with lightning_output(run_dir=run):
        rank_zero_info(f"kept {run / 'a' / 'first.ckpt'},{run / 'b' / 'second.ckpt'}")
    assert rank_zero_lines == [
        "at …/soft/checkpoints/last.ckpt",
        "logs in ./logs/csv, ../runs/r1/x and ~/runs/r2/y",
        "kept a/first.ckpt,b/second.ckpt",
    ]


def test_paths_with_spaces_and_quotes_are_shown_whole(rank_zero_lines, tmp_path):
    """The path pattern stopped at a space or a quote: ``/home/Jane Doe/runs/...`` was shown as
    ``…/home/Jane`` followed by `` Doe/runs/...`` (a person's name in the log), and a run folder under such
    a path was never shown relative (a mutation review's finding). A path runs to the furthest place where
    a file exists, or at least through the run folder; a short path has no ``…///`` of the root."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    run = tmp_path / "Jane Doe" / "runs" / "r1"
    other = tmp_path / "o'brien (site x)" / "runs" / "r0" / "soft" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"")
    with lightning_output(run_dir=run):
        rank_zero_info(
            f"Restoring states from the checkpoint path at {run / 'soft' / 'checkpoints' / 'last.ckpt'}"
        )
        rank_zero_info(f"Restored all states from the checkpoint at {other}")
        rank_zero_info(f"two: {other}, {other}.")
        rank_zero_info("at /a/b")
    assert rank_zero_lines == [
        "Restoring states from the checkpoint path at soft/checkpoints/last.ckpt",
        "Restored all states from the checkpoint at …/soft/checkpoints/last.ckpt",
        "two: …/soft/checkpoints/last.ckpt, …/soft/checkpoints/last.ckpt.",
        "at …/a/b",
    ]
    assert not any("Jane" in line or "brien" in line for line in rank_zero_lines)


def test_lightnings_warning_of_a_checkpoint_written_in_another_folder_is_dropped_only_inside_the_block():
    """A resume in a copied run folder makes Lightning warn that the dirpath has changed, naming the first
    folder's absolute path: dropped within the block, whatever its category, and shown after it."""
    text = "The dirpath has changed from '/home/Jane Doe/runs/r0/checkpoints' to '/srv/r1/checkpoints'"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with lightning_output():
            warnings.warn(text, UserWarning, stacklevel=1)
            warnings.warn("The dirpath is fine", UserWarning, stacklevel=1)
        warnings.warn(text, UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["The dirpath is fine", text]


def test_a_run_folder_given_through_a_link_shortens_paths_with_spaces_in_either_form(
    rank_zero_lines, tmp_path
):
    """A checkpoint that does not exist (yet) under a run folder with a space in its path is shown relative
    to the run folder whether the line names it through the link the run folder was given by or by its
    resolved path (kills either form of the run folder left out of the comparison)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    (tmp_path / "real runs" / "r1").mkdir(parents=True)
    (tmp_path / "Jane Doe").symlink_to(tmp_path / "real runs", target_is_directory=True)
    run = tmp_path / "Jane Doe" / "r1"
    with lightning_output(run_dir=run):
        rank_zero_info(f"saving {run / 'soft' / 'x.ckpt'}")
        rank_zero_info(f"saving {(tmp_path / 'real runs' / 'r1').resolve() / 'soft' / 'y.ckpt'}")
    assert rank_zero_lines == ["saving soft/x.ckpt", "saving soft/y.ckpt"]


def test_a_dangling_link_is_a_path_that_exists_for_the_line(rank_zero_lines, tmp_path):
    """A link whose target is gone still names a file: the path runs to its end, its folder with a space and
    a quote kept whole (kills ``exists`` for ``lexists``, which cut it at the quote)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    folder = tmp_path / "o'brien site" / "ckpts"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").symlink_to(tmp_path / "gone.ckpt")
    with lightning_output():
        rank_zero_info(f"at {folder / 'last.ckpt'}")
    assert rank_zero_lines == ["at …/o'brien site/ckpts/last.ckpt"]


def test_the_longest_path_that_exists_wins_over_an_existing_folder_cut_at_a_space(rank_zero_lines, tmp_path):
    """``/x/Jane`` and ``/x/Jane Doe/r0/last.ckpt`` both exist: the line names the second, whole (kills the
    shortest existing candidate taken, which left `` Doe/r0/last.ckpt`` in the log)."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    (tmp_path / "Jane").mkdir()
    ckpt = tmp_path / "Jane Doe" / "r0" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    with lightning_output():
        rank_zero_info(f"Restored all states from the checkpoint at {ckpt}")
    assert rank_zero_lines == ["Restored all states from the checkpoint at …/Jane Doe/r0/last.ckpt"]
