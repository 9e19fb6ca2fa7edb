"""What a first run shows: data errors of every layout as a message alone, exit 1, no output behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli_runner import assert_nothing_written, run_main
from gastric_testdata import image_pixels, write_png
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from gastrodistill.cli import build_patches, distill, reproduce
from gastrodistill.data.errors import ManifestError


def _break_gastric(root: Path) -> None:
    """Row-level (missing file, unknown diagnosis) and file-level (truncated, mask size, RGB) problems."""
    text = (root / "manifest.csv").read_text().splitlines()
    text[1] = text[1].replace("images/A1_0.png", "images/missing.png")  # line 2: missing file
    text[2] = text[2].replace("gastritis", "gastritis?")  # line 3: unknown diagnosis
    (root / "manifest.csv").write_text("\n".join(text) + "\n")
    p = root / "images" / "A2_0.png"  # line 4: truncated PNG
    p.write_bytes(p.read_bytes()[:-2000])
    write_png(root / "masks" / "A2_1.png", np.zeros((100, 91), np.uint8))  # line 5: mask of another size
    Image.fromarray(np.zeros((100, 90, 3), np.uint8)).save(root / "images" / "A3_0.png")  # line 6: RGB


def test_manifest_reports_row_and_file_problems_in_one_pass(data_root):
    from gastrodistill.data.manifest import check_all
    from gastrodistill.data.tiling import Geometry

    _break_gastric(data_root)
    with pytest.raises(ManifestError) as info:
        check_all(data_root, Geometry(32, 8), progress=False)
    msg = str(info.value)
    assert len(info.value.problems) == 5, info.value.problems
    assert "line 2" in msg and "not found" in msg
    assert "line 3" in msg and "unknown diagnosis" in msg
    assert "line 4" in msg and "truncated" in msg
    assert "line 5" in msg and "100x91" in msg
    assert "line 6" in msg and "colour" in msg


def test_gastric_data_errors_message_alone_no_output(data_root, tmp_path, monkeypatch, capsys):
    _break_gastric(data_root)
    argv = _patches_argv(tmp_path / "work", data_root, "data.patch_size=32", "data.overlap=8")
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1
    assert text.strip().startswith("error:") and "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    assert "line 2" in text and "line 6" in text
    assert_nothing_written(tmp_path / "work")


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (lambda b: b.replace(b"A1,", b"M\xfcller,"), "manifest.csv line 2: byte 0xfc is not UTF-8"),
        (lambda b: b.decode().encode("utf-16"), "manifest.csv is saved as UTF-16"),
        (lambda b: b.replace(b"images/A2_0.png", b"images/A2\x00_0.png"), "manifest.csv line 4: holds a NUL"),
    ],
    ids=["cp1252", "utf-16", "nul-in-path"],
)
def test_a_manifest_that_is_not_utf8_text_is_one_line_no_traceback(
    data_root, tmp_path, monkeypatch, capsys, damage, expect
):
    """A cp1252 byte, a UTF-16 export or a NUL byte in an image path raised UnicodeDecodeError or
    "ValueError: embedded null byte" with a traceback; now: the file, the line and what to do."""
    manifest = data_root / "manifest.csv"
    manifest.write_bytes(damage(manifest.read_bytes()))
    argv = _patches_argv(tmp_path / "work", data_root, "data.patch_size=32", "data.overlap=8")
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    assert text.strip().startswith(f"error: {data_root}") and expect in text and "save it as UTF-8" in text
    assert_nothing_written(tmp_path / "work")


def test_full_error_still_shows_the_exception(data_root, tmp_path, monkeypatch):
    _break_gastric(data_root)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(
        sys,
        "argv",
        ["gastrodistill-patches", f"paths.root_dir={tmp_path}", f"paths.data_root={data_root}", "logger=csv"],
    )
    GlobalHydra.instance().clear()
    with pytest.raises(ManifestError):
        build_patches.main()
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("command", ["distill", "reproduce"])
@pytest.mark.parametrize("layout", ["npz", "folder"])
def test_collection_data_errors_message_alone_no_output(tmp_path, monkeypatch, capsys, layout, command):
    work = tmp_path / "work"
    if layout == "npz":
        bad = tmp_path / "bad.npz"
        np.savez(bad, train_images=np.zeros((4, 8, 8), np.uint8))
        data = ["data=npz", f"data.path={bad}"]
        expect = "lacks keys"
    else:
        root = tmp_path / "imgs"
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            for i in range(5):
                write_png(root / c / f"{i}.png", image_pixels(8, 8, i, np.uint8))
        (root / "b" / "3.png").write_bytes(b"not a png")
        data = ["data=folder", f"data.root={root}"]
        expect = "b/3.png: not a readable image"
    argv = [f"gastrodistill-{command}", f"paths.root_dir={work}", "logger=csv", *data]
    if command == "reproduce":
        argv.append("stages=[distill,evaluate]")
    main = distill.main if command == "distill" else reproduce.main
    code, text = run_main(main, argv, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text and expect in text
    assert text.strip().splitlines()[-1].startswith("error:")
    assert_nothing_written(work)


NPZ_CASES = {  # kind: (extra override, what the one line says)
    "truncated": ("", "is damaged"),
    "npy": ("", "single .npy"),
    "image_size": ("data.image_size=0", "data.image_size must"),
    "image_size_true": ("data.image_size=true", "data.image_size must be a positive int"),
    "image_size_text": ('data.image_size="16px"', "got '16px' (text that is not a whole number"),
    "huge": ("data.image_size=100000", "data.image_size=100000x100000: 36 images of 1 channel(s)"),
    "zero_side": ("data.image_size=8", "key 'train_images': images of shape (12, 0, 8) have a zero-sized"),
    "folder": ("", "'data.npz' (data.path) is a folder, not a file"),
}


@pytest.mark.parametrize("kind", list(NPZ_CASES))
def test_damaged_npz_or_bad_size_message_alone_no_output(tmp_path, monkeypatch, capsys, kind):
    work = tmp_path / "work"
    path = tmp_path / ("data.npy" if kind == "npy" else "data.npz")
    if kind == "npy":
        np.save(path, np.zeros((4, 8, 8), np.uint8))
    elif kind == "folder":
        path.mkdir()
    else:
        labels = np.arange(12) % 2
        arrays = {f"{s}_images": np.zeros((12, 8, 8), np.uint8) for s in ("train", "val", "test")}
        if kind == "zero_side":
            arrays["train_images"] = np.zeros((12, 0, 8), np.uint8)
        np.savez(path, **arrays, **{f"{s}_labels": labels for s in ("train", "val", "test")})
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:-40])
    argv = ["gastrodistill-distill", f"paths.root_dir={work}", "logger=csv", "data=npz", f"data.path={path}"]
    override, expect = NPZ_CASES[kind]
    if override:
        argv.append(override)
    code, text = run_main(distill.main, argv, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text and expect in text, text
    assert text.strip().splitlines()[-1].startswith("error:")
    assert_nothing_written(work)


def test_a_relative_path_lost_to_hydra_job_chdir_says_so(tmp_path, monkeypatch, capsys):
    """``hydra.job.chdir=true`` reads a relative data.path from the run folder: the error says that the
    file exists where the command started, and how to name it."""
    work = tmp_path / "w"
    monkeypatch.chdir(tmp_path)
    labels = np.arange(12) % 2
    arrays = {f"{s}_images": np.zeros((12, 8, 8), np.uint8) for s in ("train", "val", "test")}
    np.savez(tmp_path / "rel.npz", **arrays, **{f"{s}_labels": labels for s in ("train", "val", "test")})
    argv = ["gastrodistill-distill", f"paths.root_dir={work}", "logger=csv", "data=npz", "data.path=rel.npz"]
    code, text = run_main(distill.main, [*argv, "hydra.job.chdir=true"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text, text
    assert "npz file 'rel.npz' (data.path) not found" in text and "with hydra.job.chdir=true" in text, text
    assert "data.path=${hydra:runtime.cwd}/rel.npz" in text
    assert_nothing_written(work)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel.npz").unlink()  # missing everywhere: no hint
    code, text = run_main(distill.main, [*argv, "hydra.job.chdir=true"], monkeypatch, capsys)
    assert code == 1 and "not found" in text and "hydra.job.chdir" not in text, text
    assert "(rel.npz is relative, so it is read from the folder the command runs in, " in text, text


def test_the_default_data_root_from_another_folder_says_it_is_relative(tmp_path, monkeypatch, capsys):
    """A newcomer ran a command from ``docs/`` (a SLURM job starts in ``$HOME``): the default data root
    ``data/synthetic/tiny`` was "not a folder", without a word that it is read from the current folder."""
    from gastrodistill.cli import distill

    monkeypatch.delenv("GASTRODISTILL_ROOT", raising=False)
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    argv = ["gastrodistill-distill", "experiment=tiny", f"hydra.run.dir={tmp_path / 'run'}"]
    code, text = run_main(distill.main, argv, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text, text
    assert text.strip().startswith("error: DATA_ROOT data/synthetic/tiny is not a folder;"), text
    assert (
        f"(data/synthetic/tiny is relative, so it is read from the folder the command runs in, "
        f"{tmp_path / 'docs'}: run the command from your project's folder, or set "
        "GASTRODISTILL_ROOT=<project folder> (paths.root_dir)"
    ) in text, text
    assert_nothing_written(tmp_path / "docs")


def test_a_relative_gastric_data_root_lost_to_hydra_job_chdir_says_so(
    data_root, tmp_path, monkeypatch, capsys
):
    work = tmp_path / "w"
    monkeypatch.chdir(data_root.parent)
    argv = ["gastrodistill-patches", f"paths.root_dir={work}", "logger=csv", f"data.root={data_root.name}"]
    code, text = run_main(build_patches.main, [*argv, "hydra.job.chdir=true"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text, text
    assert f"DATA_ROOT {data_root.name} is not a folder" in text and "with hydra.job.chdir=true" in text, text
    assert f"data.root=${{hydra:runtime.cwd}}/{data_root.name}" in text
    assert_nothing_written(work)


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_exits_1(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=np.zeros((4, 8, 8), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gastrodistill.cli.distill",
            "data=npz",
            f"data.path={bad}",
            f"paths.root_dir={tmp_path / 'w'}",
            "logger=csv",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert proc.stderr.startswith("error: npz file 'bad.npz' lacks keys")
    assert_nothing_written(tmp_path / "w")


def test_wrapper_closes_an_open_wandb_run_when_a_stage_fails(monkeypatch, tmp_path):
    import wandb

    from gastrodistill.cli.errors import friendly_errors
    from gastrodistill.data.errors import DataInputError

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))

    @friendly_errors
    def stage(cfg):
        wandb.init(project="t", dir=str(tmp_path), mode="offline")
        raise DataInputError("bad row")

    with pytest.raises(SystemExit):
        stage(None)
    assert wandb.run is None

    @friendly_errors
    def crash(cfg):
        wandb.init(project="t", dir=str(tmp_path), mode="offline")
        raise RuntimeError("a bug, not a data error")

    with pytest.raises(RuntimeError, match="a bug"):
        crash(None)  # not the project's error: raised as is (Hydra shows the traceback)
    assert wandb.run is None


def test_project_error_found_through_hydra_instantiation():
    from hydra.errors import InstantiationException

    from gastrodistill.cli.errors import message, project_error
    from gastrodistill.data.collections import CollectionError

    inner = CollectionError("npz file 'x.npz' lacks keys")
    try:
        try:
            raise inner
        except CollectionError as e:
            raise InstantiationException("Error in call to target") from e
    except InstantiationException as outer:
        assert project_error(outer) is inner
        assert message(project_error(outer)) == "error: npz file 'x.npz' lacks keys"
    assert project_error(RuntimeError("x")) is None


def test_sweep_runs_the_other_jobs_and_exits_1(make_root, tmp_path, monkeypatch, capsys):
    good = make_root("good")
    bad = make_root("bad")
    (bad / "images" / "A1_0.png").unlink()
    argv = [
        "gastrodistill-patches",
        "-m",
        f"paths.root_dir={tmp_path / 'work'}",
        f"paths.data_root={bad},{good}",
        "data.patch_size=32",
        "data.overlap=8",
        "data.storage_size=16",
        "data.progress=false",
        "logger=csv",
    ]
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1
    assert "error:" in text and "A1_0.png" in text and "not found" in text
    assert "Traceback" not in text
    stores = [p for p in (tmp_path / "work" / "data" / "stores").iterdir() if p.is_dir()]
    assert len(stores) == 1  # the good job still built its store
    jobs = sorted(
        p.name for p in (tmp_path / "work" / "outputs" / "default" / "multiruns").glob("*/*") if p.is_dir()
    )
    assert jobs == ["1"]  # the failed job's folder is gone, the good one's stays


def test_every_registered_project_error_exists_and_a_diverged_full_data_recipe_is_one():
    """Each name in PROJECT_ERRORS is an importable exception class (a misspelt entry would silently print
    a traceback), and the all-data recipe's divergence is printed as a message, not a traceback."""
    import importlib

    from gastrodistill.cli.errors import PROJECT_ERRORS, project_error
    from gastrodistill.evaluation.full_data import RealTrainingDivergedError

    for name in PROJECT_ERRORS:
        module, _, cls = name.rpartition(".")
        found = getattr(importlib.import_module(module), cls)
        # matched by the class's own module and name: a re-exported alias would never match
        assert issubclass(found, Exception) and f"{found.__module__}.{found.__qualname__}" == name, name
    err = RealTrainingDivergedError("real training epoch 3: loss nan; lower eval.baselines.real.lr")
    assert project_error(err) is err
    assert project_error(FloatingPointError("x")) is None
    # the evaluation's and the distiller's config errors are printed as messages too
    from gastrodistill.distillation.module import check_precision
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    with pytest.raises(ValueError) as bad_precision:
        check_precision("16-mixed")
    assert project_error(bad_precision.value) is bad_precision.value
    assert project_error(EvaluationConfigError("eval.standard: x")) is not None


def test_the_error_line_comes_after_the_progress_bars_on_its_own_line(capsys):
    """A project error raised while a progress bar is half drawn is printed on a line of its own after
    the bar (the bar is closed first), and nothing is drawn after it."""
    from tqdm.auto import tqdm

    from gastrodistill.cli.errors import report_errors
    from gastrodistill.models.layers import ModelConfigError

    @report_errors
    def work() -> None:
        bar = tqdm(total=10, desc="fresh networks")
        bar.update(3)
        raise ModelConfigError("ConvNet depth 4 on 8x8 px images: lower model.depth")

    with pytest.raises(SystemExit):
        work()
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").split("\n") if line.strip()]
    assert lines[-1] == "error: ConvNet depth 4 on 8x8 px images: lower model.depth"
    assert "fresh networks" in err


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        ("distill.mode=hard", "error: distill.mode does not choose"),
        ("++distill.mode=soft", "error: distill.mode does not choose"),
        ("~distill.mode", "error: distill.mode does not choose"),
        ("distill=hard_cpu", "error: distill=hard_cpu sets distill.mode=hard"),
    ],
)
def test_reproduce_refuses_a_label_mode_and_names_distill_modes(
    tmp_path, monkeypatch, capsys, override, expect
):
    """`gastrodistill-reproduce distill.mode=hard` (or `distill=hard_cpu`) used to distil soft and hard sets
    (the modes come from reproduce.distill_modes) without a word: now a message naming the key to set,
    exit 1, nothing written."""
    work = tmp_path / "work"
    argv = ["gastrodistill-reproduce", "experiment=tiny", f"paths.root_dir={work}", "logger=csv", override]
    code, text = run_main(reproduce.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip().startswith(expect) and "Traceback" not in text
    assert "reproduce.distill_modes" in text and "['soft', 'hard']" in text
    assert_nothing_written(work)


def test_mode_override_check_passes_other_overrides() -> None:
    from gastrodistill.cli.reproduce import ReproduceConfigError, check_mode_override

    others = ["reproduce.distill_modes=[hard]", "distill.lr_init=0.1", "distill=hard_cpu"]
    check_mode_override(others, ["hard"], "hard")  # hard labels only: what distill=hard_cpu asks for
    check_mode_override(["distill=soft_cpu"], ["soft", "hard"], "soft")  # a soft recipe for both modes
    with pytest.raises(ReproduceConfigError, match=r"set reproduce.distill_modes=\[hard\] to distil only"):
        check_mode_override(["seed=1", "distill.mode=hard"], ["soft", "hard"], "soft")
    with pytest.raises(ReproduceConfigError, match=r"set reproduce.distill_modes to \[soft\], \[hard\] or"):
        check_mode_override(["distill.mode=HARD"], ["soft", "hard"], "soft")  # no advice to set [HARD]


def test_project_errors_stay_friendly_under_python_m(tmp_path) -> None:
    """`python -m gastrodistill.cli.reproduce` defines its errors in `__main__`: still a message alone."""
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "gastrodistill.cli.reproduce", "experiment=tiny", f"paths.root_dir={work}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run([*cmd, "distill.mode=hard"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().startswith("error: distill.mode does not choose"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert_nothing_written(work)


def test_an_unresolvable_interpolation_is_a_message_naming_the_key(tmp_path, monkeypatch, capsys):
    """`model.width=${oc.env:VAR}` with VAR unset was a full traceback that left .hydra/ and a log."""
    monkeypatch.delenv("GASTRODISTILL_TEST_UNSET", raising=False)
    work = tmp_path / "work"
    argv = [
        "gastrodistill-reproduce",
        "experiment=tiny",
        f"paths.root_dir={work}",
        "logger=csv",
        "model.width=${oc.env:GASTRODISTILL_TEST_UNSET}",
    ]
    code, text = run_main(reproduce.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip().startswith("error: ") and "Traceback" not in text
    assert "GASTRODISTILL_TEST_UNSET" in text and "model.width" in text
    assert_nothing_written(work)


def test_a_seed_that_is_not_an_integer_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """`seed=abc` was a traceback from `int()` inside the distiller, after the data had been loaded."""
    work = tmp_path / "work"
    argv = ["gastrodistill-reproduce", "experiment=tiny", f"paths.root_dir={work}", "logger=csv", "seed=abc"]
    code, text = run_main(reproduce.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip().splitlines()[-1] == "error: seed must be an integer, got 'abc'; e.g. seed=0", text
    assert "Traceback" not in text
    assert_nothing_written(work)


def _patches_argv(work, data_root, *overrides: str) -> list[str]:
    """``gastrodistill-patches`` on ``data_root`` with outputs under ``work`` and more ``overrides``."""
    return [
        "gastrodistill-patches",
        f"paths.root_dir={work}",
        f"paths.data_root={data_root}",
        "data.progress=false",
        "logger=csv",
        *overrides,
    ]


def test_a_value_a_constructor_cannot_take_names_the_override_and_leaves_nothing(
    data_root, tmp_path, monkeypatch, capsys
):
    """`data.mask_threshold=abc` was Hydra's instantiation message, naming only `data`, and left .hydra/.
    (`data.storage_size=abc`, the first such case, is now refused by the data's own size check.)"""
    work = tmp_path / "work"
    argv = _patches_argv(work, data_root, "data.mask_threshold=abc")
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1, text
    line = text.strip().splitlines()[-1]
    assert line.startswith("error: cannot build data (gastrodistill.data.gastric.GastricPatchDataModule): ")
    assert line.endswith("change the override data.mask_threshold=abc"), line
    assert "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    assert_nothing_written(work)


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        (
            "data.storage_size=abc",
            "error: data.storage_size must be a positive whole number of pixels, got 'abc'",
        ),
        (
            "data.storage_size=true",
            "error: data.storage_size must be a positive whole number of pixels, got True",
        ),
    ],
)
def test_a_bad_storage_size_is_one_line_naming_the_key(
    data_root, tmp_path, monkeypatch, capsys, override, expect
):
    """`data.storage_size=true` was silently a 1 px store; `abc` is refused by the same size check."""
    work = tmp_path / "work"
    argv = _patches_argv(work, data_root, override)
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1, text
    line = text.strip().splitlines()[-1]
    assert line.startswith(expect) and "e.g. data.storage_size=64" in line, line
    assert "Traceback" not in text
    assert_nothing_written(work)


def test_instantiation_message_names_only_overrides_under_the_key_whose_value_is_in_the_cause():
    from hydra.errors import InstantiationException

    from gastrodistill.cli.errors import instantiation_message, instantiation_value_error

    try:
        try:
            int("7x")
        except ValueError as e:
            text = "Error in call to target 'pkg.Thing':\nValueError(...)\nfull_key: model"
            raise InstantiationException(text) from e
    except InstantiationException as outer:
        assert instantiation_value_error(outer) is outer
        overrides = ["model.width=7x", "data.size=7x", "+model.depth=3", "model.pool=max"]
        assert instantiation_message(outer, overrides) == (
            "error: cannot build model (pkg.Thing): invalid literal for int() with base 10: '7x'; "
            "change the override model.width=7x"
        )
        # a value is named only when it stands alone in the cause ('a' is inside '7xa', not named)
        assert instantiation_message(outer, ["model.width=7x", "model.name=x"]).endswith(
            "change the override model.width=7x"
        )
        assert instantiation_message(outer, ["model.pool=max"]).endswith(
            "check the values under model (HYDRA_FULL_ERROR=1 shows where it failed)"
        )
    bug = InstantiationException("Error in call to target 'pkg.Thing'")
    bug.__cause__ = RuntimeError("a bug")
    assert instantiation_value_error(bug) is None  # not a value problem: Hydra's own report stands


def test_the_seed_check_takes_integers_and_digit_strings_and_refuses_the_rest():
    from omegaconf import OmegaConf

    from gastrodistill.cli.errors import CommandError, check_root_values

    for ok in (0, 7, -3, "12", " 5 "):  # a digit string is what ${oc.env:SEED} gives; the stages int() it
        check_root_values(OmegaConf.create({"seed": ok}))
    check_root_values(OmegaConf.create({"other": 1}))  # no seed key: nothing to check
    for bad in (None, "abc", 1.5, True, "1.5"):
        with pytest.raises(CommandError, match="seed must be an integer, got"):
            check_root_values(OmegaConf.create({"seed": bad}))


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        # Hydra keeps "no" / "off" as strings, which are true: class-balanced batches stayed on
        ("data.balanced_sampler=no", "data.balanced_sampler must be true or false, got 'no'"),
        ("data.progress=off", "data.progress must be true or false, got 'off'"),
        # these failed inside a DataLoader at the evaluation, after the distillation
        ("data.eval_batch_size=0", "data.eval_batch_size must be an integer >= 1, got 0"),
        ("data.num_workers=-1", "data.num_workers must be an integer >= 0, got -1"),
    ],
)
def test_loader_settings_are_refused_when_the_data_module_is_built(compose_cfg, override, needle):
    import hydra
    from hydra.errors import InstantiationException

    cfg = compose_cfg(["experiment=tiny", override])
    with pytest.raises(InstantiationException) as info:
        hydra.utils.instantiate(cfg.data)
    assert needle in str(info.value.__cause__ or info.value)


def test_a_sweep_jobs_error_goes_to_the_console_not_into_its_log(tmp_path, monkeypatch, capsys):
    """In a sweep a failed job's folder may stay (it had written something) with its log file; the error
    names the file or patient to fix, so it is printed, never logged (the privacy rule: no path or patient
    id in a log). Hydra still gets the failure (``StageError``) to report at the end of the sweep."""
    import logging

    from gastrodistill.cli import errors
    from gastrodistill.data.errors import ManifestError

    job = tmp_path / "job"
    (job / "eval").mkdir(parents=True)
    (job / "eval" / "results.csv").write_text("kept\n")  # the job wrote something: its folder stays
    monkeypatch.setattr(errors, "_multirun", lambda: True)
    monkeypatch.setattr(errors, "_job_output_dir", lambda: job)
    handler = logging.FileHandler(job / "job.log")
    logging.getLogger().addHandler(handler)

    @errors.friendly_errors
    def task(cfg):
        raise ManifestError("manifest.csv line 7 'images/PATIENT_X.dcm': not found; fix the path")

    try:
        with pytest.raises(errors.StageError, match="PATIENT_X"):
            task({"seed": 0})
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert "PATIENT_X" in capsys.readouterr().err
    assert (job / "eval" / "results.csv").is_file()
    assert "PATIENT_X" not in (job / "job.log").read_text()


def test_a_full_disk_or_a_folder_that_may_not_be_written_is_a_message_not_a_traceback(capsys):
    """A tmpfs of 800 kB and an immutable stage folder gave tracebacks from Lightning's CSV logger,
    safetensors and the atomic writer (a breaker's finding); a missing file is still a bug's traceback."""
    import errno

    from hydra.errors import InstantiationException
    from safetensors import SafetensorError

    from gastrodistill.cli import errors

    full = OSError(errno.ENOSPC, "No space left on device")
    try:  # as Hydra's instantiate wraps what a logger's constructor raised
        try:
            raise full
        except OSError as exc:
            raise InstantiationException("Error in call to target 'CSVLogger'") from exc
    except InstantiationException as wrapped:
        text = errors.known_error_text(wrapped)
    assert text.startswith("error: no space left on the device: free space there") and "hydra.run.dir" in text

    rust = SafetensorError(
        "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
        'message: "No space left on device" })'
    )
    assert errors.known_error_text(rust).startswith("error: no space left on the device")

    denied = PermissionError(errno.EACCES, "Permission denied", "/runs/r1/eval/tmpab12.csv")
    assert errors.known_error_text(denied) == (
        "error: Permission denied (/runs/r1/eval/tmpab12.csv): make it readable (an input) or writable (an "
        "output) for you, or choose another output folder (hydra.run.dir=... or paths.root_dir=...) or patch "
        "store folder (data.store_root=...)"
    )
    assert errors.known_error_text(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
    try:  # a bug's error raised while a permission error was being handled stays a traceback
        try:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        except PermissionError:
            raise KeyError("a bug")  # noqa: B904 - a bug inside the except block
    except KeyError as bug:
        assert bug.__context__ is not None and errors.known_error_text(bug) is None
    shm = RuntimeError("unable to write to file </torch_4242_1234_0>: No space left on device (28)")
    assert errors.known_error_text(shm).startswith("error: the shared memory (/dev/shm) is full")
    assert "data.num_workers=0" in errors.known_error_text(shm)

    @errors.friendly_errors
    def task(cfg):
        raise full

    with pytest.raises(SystemExit) as info:
        task({"seed": 0})
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no space left on the device") and "Traceback" not in err


def test_an_absolute_npz_path_that_is_missing_is_named_whole(tmp_path):
    """data.path=/data/pneumoniamnist.npz said "npz file 'pneumoniamnist.npz' not found", dropping the
    folder it looked in (a breaker's finding)."""
    from gastrodistill.data.collections import CollectionError, NpzDataModule

    missing = tmp_path / "data" / "pneumoniamnist.npz"
    with pytest.raises(CollectionError, match=rf"npz file '{missing}' \(data.path\) not found"):
        NpzDataModule(missing).setup("fit")


def test_a_misspelt_target_is_one_line_naming_the_key_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """`data._target_=...Modulee` was Hydra's five-line "Error locating target" message, with the run folder
    left; the folder it was asked to run in (hydra.run.dir) is removed, the user's folder above it stays."""
    mine = tmp_path / "mine"
    mine.mkdir()
    wrong = "gastrodistill.data.gastric.GastricPatchDataModulee"
    argv = [
        "gastrodistill-distill",
        "experiment=tiny",
        f"paths.root_dir={tmp_path / 'work'}",
        f"hydra.run.dir={mine / 'r1'}",
        "logger=csv",
        f"data._target_={wrong}",
    ]
    code, text = run_main(distill.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip().splitlines()[-1] == (
        f"error: data._target_ = {wrong!r} cannot be imported (no such module, class or function): check its "
        "spelling, or that the package that defines it is installed"
    )
    assert "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    assert mine.is_dir()  # an empty folder of the user's above the run folder is not removed with it
    assert_nothing_written(mine)
    assert_nothing_written(tmp_path / "work")


def test_a_file_where_a_folder_is_needed_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """`paths.data_root=<a file>/x` was a traceback (FileExistsError), and the run folder stayed."""
    from gastrodistill.cli import generate

    in_the_way = tmp_path / "afile"
    in_the_way.write_text("not a folder")
    work = tmp_path / "work"
    argv = [
        "gastrodistill-generate",
        "experiment=tiny",
        f"paths.root_dir={work}",
        f"paths.data_root={in_the_way}/x",
    ]
    code, text = run_main(generate.main, argv, monkeypatch, capsys)
    assert code == 1, text
    line = text.strip().splitlines()[-1]
    assert line.startswith(f"error: a file is in the way of a folder this run needs ({in_the_way})"), line
    assert "Traceback" not in text
    assert_nothing_written(work)


def test_a_bug_in_an_existing_run_folder_keeps_its_record(tmp_path, monkeypatch, capsys):
    """An error that is not the project's (a bug: its traceback stays) left the refused command's `.hydra/`
    in place of the finished run's; the folder is now put back as for any refusal that made nothing."""
    from gastrodistill.cli import generate

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- the finished run's\n")
    (run / "results.csv").write_text("a,b\n1,2\n")

    def bug(cfg):
        raise RuntimeError("a bug")

    monkeypatch.setattr(generate, "run", bug)
    argv = ["gastrodistill-generate", "experiment=tiny", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run}"]
    code, text = run_main(generate.main, argv, monkeypatch, capsys)
    assert code == 1 and "RuntimeError: a bug" in text
    assert (run / ".hydra" / "overrides.yaml").read_text() == "- the finished run's\n"
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "results.csv"]


def test_a_bug_in_a_new_run_folder_keeps_the_folder_for_the_bug_report(tmp_path, monkeypatch, capsys):
    """A bug (not the project's error: its traceback) in a new run folder keeps the folder, with its job
    log and run record: the evidence of the report; only a folder that existed is put back."""
    import logging

    from gastrodistill.cli import generate

    def bug(cfg):
        logging.getLogger("gastrodistill.test").warning("before the bug")
        raise RuntimeError("a bug")

    monkeypatch.setattr(generate, "run", bug)
    run = tmp_path / "new" / "run"
    argv = ["gastrodistill-generate", "experiment=tiny", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run}"]
    code, text = run_main(generate.main, argv, monkeypatch, capsys)
    assert code == 1 and "RuntimeError: a bug" in text
    assert (run / ".hydra" / "config.yaml").is_file()
    assert "before the bug" in (run / "generate.log").read_text()


def test_a_bug_raised_while_a_file_was_in_the_way_keeps_its_traceback():
    """Only an explicit cause counts: a KeyError raised while handling a NotADirectoryError is a bug."""
    from gastrodistill.cli.errors import known_error_text

    try:
        try:
            raise NotADirectoryError(20, "Not a directory", "/etc/hostname")
        except NotADirectoryError:
            {}["missing"]
    except KeyError as bug:
        assert known_error_text(bug) is None
    caused = RuntimeError("wrapped")
    caused.__cause__ = NotADirectoryError(20, "Not a directory", "/etc/hostname")
    assert known_error_text(caused).startswith("error: a file is in the way of a folder this run needs")


def test_a_mandatory_value_left_unset_is_one_line_saying_which_key_to_set(tmp_path, monkeypatch, capsys):
    """`data=folder` without `data.root`: OmegaConf's MissingMandatoryValue is the first line of its
    message and the override to set, alone (kills its PROJECT_ERRORS entry, the advice or the cut dropped)."""
    from omegaconf import MissingMandatoryValue, OmegaConf

    with pytest.raises(MissingMandatoryValue) as info:
        OmegaConf.create({"data": {"root": "???"}}).data.root  # noqa: B018 - OmegaConf's own wording
    first = str(info.value).splitlines()[0]
    work = tmp_path / "work"
    argv = ["gastrodistill-patches", f"paths.root_dir={work}", "logger=csv", "data=folder"]
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip() == f"error: {first}; set it on the command line, e.g. data.root=...", text
    assert_nothing_written(work)


def test_every_error_class_of_the_package_is_known_to_the_commands_or_handled_where_raised():
    """An error class of the package that is not in PROJECT_ERRORS (nor below one) ends a command in a
    traceback: each is either known or named here with where it is handled (kills an entry dropped)."""
    import importlib
    import inspect

    import gastrodistill
    from gastrodistill.cli.errors import known_error_text

    handled_elsewhere = {
        "gastrodistill.cli.errors.StageError",  # the handler's own re-raise in a sweep
        "gastrodistill.evaluation.over_runs.RunsInputError",  # compare_runs / paired_over_runs print it
        "gastrodistill.cli.compare_runs.CompareInputError",  # compare_runs prints it (exit 2)
        "gastrodistill.evaluation.report.UnreadableSources",  # report.py: all records, or a reason
        "gastrodistill.sharing.text_parts.UnsearchableError",  # text_check reports the file as unsearchable
        "gastrodistill.utils.safe_config.UnsafeNodeError",  # re-raised as ArtifactError / CardError
    }
    package = Path(gastrodistill.__file__).parent
    classes = {}
    for path in sorted(package.rglob("*.py")):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        for obj in vars(importlib.import_module(name)).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name:
                classes[f"{name}.{obj.__qualname__}"] = obj
    # a namespace package's modules too (evaluation/ has no __init__.py)
    assert "gastrodistill.data.zca.ZCAError" in classes
    assert "gastrodistill.evaluation.jobs.EvaluationConfigError" in classes
    unknown = []
    for name, cls in sorted(classes.items()):
        if name in handled_elsewhere:
            continue
        try:
            exc = cls("what is wrong and what to do")
        except TypeError:  # a constructor of its own: the class is matched the same way
            exc = cls.__new__(cls)
            exc.args = ("what is wrong and what to do",)
        if known_error_text(exc) != f"error: {exc}":
            unknown.append(name)
    assert unknown == []


def test_an_error_class_of_a_command_run_with_python_m_is_the_projects(monkeypatch):
    """`python -m gastrodistill.cli.audit` defines `__main__.AuditInputError`: matched by the name the module
    was run by (`__main__.__spec__.name`), and only that (kills the `__main__` mapping dropped)."""
    import types

    from gastrodistill.cli.errors import known_error_text

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="gastrodistill.cli.audit")
    monkeypatch.setitem(sys.modules, "__main__", main)
    as_main = type("AuditInputError", (ValueError,), {"__module__": "__main__"})
    assert known_error_text(as_main("audit.sets is empty")) == "error: audit.sets is empty"
    main.__spec__ = types.SimpleNamespace(name="my_script")  # a script's class of the same name is not ours
    assert known_error_text(as_main("audit.sets is empty")) is None


def test_a_project_error_is_found_where_another_error_was_raised_while_handling_it():
    """The cause/context chain: a library that raises its own error inside an `except` around ours (no
    `from`) still shows our message (kills the chain walk reduced to `__cause__`)."""
    from gastrodistill.cli.errors import known_error_text
    from gastrodistill.data.errors import DataInputError

    try:
        try:
            raise DataInputError("manifest.csv line 3: unknown diagnosis")
        except DataInputError:
            raise RuntimeError("the loader's own error")  # noqa: B904 - no `from`, as some libraries do
    except RuntimeError as outer:
        assert outer.__cause__ is None and isinstance(outer.__context__, DataInputError)
        assert known_error_text(outer) == "error: manifest.csv line 3: unknown diagnosis"


@pytest.mark.timeout(20)
def test_a_cycle_in_an_exception_chain_ends_the_search():
    """A chain that comes back to itself (`a` caused by `b` caused by `a`) is searched once and gives
    None for a bug (kills the seen-set check: an endless loop)."""
    from gastrodistill.cli.errors import known_error_text, project_error

    a, b = RuntimeError("a"), KeyError("b")
    a.__cause__, b.__cause__ = b, a
    assert project_error(a) is None and known_error_text(a) is None


def test_a_signed_digit_string_seed_passes_as_int_reads_it():
    """`seed=${oc.env:SEED}` with SEED=-3 or +7: the stages read `int()` of it, so the check takes it too
    (kills the sign dropped from the check's pattern)."""
    from omegaconf import OmegaConf

    from gastrodistill.cli.errors import check_root_values

    for text in ("-3", "+7", " -12 "):
        assert isinstance(int(text), int)  # what the stages do with it
        check_root_values(OmegaConf.create({"seed": text}))


def _instantiation_error(cause: BaseException, key: str = "model"):
    """Hydra's InstantiationException for ``cause`` raised by target ``pkg.Thing`` at ``key``."""
    from hydra.errors import InstantiationException

    try:
        try:
            raise cause
        except type(cause) as e:
            raise InstantiationException(
                f"Error in call to target 'pkg.Thing':\n{e!r}\nfull_key: {key}"
            ) from e
    except InstantiationException as outer:
        return outer


def test_a_type_error_of_a_constructor_is_a_value_problem_too():
    """A value of the wrong type (`TypeError` from the constructor) is named like a `ValueError` (kills the
    `TypeError` dropped from `instantiation_value_error`)."""
    from gastrodistill.cli.errors import known_error_text

    outer = _instantiation_error(TypeError("width must be an int, got list"))
    assert known_error_text(outer) == (
        "error: cannot build model (pkg.Thing): width must be an int, got list; check the values under model "
        "(HYDRA_FULL_ERROR=1 shows where it failed)"
    )


def test_the_overrides_named_are_those_under_the_key_with_their_sign_and_all_of_them():
    """Every override under the failing key whose value stands in the cause is named, with its `+`/`~`
    prefix as typed; a key that only begins with the same letters (`modelx`) is not under it (kills the
    join, the prefix strip and the `.` after the key)."""
    from gastrodistill.cli.errors import instantiation_message

    outer = _instantiation_error(ValueError("widths 7x and 9y are not numbers"))
    head = "error: cannot build model (pkg.Thing): widths 7x and 9y are not numbers; "
    assert instantiation_message(outer, ["model.width=7x", "seed=1", "model.depth=9y"]) == (
        head + "change the override model.width=7x or model.depth=9y"
    )
    assert instantiation_message(outer, ["+model.width=7x"]) == head + "change the override +model.width=7x"
    assert instantiation_message(outer, ["modelx.width=7x"]) == (
        head + "check the values under model (HYDRA_FULL_ERROR=1 shows where it failed)"
    )


@pytest.mark.parametrize("make", [KeyboardInterrupt, lambda: SystemExit(3)], ids=["interrupt", "exit"])
def test_an_interrupt_or_an_exit_is_never_a_message_even_after_a_project_error(make):
    """A KeyboardInterrupt or SystemExit raised while a project error was handled keeps its own meaning
    (exit status, Ctrl-C) rather than the error's line (kills the `Exception` check dropped)."""
    from gastrodistill.cli.errors import known_error_text
    from gastrodistill.data.errors import DataInputError

    try:
        try:
            raise DataInputError("bad row")
        except DataInputError as e:
            raise make() from e
    except BaseException as stop:  # noqa: BLE001
        assert known_error_text(stop) is None


@pytest.mark.parametrize(
    ("number", "expect"),
    [
        (errno.EDQUOT, "error: no space left on the device (/runs/r1/x.bin): free space there"),
        (errno.EROFS, f"error: {os.strerror(errno.EROFS)} (/runs/r1/x.bin): make it readable (an input) or"),
        (errno.EPERM, f"error: {os.strerror(errno.EPERM)} (/runs/r1/x.bin): make it readable (an input) or"),
    ],
    ids=["quota", "read-only", "not-permitted"],
)
def test_a_quota_a_read_only_disk_and_a_refused_operation_are_storage_messages(number, expect):
    """The errno values besides ENOSPC and EACCES (kills each dropped from its set, and the denied branch
    narrowed to EACCES)."""
    from gastrodistill.cli.errors import known_error_text

    text = known_error_text(OSError(number, os.strerror(number), "/runs/r1/x.bin"))
    assert text is not None and text.startswith(expect), text


def test_a_quota_in_a_libraries_text_is_a_full_disk():
    """safetensors and torch carry the operating system's text, not an OSError (kills the quota text
    dropped)."""
    from gastrodistill.cli.errors import known_error_text

    rust = RuntimeError("Error while serializing: IoError(Disk quota exceeded (os error 122))")
    text = known_error_text(rust)
    assert text is not None and text.startswith("error: no space left on the device: free space there")


def test_a_keyboard_interrupt_inside_a_command_is_one_line_and_status_130(capsys):
    """A KeyboardInterrupt raised in the work (no signal received: e.g. a library's own) ends the command as
    Ctrl-C does: `interrupted (Ctrl-C)` alone, status 128 + SIGINT (kills SIGINT for a KeyboardInterrupt)."""
    import signal

    from gastrodistill.cli.errors import friendly_errors

    @friendly_errors
    def task(cfg):
        raise KeyboardInterrupt

    try:
        with pytest.raises(SystemExit) as info:
            task({"seed": 0})
    except KeyboardInterrupt:  # escaping, it would stop the test session itself
        pytest.fail("the KeyboardInterrupt escaped the command: no 'interrupted' line, no status 130")
    assert info.value.code == 128 + signal.SIGINT == 130
    assert capsys.readouterr().err == "interrupted (Ctrl-C)\n"


def test_an_open_wandb_run_is_finished_as_failed_only_when_the_command_failed(monkeypatch, capsys):
    """W&B's run left open is finished with exit code 0 after a command that worked, 1 after a refusal, and
    before the error line is printed (kills the codes fixed, the success flag never set, and the early close
    dropped, which printed W&B's lines below the error)."""
    import types

    from gastrodistill.cli.errors import friendly_errors, report_errors
    from gastrodistill.data.errors import DataInputError

    codes = []

    def finish(exit_code):
        codes.append(exit_code)
        fake.run = None
        print("wandb: closing lines", file=sys.stderr)

    fake = types.SimpleNamespace(run=None, finish=finish)
    monkeypatch.setitem(sys.modules, "wandb", fake)

    def worked(cfg=None):
        fake.run = object()
        return "done"

    def refused(cfg=None):
        fake.run = object()
        raise DataInputError("bad row")

    assert friendly_errors(worked)({"seed": 0}) == "done"
    with pytest.raises(SystemExit):
        friendly_errors(refused)({"seed": 0})
    # W&B's closing lines come before the error line, which is the last thing the command prints
    assert capsys.readouterr().err == "wandb: closing lines\n" * 2 + "error: bad row\n"
    assert report_errors(worked)() == "done"
    with pytest.raises(SystemExit):
        report_errors(refused)()
    assert codes == [0, 1, 0, 1]


def test_a_folder_that_exists_where_one_was_made_is_not_a_file_in_the_way(tmp_path):
    """FileExistsError is a file in the way only when the path is a file: a `mkdir` meeting an existing
    folder, or an error naming no path, is a bug with its traceback (kills the two conditions dropped)."""
    from gastrodistill.cli.errors import known_error_text

    a_file = tmp_path / "afile"
    a_file.write_text("x")
    assert known_error_text(FileExistsError(errno.EEXIST, "File exists", str(a_file))) == (
        f"error: a file is in the way of a folder this run needs ({a_file}): point the key that names it "
        "(data.store_root, paths.data_root, paths.log_dir, paths.output_dir, a logger's save_dir) at a "
        "folder, or move the file"
    )
    assert known_error_text(FileExistsError(errno.EEXIST, "File exists", str(tmp_path))) is None
    assert known_error_text(FileExistsError(errno.EEXIST, "File exists")) is None


def test_a_command_without_hydra_shows_the_traceback_under_hydra_full_error_and_always_for_a_bug(
    monkeypatch, capsys
):
    """`report_errors` (train-from-artifact): HYDRA_FULL_ERROR=1 gives the project error itself, as for the
    Hydra commands, and a bug is raised as it is, never turned into a line (kills the variable ignored)."""
    from gastrodistill.cli.errors import report_errors
    from gastrodistill.data.errors import DataInputError

    @report_errors
    def refused():
        raise DataInputError("bad row")

    @report_errors
    def bug():
        raise RuntimeError("a bug")

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DataInputError, match="bad row"):
        refused()
    monkeypatch.delenv("HYDRA_FULL_ERROR")
    with pytest.raises(RuntimeError, match="a bug"):
        bug()
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as info:
        refused()
    assert info.value.code == 1 and capsys.readouterr().err == "error: bad row\n"


def test_a_new_run_folder_with_a_loggers_metrics_is_kept_and_one_with_hyperparameters_only_goes(
    tmp_path, monkeypatch
):
    """A refused job's new folder goes when it holds only bookkeeping, `logs/**/hparams.yaml` included; a
    logger's metrics are output, so the folder stays whole (kills the hyper-parameters check made true)."""
    from gastrodistill.cli import errors

    monkeypatch.setattr(errors, "_job_name", lambda: "distill")  # Hydra's job name: distill.log

    def run_folder(name, *files):
        out = tmp_path / name
        for rel in (".hydra/config.yaml", "distill.log", "config.yaml", *files):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text("x\n")
        return out

    refused = run_folder("refused", "logs/csv/version_0/hparams.yaml")
    assert errors.remove_if_untouched(refused) is True and not refused.exists()
    worked = run_folder("worked", "logs/csv/version_0/hparams.yaml", "logs/csv/version_0/metrics.csv")
    assert errors.remove_if_untouched(worked) is False
    assert sorted(str(p.relative_to(worked)) for p in worked.rglob("*") if p.is_file()) == [
        ".hydra/config.yaml", "config.yaml", "distill.log", "logs/csv/version_0/hparams.yaml",
        "logs/csv/version_0/metrics.csv",
    ]  # fmt: skip


def test_only_wandbs_own_errors_while_it_starts_a_run_get_the_online_run_line():
    """An error raised in `wandb_init.py`'s `init` is the online-run line only when it is one of
    `wandb.errors`; a bug raised there (a KeyError, a RuntimeError) keeps its traceback (kills the module
    check dropped)."""
    from gastrodistill.cli.errors import known_error_text

    scope = {}
    source = "def init(exc):\n    raise exc\n"
    exec(compile(source, "/site-packages/wandb/sdk/wandb_init.py", "exec"), scope)  # as W&B's own frame
    w_and_b = type("CommError", (Exception,), {"__module__": "wandb.errors.errors"})
    cases = [
        (w_and_b("Network error"), "error: W&B could not start an online run (Network error)"),
        (RuntimeError("a bug in a callback"), None),
        (KeyError("entity"), None),
    ]
    for exc, expect in cases:
        try:
            scope["init"](exc)
        except Exception as raised:  # noqa: BLE001
            text = known_error_text(raised)
        assert (text if expect is None else text.split(";")[0]) == expect, text
