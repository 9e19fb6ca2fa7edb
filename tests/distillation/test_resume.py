"""``distill.resume``: checkpoint names without '=', ``last`` across run folders, mode separation, errors
(damaged or foreign files, other settings, the other label mode)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch
from _distill_helpers import TINY, make_tiny_splits, run_distill_cli
from omegaconf import OmegaConf

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.resume import ResumeError, resolve_resume
from gastrodistill.distillation.run import run_distillation

HERE = Path(__file__).resolve().parent


def touch(path: Path, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_resolve_last_run_folder_and_files(tmp_path):
    root = tmp_path / "outputs" / "exp"
    old = touch(root / "runs" / "r1" / "soft" / "checkpoints" / "step000002.ckpt", age_s=100)
    new = touch(root / "runs" / "r2" / "distill" / "soft" / "checkpoints" / "last.ckpt", age_s=10)
    hard = touch(root / "runs" / "r2" / "distill" / "hard" / "checkpoints" / "step000004.ckpt", age_s=1)
    current = tmp_path / "outputs" / "exp" / "runs" / "r3" / "soft"
    assert resolve_resume(None, "soft", current, root) is None
    assert resolve_resume("last", "soft", current, root) == new  # newest of this mode, not the hard one
    assert resolve_resume("last", "hard", current, root) == hard
    assert resolve_resume(str(root / "runs" / "r1"), "soft", current, root) == old  # a run folder
    assert resolve_resume(str(old), "soft", current, root) == old  # a file of this mode
    # A hard checkpoint named for the soft run stands for its run folder: the soft checkpoint there.
    assert resolve_resume(str(hard), "soft", current, root) == new
    assert resolve_resume(str(root / "runs" / "r1"), "hard", current, root) is None
    assert resolve_resume("last", "soft", current, tmp_path / "elsewhere") is None
    with pytest.raises(ResumeError, match="no such checkpoint file or run folder"):
        resolve_resume(str(tmp_path / "nope.ckpt"), "soft", current, root)


def test_last_takes_this_folders_checkpoint_else_one_this_run_can_continue(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """The jobs of an interrupted seed (or outer-steps) sweep, resumed with ``last`` in new folders, each
    take their own run's checkpoint: not the newest of the experiment, which another job wrote (both jobs
    were refused, each told to take the other's seed)."""
    from gastrodistill.distillation.resume import missing_message, run_settings

    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    root = tmp_path / "outputs"
    seed0, seed1 = compose_cfg([*common, "seed=0"]), compose_cfg([*common, "seed=1"])
    run_distillation(seed0, tiny_dm, root / "sweep" / "0")
    time.sleep(0.05)
    run_distillation(seed1, tiny_dm, root / "sweep" / "1")  # the newer checkpoint
    own0 = root / "sweep" / "0" / "soft" / "checkpoints" / "last.ckpt"
    own1 = root / "sweep" / "1" / "soft" / "checkpoints" / "last.ckpt"
    new_job = tmp_path / "new" / "soft"
    assert resolve_resume("last", "soft", new_job, root, run_settings(seed0), 2) == own0
    assert resolve_resume("last", "soft", new_job, root, run_settings(seed1), 2) == own1
    assert resolve_resume("last", "soft", new_job, root, run_settings(seed0), 1) is None  # past 1 step
    assert resolve_resume("last", "soft", new_job, root) == own1  # no settings: the newest, as before
    # a sweep over what only shapes the start (a resume may change it): still the job's own checkpoint
    real0 = compose_cfg([*common, "seed=0", "distill.image_init=real"])
    assert resolve_resume("last", "soft", new_job, root, run_settings(real0), 2) is None
    # a run folder's own checkpoint comes first (and a resume with other settings there is refused by it)
    assert resolve_resume("last", "soft", root / "sweep" / "0" / "soft", root, run_settings(seed1), 2) == own0
    text = missing_message("last", ["soft"], new_job, str(root))
    assert "(4 there were written with other settings (seed, model, distill.*)" in text  # 2 files a run
    # and the whole command: job 0 of a new sweep continues job 0's checkpoint
    again = run_distillation(
        compose_cfg([*common, "seed=0", "distill.resume=last", f"distill.resume_root={root}"]),
        tiny_dm,
        tmp_path / "new",
    )
    first = DistilledSet.load(root / "sweep" / "0" / "soft")
    assert torch.equal(again.images, first.images)


def test_a_resume_in_a_copied_run_folder_writes_its_last_checkpoint_again(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, recwarn
):
    """``cp -a run copy`` then ``distill.resume=last`` in the copy (a tester's finding): Lightning kept the
    copy's ``last.ckpt`` of the earlier step and wrote ``last-v1.ckpt`` beside it, so the documented
    ``checkpoints/last.ckpt`` continued from the older step, with a warning naming the first folder's
    absolute path. ``last.ckpt`` is now the newest, and that warning is not shown."""
    import shutil

    common = [*tiny_overrides, "distill.ckpt_every=1", "distill.grid_every=0"]
    run_distillation(compose_cfg([*common, "distill.outer_steps=2"]), tiny_dm, tmp_path / "first")
    shutil.copytree(tmp_path / "first", tmp_path / "copy")
    cfg = compose_cfg([*common, "distill.outer_steps=3", "distill.resume=last"])
    run_distillation(cfg, tiny_dm, tmp_path / "copy")
    files = sorted(p.name for p in (tmp_path / "copy" / "soft" / "checkpoints").iterdir())
    assert "last-v1.ckpt" not in files and "step000003.ckpt" in files, files
    saved = torch.load(tmp_path / "copy" / "soft" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 3
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]


def test_a_stopped_run_says_which_checkpoint_is_kept_and_how_to_continue(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, capsys
):
    """Ctrl-C in the distillation printed only "interrupted (Ctrl-C)": it now names the checkpoint kept
    (or that none is) and the resume that continues it."""
    import pytorch_lightning as pl

    out = tmp_path / "run" / "distill"

    def stop_after_a_checkpoint(self, *args, **kwargs):
        (out / "soft" / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "soft" / "checkpoints" / "step000004.ckpt").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.Trainer, "fit", stop_after_a_checkpoint)
    cfg = compose_cfg([*tiny_overrides, "distill.ckpt_every=2", "distill.grid_every=0"])
    with pytest.raises(KeyboardInterrupt):
        run_distillation(cfg, tiny_dm, out)
    err = capsys.readouterr().err
    kept = out / "soft" / "checkpoints" / "step000004.ckpt"
    assert f"the soft-label run's checkpoint {kept} is kept" in err
    assert f"distill.resume={tmp_path / 'run'}\n" in err  # the run folder, not its distill/ folder

    def stop(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.Trainer, "fit", stop)
    with pytest.raises(KeyboardInterrupt):
        run_distillation(cfg, tiny_dm, tmp_path / "other")
    assert "the soft-label run kept no checkpoint" in capsys.readouterr().err
    # a resumed run stopped before its own first checkpoint: the one it resumed from still continues it
    from gastrodistill.distillation.run import print_kept_checkpoint

    print_kept_checkpoint(tmp_path / "other" / "soft", "soft", kept)
    assert f"the checkpoint it resumed from, {kept}, is still there" in capsys.readouterr().err
    # a gastrodistill-distill run folder holds <run>/<mode> (no distill/): the resume names <run>
    (tmp_path / "plain" / "soft" / "checkpoints").mkdir(parents=True)
    (tmp_path / "plain" / "soft" / "checkpoints" / "step000002.ckpt").write_bytes(b"x")
    print_kept_checkpoint(tmp_path / "plain" / "soft", "soft")
    assert capsys.readouterr().err.endswith(f"distill.resume={tmp_path / 'plain'}\n")


def test_run_refuses_a_checkpoint_of_the_other_mode(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "step000002.ckpt"
    assert ckpt.is_file() and (ckpt.parent / "last.ckpt").is_file()
    plain = tmp_path / "soft_copy.ckpt"  # outside a <mode>/checkpoints folder: only its content tells
    plain.write_bytes(ckpt.read_bytes())
    with pytest.raises(ResumeError, match="never share a checkpoint"):
        run_distillation(
            compose_cfg([*common, "distill=hard", f"distill.resume={plain}"]), tiny_dm, tmp_path / "b"
        )
    with pytest.raises(ResumeError, match="no checkpoint of the hard-label run"):
        run_distillation(
            compose_cfg([*common, "distill=hard", "distill.resume=last"]), tiny_dm, tmp_path / "a"
        )
    # The soft run's own checkpoint file, passed to the hard run: named as the soft run's, with the way on.
    with pytest.raises(ResumeError) as info:
        run_distillation(
            compose_cfg([*common, "distill=hard", f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "c"
        )
    text = str(info.value)
    assert (
        f"distill.resume={ckpt} is a checkpoint of the soft-label run and this is the hard-label run" in text
    )
    assert "distill.mode=soft" in text and "found under" not in text and "\n" not in text


def test_reproduce_starts_the_other_mode_afresh_beside_a_lone_checkpoint_file(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """A soft checkpoint copied out of its run folder, passed to reproduce: the soft run resumes from it and
    the hard run starts from step 0 (docs/distillation.md); distilling hard alone names the way on."""
    from gastrodistill.cli.reproduce import Pipeline

    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    plain = tmp_path / "soft_copy.ckpt"
    plain.write_bytes((tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt").read_bytes())
    both = compose_cfg([*common, f"paths.root_dir={tmp_path}", f"distill.resume={plain}"])
    assert Pipeline(both).resume_checkpoints() == {"soft": plain, "hard": None}
    hard = compose_cfg(
        [*common, f"paths.root_dir={tmp_path}", f"distill.resume={plain}", "reproduce.distill_modes=[hard]"]
    )
    with pytest.raises(ResumeError) as info:
        Pipeline(hard).resume_checkpoints()
    text = str(info.value)
    assert "written by the soft-label run and this study distils only hard" in text
    assert "'reproduce.distill_modes=[soft]'" in text and "distill.mode" not in text


def test_run_refuses_a_checkpoint_of_other_settings_and_names_the_folder_passed(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg([*common, "distill.ipc=1"]), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    with pytest.raises(ResumeError, match="was written with other settings than this run") as info:
        run_distillation(
            compose_cfg([*common, "distill.ipc=2", f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "b"
        )
    assert "distill.ipc is 1 there but 2 here" in str(info.value)
    assert not (tmp_path / "b" / "soft" / "distilled.safetensors").exists()
    # Other data (8 px images instead of 6) with the same settings: refused as other data, and for a
    # checkpoint that does not record its data (an older version's) because the tensors do not fit.
    wide = TensorImageDataModule(splits=make_tiny_splits(size=8), class_names=["a", "b", "c"])
    with pytest.raises(ResumeError, match="was distilled from other data than this run reads"):
        run_distillation(compose_cfg([*common, f"distill.resume={ckpt}"]), wide, tmp_path / "b")
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    del data["gastrodistill"]["data_source_hash"]
    old = tmp_path / "old" / "soft" / "checkpoints" / "last.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(data, old)
    with pytest.raises(ResumeError, match="does not fit this run") as info:
        run_distillation(compose_cfg([*common, f"distill.resume={old}"]), wide, tmp_path / "b")
    assert "distilled.images" in str(info.value) and "distill.steps" in str(info.value)
    assert not (tmp_path / "b" / "soft" / "distilled.safetensors").exists()
    # A run folder without a checkpoint of this mode: the message names that folder, not the new run's.
    with pytest.raises(ResumeError) as info:
        run_distillation(
            compose_cfg([*common, "distill=hard", f"distill.resume={tmp_path / 'a'}"]),
            tiny_dm,
            tmp_path / "c",
        )
    assert f"found under {tmp_path / 'a'}." in str(info.value) and str(tmp_path / "c") not in str(info.value)


def without_settings(ckpt: Path, dest: Path) -> Path:
    """A copy of ``ckpt`` at ``dest`` without the recorded run settings (as an older version wrote it)."""
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    del data["gastrodistill"]["settings"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, dest)
    return dest


class _Payload:
    """Unpickling this runs code (touches a file): a resume must refuse it without unpickling it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def fake_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might pass by mistake: ``{name: (file, expected reason)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    lightning_like = {
        "state_dict": {"distilled.images": torch.zeros(3, 1, 6, 6)},
        "optimizer_states": [],
        "global_step": 2,
    }
    whole = folder / "whole.ckpt"
    torch.save(lightning_like, whole)
    files = {
        "truncated": (folder / "trunc.ckpt", "cut short"),
        "text": (folder / "notes.ckpt", "not a PyTorch checkpoint file"),
        # an artifact's card passed by mistake: it was said to hold "Python objects other than tensors"
        "json": (folder / "card.json", "it is a JSON file (an artifact's card.json or a config?)"),
        "empty": (folder / "empty.ckpt", "the file is empty"),
        "pickle": (folder / "pickle.ckpt", "never unpickled"),
        "network": (folder / "net.ckpt", "no state_dict"),
        "other module": (folder / "other.ckpt", "no distilled images"),
        "weights only": (folder / "weights.ckpt", "weights-only"),
    }
    files["truncated"][0].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    files["text"][0].write_text("epoch 3: loss 0.1\n")
    files["json"][0].write_text('{"schema_version": 1, "name": "soft"}\n')
    files["empty"][0].write_bytes(b"")
    torch.save({"state_dict": _Payload(folder / "PWNED")}, files["pickle"][0])
    torch.save({"conv.weight": torch.zeros(2, 1, 3, 3)}, files["network"][0])
    torch.save({**lightning_like, "state_dict": {"net.weight": torch.zeros(2)}}, files["other module"][0])
    torch.save({"state_dict": lightning_like["state_dict"], "global_step": 2}, files["weights only"][0])
    return files


def test_a_damaged_or_foreign_checkpoint_is_refused_in_one_line_before_the_data(
    compose_cfg, tiny_overrides, tmp_path
):
    for name, (path, reason) in fake_checkpoints(tmp_path / "fakes").items():
        cfg = compose_cfg([*tiny_overrides, f"distill.resume={path}"])
        with pytest.raises(ResumeError) as info:
            run_distillation(cfg, None, tmp_path / name)  # no data module: refused before any data is read
        text = str(info.value)
        assert text.startswith(
            f"checkpoint {path} is damaged or is not a gastrodistill distillation checkpoint ("
        ), name
        assert reason in text and "\n" not in text and "drop distill.resume" in text, (name, text)
    assert not (tmp_path / "fakes" / "PWNED").exists()  # the pickled payload never ran


def test_a_damaged_last_checkpoint_beside_an_intact_one_names_the_intact_one(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """A damaged ``last.ckpt`` beside the run's intact step checkpoint (a tester, by hand): the advice was
    "drop distill.resume", which the stopped run's checkpoints then refused; it now names the intact one,
    the newest of them."""
    import os
    import shutil

    common = [*tiny_overrides, "distill.outer_steps=3", "distill.ckpt_every=3", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    checkpoints = tmp_path / "a" / "soft" / "checkpoints"
    older = checkpoints / "step000001.ckpt"  # an earlier one kept beside it (a copy by hand, a backup)
    shutil.copy(checkpoints / "step000003.ckpt", older)
    os.utime(older, (1e9, 1e9))
    last = checkpoints / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ResumeError) as info:
        run_distillation(compose_cfg([*common, f"distill.resume={last}"]), None, tmp_path / "b")
    text = str(info.value)
    assert (
        f"resume from another checkpoint of that run, distill.resume={checkpoints / 'step000003.ckpt'} "
        in text
    )
    assert "drop distill.resume" not in text and "\n" not in text


def test_a_resume_with_other_settings_is_refused_naming_each_key_and_changeable_keys_resume(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    other = ["model.width=8", "distill.steps=3", "distill.scheduler.gamma=0.9", "seed=1"]
    with pytest.raises(ResumeError) as info:
        run_distillation(compose_cfg([*common, *other, f"distill.resume={ckpt}"]), None, tmp_path / "b")
    text = str(info.value)
    assert (
        text.startswith(f"checkpoint {ckpt} was written with other settings than this run (")
        and "\n" not in text
    )
    for said in (
        "model.width is 4 there but 8 here",
        "distill.steps is 2 there but 3 here",
        "distill.scheduler.gamma is 0.5 there but 0.9 here",
        "seed is 0 there but 1 here",
    ):
        assert said in text, text
    # A checkpoint of an older version records no settings: its run's config.yaml beside it tells.
    old = without_settings(ckpt, tmp_path / "old" / "soft" / "checkpoints" / "last.ckpt")
    (old.parent.parent / "config.yaml").write_bytes((tmp_path / "a" / "soft" / "config.yaml").read_bytes())
    with pytest.raises(ResumeError, match="model.width is 4 there but 8 here"):
        run_distillation(
            compose_cfg([*common, "model.width=8", f"distill.resume={old}"]), None, tmp_path / "c"
        )
    # What docs/distillation.md lists as changeable on resume: the run goes on (here to step 3).
    changeable = [
        "distill.outer_steps=3",
        "distill.ckpt_every=0",
        "distill.log_every=2",
        "distill.check_every=3",
        "distill.lr_init=0.5",
        "distill.image_init=real",
        "distill.real_data=items",
        f"distill.resume_root={tmp_path / 'elsewhere'}",
        "trainer.enable_progress_bar=false",
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_distillation(
            compose_cfg([*common, *changeable, f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "d"
        )
    assert json.loads((tmp_path / "d" / "soft" / "summary.json").read_text())["outer_steps"] == 3
    # a changed ckpt_every is allowed, so Lightning's request for the checkpoint's ModelCheckpoint is noise
    assert not [w for w in seen if "callbacks used to create the checkpoint" in str(w.message)]


def test_a_resume_records_the_start_settings_of_its_checkpoint_and_says_which_it_ignored(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, caplog
):
    """A resumed set was started by its checkpoint's run: its config.yaml (what W&B and the card read)
    records that run's start settings, not the overrides given to the resume, and the log names each."""
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg([*common, "distill.lr_init=0.05"]), tiny_dm, tmp_path / "a")
    first = OmegaConf.load(tmp_path / "a" / "soft" / "config.yaml").distill
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    given = ["distill.outer_steps=3", "distill.lr_init=0.5", "distill.image_init=real", "distill.log_every=2"]
    with caplog.at_level(logging.WARNING, logger="gastrodistill.distillation.run"):
        run_distillation(compose_cfg([*common, *given, f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "b")
    saved = OmegaConf.load(tmp_path / "b" / "soft" / "config.yaml").distill
    assert (saved.lr_init, saved.image_init) == (0.05, first.image_init) != (0.5, "real")
    assert OmegaConf.to_container(saved.texture_matching) == OmegaConf.to_container(first.texture_matching)
    assert (saved.outer_steps, saved.log_every) == (3, 2)  # what a resume may change is recorded as given
    said = [r.getMessage() for r in caplog.records if "records the checkpoint's" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("the resumed soft-label run keeps"), caplog.text
    assert "distill.lr_init is 0.05 there but 0.5 here" in said[0]
    assert f"distill.image_init is {first.image_init} there but real here" in said[0]
    assert "outer_steps" not in said[0] and "log_every" not in said[0]
    # A resume that changes no start setting says nothing and records its config as given.
    caplog.clear()
    ckpt_b = tmp_path / "b" / "soft" / "checkpoints" / "last.ckpt"
    with caplog.at_level(logging.WARNING, logger="gastrodistill.distillation.run"):
        run_distillation(
            compose_cfg(
                [*common, "distill.lr_init=0.05", "distill.outer_steps=4", f"distill.resume={ckpt_b}"]
            ),
            tiny_dm,
            tmp_path / "c",
        )
    assert "records the checkpoint's" not in caplog.text
    assert OmegaConf.load(tmp_path / "c" / "soft" / "config.yaml").distill.outer_steps == 4


def _checkpoint_recording(path: Path, cfg, step: int = 2, **start) -> Path:
    """A checkpoint file whose record holds ``cfg``'s run settings with ``start`` keys replaced."""
    from gastrodistill.distillation.resume import run_settings

    settings = run_settings(cfg)
    settings["start"].update(start)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"gastrodistill": {"mode": "soft", "settings": settings}, "global_step": step}, path)
    return path


def test_a_matching_phase_that_is_off_is_one_start_setting_however_it_is_written(compose_cfg, tmp_path):
    """null and ``{steps: 0, ...}`` both mean off: a resume between them says nothing and keeps its config;
    one side on reads "off" / "on (steps: N)", not the whole section; a section written out with its defaults
    equals one that leaves them out, and a default the checkpoint's older record lacks (bridges) is the
    default there, so the record says 0, not this run's 2."""
    from gastrodistill.distillation.resume import with_checkpoint_start

    cfg = compose_cfg(
        ["experiment=tiny", "distill.texture_matching=null", "distill.distribution_matching=null"]
    )
    off = _checkpoint_recording(
        tmp_path / "off.ckpt",
        cfg,
        texture_matching={"steps": 0, "lr": 0.5},
        distribution_matching={"steps": 0, "lr": 2.0},
    )
    same, said = with_checkpoint_start(cfg, off)
    assert (same, said) == (cfg, [])
    absent = compose_cfg(["experiment=tiny", "~distill.texture_matching", "~distill.distribution_matching"])
    assert with_checkpoint_start(absent, off) == (absent, [])  # a section left out is off too
    assert with_checkpoint_start(cfg, _checkpoint_recording(tmp_path / "absent.ckpt", absent)) == (cfg, [])

    on_here = compose_cfg(
        [
            "experiment=tiny",
            "distill.texture_matching.steps=400",
            "distill.texture_matching.bridges=2",
            "distill.texture_matching.teacher_labels=1.0",
        ]
    )
    recorded, said = with_checkpoint_start(on_here, off)
    assert said == ["distill.texture_matching is off there but on (steps: 400) here"]
    assert recorded.distill.texture_matching == {"steps": 0, "lr": 0.5}  # as the checkpoint wrote it
    assert on_here.distill.texture_matching.steps == 400

    older = dict(OmegaConf.to_container(on_here.distill.texture_matching, resolve=True))
    older.pop("bridges")
    older.pop("progress", None)
    old = _checkpoint_recording(tmp_path / "old.ckpt", on_here, texture_matching=older)
    recorded, said = with_checkpoint_start(on_here, old)
    assert said == ["distill.texture_matching.bridges is 0 there but 2 here"]
    assert recorded.distill.texture_matching.bridges == 0
    assert recorded.distill.texture_matching.steps == 400


def test_a_study_takes_the_start_settings_its_sets_agree_on_and_keeps_its_own_where_they_differ(compose_cfg):
    """with_sets_start: the image start both sets record replaces the command's; the lr_init they record
    differently stays the command's; a matching phase off in both (null in one, steps 0 in the other) while
    the command turns it on is put in as the first set wrote it; sets that agree with the command change
    nothing."""
    from gastrodistill.distillation.resume import with_sets_start

    cfg = compose_cfg(["experiment=tiny", "distill.image_init=real", "distill.lr_init=0.5"])
    given = OmegaConf.to_container(cfg.distill, resolve=True)
    soft = {**given, "image_init": "noise", "lr_init": 0.02, "distribution_matching": None}
    hard = {**given, "image_init": "noise", "lr_init": 0.03, "distribution_matching": {"steps": 0, "lr": 9.0}}
    on = compose_cfg(
        [
            "experiment=tiny",
            "distill.image_init=real",
            "distill.lr_init=0.5",
            "distill.distribution_matching.steps=7",
        ]
    )
    assert with_sets_start(on, [soft, hard]) == ["image_init", "distribution_matching"]
    assert (on.distill.image_init, on.distill.lr_init, on.distill.distribution_matching) == (
        "noise",
        0.5,
        None,
    )
    assert with_sets_start(cfg, [given, given]) == [] and cfg.distill.image_init == "real"


def test_last_continues_a_checkpoint_whose_matching_phase_is_off_written_another_way(compose_cfg, tmp_path):
    """resume=last takes another run's checkpoint of the same start: one recording ``{steps: 0}`` for a
    matching phase this run leaves null is the same start; one with the phase on is not."""
    from gastrodistill.distillation.resume import run_settings

    cfg = compose_cfg(["experiment=tiny", "distill.distribution_matching=null"])
    root = tmp_path / "root"
    same = _checkpoint_recording(
        root / "a" / "soft" / "checkpoints" / "last.ckpt", cfg, distribution_matching={"steps": 0, "lr": 3.0}
    )
    settings = run_settings(cfg)
    got = resolve_resume("last", "soft", tmp_path / "now" / "soft", root, settings, outer_steps=8)
    assert got == same
    absent = run_settings(compose_cfg(["experiment=tiny", "~distill.distribution_matching"]))
    assert "distribution_matching" not in absent["start"]  # left out: off, the same start
    assert resolve_resume("last", "soft", tmp_path / "now" / "soft", root, absent, outer_steps=8) == same
    on = {"steps": 5, "lr": 3.0}
    os.utime(same, (time.time() - 100, time.time() - 100))
    _checkpoint_recording(
        root / "b" / "soft" / "checkpoints" / "last.ckpt", cfg, step=3, distribution_matching=on
    )
    got = resolve_resume("last", "soft", tmp_path / "now" / "soft", root, settings, outer_steps=8)
    assert got == same


def test_a_resume_from_a_legacy_format_checkpoint_builds_no_start_and_records_the_checkpoints(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, caplog
):
    """A checkpoint re-saved in torch.save's legacy (non-zip) format, which cannot be memory-mapped, resumes
    as the zip one does: the same set, its start settings recorded and named; and a resume never builds the
    start its image_init asks for (class means: nothing streamed), since the checkpoint holds the tensors."""
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    legacy = tmp_path / "legacy.ckpt"
    torch.save(
        torch.load(ckpt, map_location="cpu", weights_only=True), legacy, _use_new_zipfile_serialization=False
    )
    with pytest.raises(RuntimeError, match="mmap"):  # what the record reader has to get round
        torch.load(legacy, map_location="cpu", weights_only=True, mmap=True)

    def no_class_means(*_args, **_kwargs):
        raise AssertionError("a resumed run computed the class means of a start it does not use")

    monkeypatch.setattr("gastrodistill.distillation.run.class_means", no_class_means)
    resumed = [*common, "distill.outer_steps=3", "distill.image_init=class_mean"]
    with caplog.at_level(logging.WARNING, logger="gastrodistill.distillation.run"):
        from_legacy = run_distillation(
            compose_cfg([*resumed, f"distill.resume={legacy}"]), tiny_dm, tmp_path / "b"
        )
    assert "distill.image_init is noise there but class_mean here" in caplog.text
    assert OmegaConf.load(tmp_path / "b" / "soft" / "config.yaml").distill.image_init == "noise"
    from_zip = run_distillation(compose_cfg([*resumed, f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "c")
    for key, value in from_zip.state_dict().items():
        assert torch.equal(value, from_legacy.state_dict()[key]), key


def test_a_resume_past_outer_steps_is_refused_and_at_outer_steps_writes_the_checkpoints_set(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, capsys
):
    """A checkpoint at outer step 2 resumed with ``distill.outer_steps=1`` cannot be taken back a step:
    refused in one line before the data (``None`` datamodule); with ``outer_steps=2`` nothing is left to run
    and the set written is the checkpoint's, with a note that says so."""
    common = [*tiny_overrides, "distill.ckpt_every=2", "distill.grid_every=0"]
    first = run_distillation(compose_cfg([*common, "distill.outer_steps=2"]), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    with pytest.raises(ResumeError) as info:
        run_distillation(
            compose_cfg([*common, "distill.outer_steps=1", f"distill.resume={ckpt}"]), None, tmp_path / "b"
        )
    text = str(info.value)
    assert text.startswith(f"checkpoint {ckpt} is at outer step 2, past distill.outer_steps=1")
    assert "\n" not in text
    assert "distill.outer_steps=2 or more" in text and not (tmp_path / "b").exists()
    assert text.endswith("drop distill.resume to start a new run from step 0")  # "b" holds no set
    # Into the folder of the finished set ("a", say a pinned hydra.run.dir), dropping distill.resume
    # alone would be refused next (check_no_finished_set): the advice says a new run folder is needed too.
    with pytest.raises(ResumeError) as info:
        run_distillation(
            compose_cfg([*common, "distill.outer_steps=1", "distill.resume=last"]), None, tmp_path / "a"
        )
    text = str(info.value)
    assert text.startswith(f"checkpoint {ckpt} is at outer step 2, past distill.outer_steps=1")
    assert text.endswith(
        f"drop distill.resume to start a new run from step 0 in a new run folder (drop hydra.run.dir or "
        f"paths.output_dir too: "
        f"{tmp_path / 'a' / 'soft'} already holds a finished set, which a run from step 0 does not replace)"
    )
    with pytest.raises(DistillConfigError, match="already holds a finished soft-label set"):  # what it avoids
        run_distillation(compose_cfg([*common, "distill.outer_steps=1"]), None, tmp_path / "a")
    capsys.readouterr()
    again = run_distillation(
        compose_cfg([*common, "distill.outer_steps=2", f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "c"
    )
    assert "it is at outer step 2 = distill.outer_steps: no step is left to run" in capsys.readouterr().out
    assert torch.equal(again.images, first.images) and torch.equal(again.label_logits, first.label_logits)
    assert json.loads((tmp_path / "c" / "soft" / "summary.json").read_text())["outer_steps"] == 2


def test_a_checkpoint_with_flipped_bytes_is_refused_by_its_crc(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """A bad copy that still loads (torch.load checks no CRC: the flipped pixels just read as other values)
    would resume into a wrong distilled set; the zip's CRC-32 of each member catches it."""
    import struct
    import zipfile

    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    with zipfile.ZipFile(ckpt) as archive:
        tensors = [i for i in archive.infolist() if "/data/" in i.filename]  # tensor storages, not the pickle
        member = max(tensors, key=lambda i: i.file_size)  # the largest: the images
    data = bytearray(ckpt.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_len + extra_len + member.file_size // 2
    data[start : start + 8] = bytes(b ^ 0x5A for b in data[start : start + 8])
    flipped = tmp_path / "flipped.ckpt"
    flipped.write_bytes(bytes(data))
    import torch

    torch.load(flipped, map_location="cpu", weights_only=True)  # loads without complaint
    with pytest.raises(ResumeError) as info:
        run_distillation(compose_cfg([*common, f"distill.resume={flipped}"]), None, tmp_path / "b")
    text = str(info.value)
    assert text.startswith(
        f"checkpoint {flipped} is damaged or is not a gastrodistill distillation checkpoint ("
    )
    assert f"member {member.filename!r} fails its CRC check" in text and "\n" not in text


def test_resume_messages_name_only_keys_that_exist(compose_cfg):
    """Every ``distill.<key>`` / ``reproduce.<key>`` the resume errors name is a key of the config."""
    import gastrodistill.distillation.module as module
    import gastrodistill.distillation.resume as resume

    cfg = compose_cfg(["experiment=tiny"])
    named = set()
    for source in (resume, module):
        text = Path(source.__file__).read_text()
        named |= set(re.findall(r"(?<![\w.])((?:distill|reproduce)\.[a-z_]+)", text))
    missing = sorted(
        key for key in named if cfg[key.split(".")[0]].get(key.split(".")[1], "<none>") == "<none>"
    )
    assert not missing, f"messages name keys that are not in conf/: {missing}"
    assert {"distill.steps", "distill.mode", "reproduce.distill_modes"} <= named  # the scan finds them


def test_cli_refuses_a_checkpoint_of_other_settings_in_one_line_and_leaves_no_run_folder(
    compose_cfg, tmp_path
):
    from hydra.utils import instantiate

    common = [*TINY, "data=digits", "logger=csv", "distill.outer_steps=2", "distill.grid_every=0"]
    cfg = compose_cfg([*common, "distill.ckpt_every=2"])
    run_distillation(cfg, instantiate(cfg.data), tmp_path / "first")
    # As an older version wrote it (no settings recorded, no config.yaml beside it): only the tensors tell,
    # when Lightning loads it, after the loggers started.
    ckpt = without_settings(tmp_path / "first" / "soft" / "checkpoints" / "last.ckpt", tmp_path / "old.ckpt")
    run_dir = tmp_path / "outputs" / "second"
    proc = run_distill_cli(
        tmp_path,
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        *common,
        "distill.ipc=2",  # the checkpoint holds 1 image per class
        f"distill.resume={ckpt}",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "size mismatch" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: the checkpoint does not fit this run")
    assert not run_dir.exists()  # its logs/ held only the CSV logger's hparams.yaml


def cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_distill_cli(
        tmp_path,
        "data=digits",
        f"paths.root_dir={tmp_path}",
        "logger=csv",
        *TINY,
        "distill.outer_steps=4",
        "distill.inner_nets_per_step=2",
        "distill.scheduler.step_size=1",
        "distill.scheduler.gamma=0.7",
        "distill.grid_every=0",
        *overrides,
    )


def test_cli_stop_and_resume_in_a_new_run_folder_is_exact(tmp_path):
    runs = tmp_path / "outputs" / "default" / "runs"
    full = cli(tmp_path, f"hydra.run.dir={tmp_path / 'uninterrupted'}")
    assert full.returncode == 0, full.stderr[-3000:]
    part = cli(tmp_path, f"hydra.run.dir={runs / 'first'}", "distill.outer_steps=2", "distill.ckpt_every=2")
    assert part.returncode == 0, part.stderr[-3000:]
    ckpts = sorted(p.name for p in (runs / "first" / "soft" / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step000002.ckpt"]  # no '=' in names
    resumed = cli(tmp_path, f"hydra.run.dir={runs / 'second'}", "distill.resume=last", "distill.ckpt_every=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the soft-label distillation from checkpoint" in resumed.stdout
    assert str(runs / "first" / "soft" / "checkpoints") in resumed.stdout
    # the first part's logs and checkpoints stay behind: said, with the way to continue in that folder
    assert (
        f"it continues in this run folder, {runs / 'second'}; the first part's logs and checkpoints stay in "
        f"{runs / 'first'} (to continue in that folder instead, pass hydra.run.dir={runs / 'first'})"
    ) in " ".join(resumed.stdout.split())
    a = DistilledSet.load(tmp_path / "uninterrupted" / "soft")
    b = DistilledSet.load(runs / "second" / "soft")
    two = DistilledSet.load(runs / "first" / "soft")
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(two.images, a.images)
    # The checkpoint path itself, unquoted, is a valid override too.
    again = cli(
        tmp_path,
        f"hydra.run.dir={runs / 'third'}",
        f"distill.resume={runs / 'first' / 'soft' / 'checkpoints' / 'step000002.ckpt'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert torch.equal(DistilledSet.load(runs / "third" / "soft").images, a.images)
    # A resume that finds nothing (no hard run was ever checkpointed) stops with an error, not step 0.
    missing = cli(tmp_path, f"hydra.run.dir={runs / 'fourth'}", "distill=hard", "distill.resume=last")
    assert missing.returncode == 1, missing.stderr[-2000:]
    assert "no checkpoint of the hard-label run" in missing.stdout + missing.stderr
    assert not (runs / "fourth" / "hard" / "distilled.safetensors").exists()


def test_cli_refuses_a_damaged_checkpoint_in_one_line_and_leaves_no_run_folder(tmp_path):
    path, _ = fake_checkpoints(tmp_path / "fakes")["truncated"]
    run_dir = tmp_path / "outputs" / "tiny" / "runs" / "damaged"
    proc = run_distill_cli(
        tmp_path,
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        "experiment=tiny",
        "data=digits",
        f"distill.resume={path}",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: checkpoint {path} is damaged or is not a gastrodistill distillation")
    assert "cut short" in lines[-1] and "resuming" not in proc.stdout
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()  # nothing left behind


def test_a_resume_on_other_data_is_refused_once_the_data_is_read(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """The checkpoint records the data's ``source_hash``: a run that reads another collection (the same
    shapes and classes, so nothing else would notice) is refused before any outer step, also through
    ``last``; the same data resumes."""
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    recorded = torch.load(ckpt, map_location="cpu", weights_only=True)["gastrodistill"]["data_source_hash"]
    assert recorded == tiny_dm.source_hash()
    other = TensorImageDataModule(splits=make_tiny_splits(seed=5), class_names=["a", "b", "c"])
    assert other.source_hash() != tiny_dm.source_hash()
    resumed = [*common, "distill.outer_steps=3"]
    with pytest.raises(ResumeError) as info:
        run_distillation(compose_cfg([*resumed, f"distill.resume={ckpt}"]), other, tmp_path / "b")
    text = str(info.value)
    assert text.startswith(f"checkpoint {ckpt} was distilled from other data than this run reads (")
    assert f"{recorded[:12]}... there, {other.source_hash()[:12]}... here" in text and "\n" not in text
    assert not (tmp_path / "b" / "soft" / "distilled.json").exists()
    with pytest.raises(ResumeError, match="distill.resume=last takes the newest checkpoint"):
        run_distillation(compose_cfg([*resumed, "distill.resume=last"]), other, tmp_path / "a")
    run_distillation(compose_cfg([*resumed, f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "c")
    assert json.loads((tmp_path / "c" / "soft" / "summary.json").read_text())["outer_steps"] == 3


def test_a_finished_set_names_only_the_ways_on_that_exist(tmp_path):
    """The refusal of a fresh distillation into a folder holding a finished set offers a resume only when a
    checkpoint of the set was kept (distill.ckpt_every=0 keeps none: the resume it offered was refused in
    turn), and 'leave distill out of the stages' only to gastrodistill-reproduce, which has stages (the
    standalone gastrodistill-distill has none)."""
    from gastrodistill.distillation.distilled_set import META_FILE
    from gastrodistill.distillation.run import check_no_finished_set

    folder = tmp_path / "run" / "soft"
    check_no_finished_set(folder, "soft")  # no set: nothing to refuse
    folder.mkdir(parents=True)
    (folder / META_FILE).write_text("{}")
    with pytest.raises(DistillConfigError) as info:
        check_no_finished_set(folder, "soft")
    text = str(info.value)
    assert (
        "Start a new run folder (drop hydra.run.dir or paths.output_dir) (no checkpoint of it is in" in text
    )
    assert "distill.resume" not in text and "stages" not in text
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(DistillConfigError) as info:
        check_no_finished_set(folder, "soft", in_stages=True)
    text = str(info.value)
    assert f", continue that set with distill.resume={folder.parent} and a higher" in text
    # a study killed between its label modes (a tester: "a higher outer_steps" would change the finished set)
    assert "(with the same distill.outer_steps, distill.resume=last keeps it as it is and continues" in text
    assert text.endswith(", or leave distill out of the stages to evaluate, audit or publish it as it is")


def test_the_log_of_a_resumed_run_names_the_checkpoint_without_its_folders(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, caplog, capsys
):
    """Lightning logs the checkpoint a run resumes from by its absolute path, which reached the run's
    ``distill.log`` (folders above a run may name a site or a person): it is now shown by its last parts
    when outside the run folder, relative to the run folder when inside it."""
    common = [*tiny_overrides, "distill.ckpt_every=2", "distill.grid_every=0"]
    first = tmp_path / "St_Mary_runs" / "a"
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=2", f"paths.output_dir={first}"]), tiny_dm, first
    )
    second = tmp_path / "St_Mary_runs" / "b"
    caplog.set_level(logging.INFO)
    cfg = compose_cfg(
        [*common, "distill.outer_steps=4", f"paths.output_dir={second}", f"distill.resume={first}"]
    )
    capsys.readouterr()
    run_distillation(cfg, tiny_dm, second)
    restored = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert restored and all("…/soft/checkpoints/last.ckpt" in m for m in restored)
    assert f"the first part's logs and checkpoints stay in {first}" in capsys.readouterr().out
    cfg = compose_cfg([*common, "distill.outer_steps=6", f"paths.output_dir={second}", "distill.resume=last"])
    caplog.clear()
    run_distillation(cfg, tiny_dm, second)
    assert "first part's logs" not in capsys.readouterr().out  # continued in its own run folder
    restored = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert restored and all(m.endswith(" soft/checkpoints/last.ckpt") for m in restored)
    assert not any("St_Mary" in r.getMessage() for r in caplog.records)


def test_a_plain_rerun_beside_a_stopped_runs_checkpoints_is_refused_and_a_resume_continues(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """A command killed during its distillation and run again as it was (same ``hydra.run.dir``) started
    from step 0 beside the stopped run's checkpoints: Lightning wrote ``last-v1.ckpt``, ``last.ckpt`` stayed
    the stopped step, and a resume named by that file took the stale one (a breaker's finding). A fresh
    run there is refused, naming the way on; ``distill.resume=last`` continues the stopped run."""
    from gastrodistill.distillation.distilled_set import META_FILE

    common = [*tiny_overrides, "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg([*common, "distill.outer_steps=2"]), tiny_dm, tmp_path)
    (tmp_path / "soft" / META_FILE).unlink()  # stopped after its checkpoint, before the set was written
    with pytest.raises(DistillConfigError) as info:
        run_distillation(compose_cfg([*common, "distill.outer_steps=4"]), tiny_dm, tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'soft'} holds the checkpoints of a stopped soft-label run (newest: last.ckpt): "
        "distilling afresh would start from step 0 beside them (and its own last.ckpt would be another "
        "file). Continue that run with distill.resume=last in this run folder, or start a new run folder "
        "(drop hydra.run.dir or paths.output_dir)"
    )
    resumed = compose_cfg([*common, "distill.outer_steps=4", "distill.resume=last"])
    run_distillation(resumed, tiny_dm, tmp_path)
    names = sorted(p.name for p in (tmp_path / "soft" / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step000004.ckpt"] and (tmp_path / "soft" / META_FILE).is_file()


def test_resume_auto_continues_what_last_would_and_otherwise_starts_from_step_0(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, capsys
):
    """One command for the first start and every later one (a sweep run again after a stop whose later
    jobs had not started; a SLURM job requeued before its first checkpoint): ``last`` refuses when nothing
    can be continued, ``auto`` starts from step 0 then, saying so."""
    common = [*tiny_overrides, "distill.outer_steps=4", "distill.grid_every=0", "distill.ckpt_every=2"]
    full = run_distillation(compose_cfg(common), tiny_dm, tmp_path / "full")
    capsys.readouterr()
    with pytest.raises(ResumeError, match="no checkpoint of the soft-label run found"):
        run_distillation(compose_cfg([*common, "distill.resume=last"]), tiny_dm, tmp_path / "fresh")
    fresh = run_distillation(compose_cfg([*common, "distill.resume=auto"]), tiny_dm, tmp_path / "fresh")
    said = capsys.readouterr().out
    assert (
        "distill.resume=auto: no checkpoint of the soft-label run to continue: it starts from step 0" in said
    )
    run_distillation(compose_cfg([*common, "distill.outer_steps=2"]), tiny_dm, tmp_path / "part")
    resumed = run_distillation(compose_cfg([*common, "distill.resume=auto"]), tiny_dm, tmp_path / "part")
    assert "resuming the soft-label distillation from checkpoint" in capsys.readouterr().out
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(full, name), getattr(fresh, name)), name
        assert torch.equal(getattr(full, name), getattr(resumed, name)), name


def test_reproduce_with_resume_auto_and_no_checkpoint_starts_every_mode_from_step_0(compose_cfg, capsys):
    from gastrodistill.cli.reproduce import Pipeline

    with pytest.raises(ResumeError, match="no checkpoint of the soft or hard-label run found"):
        Pipeline(compose_cfg(["experiment=tiny", "distill.resume=last"])).resume_checkpoints()
    found = Pipeline(compose_cfg(["experiment=tiny", "distill.resume=auto"])).resume_checkpoints()
    assert found == {"soft": None, "hard": None}
    said = capsys.readouterr().out
    for mode in ("soft", "hard"):
        assert f"no checkpoint of the {mode}-label run to resume: it starts from step 0" in said


def test_auto_starts_from_step_0_whatever_spaces_surround_it_and_nothing_else_does():
    """``distill.resume=' auto'`` (a quoted value, a YAML line) is ``auto``; ``last``, a path or ``autox``
    stop with a ResumeError instead when nothing is found."""
    from gastrodistill.distillation.resume import starts_when_none

    assert starts_when_none("auto") and starts_when_none(" auto") and starts_when_none("auto\n")
    assert not any(starts_when_none(v) for v in ("last", "autox", "runs/auto", None, ""))


def test_newest_breaks_an_mtime_tie_by_the_higher_step_then_last(tmp_path):
    """Checkpoints written within one timestamp (a coarse file system): the higher step number wins, a
    six-digit one included (step100000 > step099999), and a step file over last.ckpt (no step number)."""
    from gastrodistill.distillation.resume import newest

    folder = tmp_path / "soft" / "checkpoints"
    paths = [touch(folder / f"{name}.ckpt") for name in ("step000010", "step100000", "step099999", "last")]
    for p in paths:
        os.utime(p, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert newest(paths) == folder / "step100000.ckpt"
    assert newest([paths[0], paths[3]]) == folder / "step000010.ckpt"
    assert newest([paths[3]]) == folder / "last.ckpt" and newest([]) is None


def test_last_under_resume_root_takes_the_furthest_step_of_these_settings_not_the_newest(tmp_path):
    """Two earlier runs of the same settings: resume=last continues the one furthest on (step 5, written
    first) rather than the newest file (step 3); one past outer_steps or of another seed is skipped."""
    settings = {"seed": 0, "model": {}, "zca": None, "distill": {"ipc": 2}, "start": {}}

    def write(run: str, step: int, age_s: float, **other) -> Path:
        path = tmp_path / "root" / run / "soft" / "checkpoints" / f"step{step:06d}.ckpt"
        path.parent.mkdir(parents=True)
        record = {"mode": "soft", "settings": {**settings, **other}}
        torch.save({"gastrodistill": record, "global_step": step}, path)
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        return path

    furthest = write("a", 5, age_s=100)
    write("b", 3, age_s=50)
    write("c", 9, age_s=10)  # past outer_steps=8
    write("d", 7, age_s=5, seed=1)  # another seed
    got = resolve_resume(
        "last", "soft", tmp_path / "now" / "soft", tmp_path / "root", settings, outer_steps=8
    )
    assert got == furthest


def test_settings_compare_the_whitening_and_read_a_seed_given_as_text():
    """data.zca is compared even when one side lacks it (an older checkpoint: no whitening); a seed given
    as the text "3" (a Hydra override) is the integer 3; a stage's progress bar is not a start setting."""
    from omegaconf import OmegaConf

    from gastrodistill.distillation.resume import run_settings, settings_differences

    zca = {"eps": 0.1}
    assert settings_differences({"zca": zca}, {"zca": None}) == [
        'data.zca is {"eps":0.1} there but null here'
    ]
    assert settings_differences({}, {"zca": zca}) == ['data.zca is null there but {"eps":0.1} here']
    cfg = OmegaConf.create(
        {"seed": "3", "distill": {"ipc": 2, "distribution_matching": {"steps": 4, "progress": False}}}
    )
    got = run_settings(cfg)
    assert got["seed"] == 3 and got["distill"] == {"ipc": 2}
    assert got["start"] == {"distribution_matching": {"steps": 4}}
    assert settings_differences(got, {"seed": 3}) == []


def test_every_distill_key_is_a_run_key_a_start_key_or_one_a_resume_may_change(compose_cfg):
    """The keys a resume may change are those the RUN_KEYS comment names (frequencies, where the real
    batches live, memory knobs, the resume itself, the mode, checked on its own); every other key of
    distill must be compared (RUN_KEYS) or matched by resume=last (START_KEYS), so a key left out of both
    (a new option, or one dropped by mistake) fails here."""
    from gastrodistill.distillation.resume import RUN_KEYS, START_KEYS

    changeable = {
        "outer_steps", "resume", "resume_root", "mode", "log_every", "grid_every", "ckpt_every",
        "check_every", "debug_record", "real_data", "resident_max_bytes", "prefetch", "checkpoint",
        "outer_chunk", "channels_last",
    }  # fmt: skip
    for preset in ("soft", "hard", "soft_cpu", "hard_cpu"):
        keys = set(compose_cfg([f"distill={preset}"]).distill)
        assert keys - changeable - set(START_KEYS) - set(RUN_KEYS) == set(), preset
        assert not (set(RUN_KEYS) | set(START_KEYS)) & changeable
