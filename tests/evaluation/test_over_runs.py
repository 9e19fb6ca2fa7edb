"""Paired differences pooled over runs: estimates and intervals against plain loops; the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from _run_folders import LABELS, config, finish, give_sets, net, write_image_run, write_run
from sklearn.metrics import roc_auc_score

from gastrodistill.cli.paired_over_runs import main
from gastrodistill.evaluation.metrics import paired_bootstrap
from gastrodistill.evaluation.over_runs import pool_runs, pooled_difference, shares_test_units
from gastrodistill.evaluation.report import load_record, save_record


def hm(n: dict[str, np.ndarray], idx: np.ndarray) -> float:
    y, d = n["labels"][idx].astype(bool), n["decisions"][idx].astype(bool)
    sens, spec = (d & y).sum() / y.sum(), (~d & ~y).sum() / (~y).sum()
    return 0.0 if sens + spec == 0 else 2 * sens * spec / (sens + spec)


def auc(n: dict[str, np.ndarray], idx: np.ndarray) -> float:
    return float(roc_auc_score(n["labels"][idx], n["scores"][idx]))


STAT = {"patient_hm": hm, "patient_auc": auc}


def plain_diff(kind: str, a: list, b: list, idx: np.ndarray) -> float:
    f = STAT[kind]
    return float(np.mean([f(n, idx) for n in a]) - np.mean([f(n, idx) for n in b]))


def draw_units(labels: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Class-stratified draws written out: positives first, each class with replacement from its own units."""
    parts = []
    for c in sorted(set(labels.tolist()), reverse=True):
        members = np.flatnonzero(labels == c)
        parts.append(rng.choice(members, size=(n_boot, len(members))))
    return np.concatenate(parts, 1)


def make_pairs(seed: int, n_runs: int = 3) -> list[tuple[list, list]]:
    rng = np.random.default_rng(seed)
    return [
        ([net(rng, skill=0.3 + 0.1 * r) for _ in range(3)], [net(rng, skill=0.1) for _ in range(2)])
        for r in range(n_runs)
    ]


@pytest.mark.parametrize("kind", ["patient_hm", "patient_auc"])
def test_estimate_is_the_mean_of_each_runs_paired_difference(kind: str) -> None:
    pairs = make_pairs(1)
    est, lo, hi = pooled_difference(kind, pairs, np.random.default_rng(0), n_boot=50)
    whole = np.arange(len(LABELS))
    assert est == pytest.approx(np.mean([plain_diff(kind, a, b, whole) for a, b in pairs]), abs=1e-12)
    assert lo <= hi


@pytest.mark.parametrize("kind", ["patient_hm", "patient_auc"])
def test_shared_interval_matches_a_plain_two_level_bootstrap(kind: str) -> None:
    pairs, n_boot = make_pairs(2), 40
    _, lo, hi = pooled_difference(kind, pairs, np.random.default_rng(7), n_boot=n_boot, shared=True)
    rng = np.random.default_rng(7)
    idx = draw_units(LABELS, rng, n_boot)
    drawn = rng.integers(0, len(pairs), size=(n_boot, len(pairs)))
    vals = [
        np.mean([plain_diff(kind, *pairs[drawn[b, j]], idx[b]) for j in range(len(pairs))])
        for b in range(n_boot)
    ]
    assert (lo, hi) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)), abs=1e-12)


def test_independent_interval_matches_a_plain_two_level_bootstrap() -> None:
    rng0 = np.random.default_rng(3)
    other = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0])  # a run with its own test patients
    pairs = make_pairs(3, 2) + [
        ([net(rng0, other, 0.5) for _ in range(2)], [net(rng0, other) for _ in range(2)])
    ]
    n_boot = 30
    _, lo, hi = pooled_difference("patient_hm", pairs, np.random.default_rng(11), n_boot=n_boot, shared=False)
    rng = np.random.default_rng(11)
    per_slot = [[draw_units(a[0]["labels"], rng, n_boot) for a, _ in pairs] for _ in pairs]
    drawn = rng.integers(0, len(pairs), size=(n_boot, len(pairs)))
    vals = [
        np.mean(
            [
                plain_diff("patient_hm", *pairs[drawn[b, j]], per_slot[j][drawn[b, j]][b])
                for j in range(len(pairs))
            ]
        )
        for b in range(n_boot)
    ]
    assert (lo, hi) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)), abs=1e-12)


def test_one_run_gives_the_results_tables_paired_interval() -> None:
    (a, b) = make_pairs(4, 1)[0]
    mine = pooled_difference("patient_auc", [(a, b)], np.random.default_rng(5), n_boot=200)
    table = paired_bootstrap("patient_auc", a, b, np.random.default_rng(5), n_boot=200)
    assert mine == pytest.approx(table, abs=1e-12)


def test_shared_draws_need_the_same_labels() -> None:
    rng = np.random.default_rng(0)
    other = LABELS[::-1].copy()
    pairs = make_pairs(0, 1) + [([net(rng, other)], [net(rng, other)])]
    with pytest.raises(ValueError, match="same test labels"):
        pooled_difference("patient_hm", pairs, rng, n_boot=10, shared=True)


def test_shares_test_units_needs_labels_and_data_config() -> None:
    rng = np.random.default_rng(0)
    run = {("soft", "replay", "convnet"): [net(rng)]}
    assert shares_test_units([run, run], [config(run_seed=0), config(run_seed=1)])
    assert not shares_test_units([run, run], [config(), config(split_seed=1)])
    assert not shares_test_units([run, run], [config(), {}])
    moved = {("soft", "replay", "convnet"): [net(rng, LABELS[::-1].copy())]}
    assert not shares_test_units([run, moved], [config(), config()])
    assert not shares_test_units([run, run], [{}, {}])  # no config at all: cannot tell, so not shared
    elsewhere = {**config(), "paths": {"data_root": "/other/site"}}
    assert not shares_test_units([run, run], [config(), elsewhere])


def test_split_differences_name_every_key_that_fixes_the_test_units() -> None:
    from gastrodistill.evaluation.over_runs import split_differences

    assert split_differences([config(), config(run_seed=5)]) == []  # the run seed draws no patients
    assert split_differences([config(), config(split_seed=1)]) == ["data.split_seed"]
    elsewhere = {**config(), "paths": {"data_root": "/other/site"}}
    assert split_differences([config(), elsewhere]) == ["paths.data_root"]
    redrawn = {**config(), "synthetic": {"seed": 3}}
    assert split_differences([config(), redrawn, {}]) == ["run 3 has no eval/config.yaml", "synthetic.seed"]


def test_pool_runs_pairs_rows_as_the_results_table() -> None:
    rng = np.random.default_rng(0)
    runs = [
        {
            ("soft", "replay", "convnet"): [net(rng, skill=0.4)],
            ("hard", "replay", "convnet"): [net(rng)],
            ("random", "standard", "convnet"): [net(rng)],
            ("soft", "replay", "lenet"): [net(rng)],
        },
        {("soft", "replay", "convnet"): [net(rng, skill=0.4)], ("random", "standard", "convnet"): [net(rng)]},
    ]
    diffs = pool_runs(runs, 0, n_boot=20)
    got = [(d.row, d.partner, d.kind, d.n_runs) for d in diffs]
    soft, hard, rand = (
        ("soft", "replay", "convnet"),
        ("hard", "replay", "convnet"),
        ("random", "standard", "convnet"),
    )
    assert got == [
        (soft, rand, "patient_hm", 2),
        (soft, rand, "patient_auc", 2),
        (soft, hard, "patient_hm", 1),
        (soft, hard, "patient_auc", 1),
        (hard, rand, "patient_hm", 1),
        (hard, rand, "patient_auc", 1),
    ]
    soft_hard = diffs[2]
    assert np.isnan(soft_hard.per_run[1])
    assert soft_hard.estimate == pytest.approx(soft_hard.per_run[0])
    # each difference has its own stream: without the hard row, soft - random keeps its interval
    fewer = pool_runs([{k: v for k, v in r.items() if k[0] != "hard"} for r in runs], 0, n_boot=20)
    assert (fewer[0].low, fewer[0].high) == (diffs[0].low, diffs[0].high)


def test_cli_prints_and_writes_the_pooled_table(tmp_path, capsys) -> None:
    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config(run_seed=0))
    write_run(b, 1, config(run_seed=1))
    out = tmp_path / "pooled.md"
    assert (
        main(["--run-dir", str(a), "--run-dir", str(b / "eval"), "--n-boot", "100", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "the same in every run" in printed
    assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in printed
    assert out.read_text() == printed
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100", "--independent"]) == 0
    assert "drawn per run" in capsys.readouterr().out


def test_a_reader_that_leaves_early_costs_neither_the_file_nor_the_exit_status(tmp_path) -> None:
    """``paired_over_runs ... --out pooled.md | head`` (a docs tester's finding): the table was printed
    before ``--out`` was written, so a closed pipe ended the command with a traceback, exit status 1 and no
    file. ``| true`` leaves before the command prints anything."""
    import subprocess
    import sys

    a, b, out = tmp_path / "seed0", tmp_path / "seed1", tmp_path / "pooled.md"
    write_run(a, 0, config(run_seed=0))
    write_run(b, 1, config(run_seed=1))
    args = ["-m", "gastrodistill.cli.paired_over_runs", "--run-dir", str(a), "--run-dir", str(b)]
    command = " ".join([sys.executable, *args, "--n-boot", "100", "--out", str(out)])
    done = subprocess.run(
        f"{command} | true; exit ${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in out.read_text()


@pytest.mark.parametrize(
    "case, message",
    [
        ("one", "at least two --run-dir"),
        ("twice", "given twice"),
        ("its eval folder", "given twice"),
        ("copy", "holds the same records as"),
        ("other experiment", "different experiments (cpu, tiny)"),
        ("missing", "does not exist"),
        ("a file", "is not a folder"),
        ("empty", "holds no evaluation records"),
        ("empty npz", "not a readable evaluation record"),
        ("truncated npz", "not a readable evaluation record"),
        ("bad config", "is not valid YAML"),
        ("level", "must lie between 0 and 1"),
        ("n-boot", "give at least 100 resamples"),
        ("out folder", "give a file path in an existing folder"),
    ],
)
def test_cli_refuses_unusable_input(tmp_path, capsys, case: str, message: str) -> None:
    import shutil

    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config())
    write_run(b, 1, config(run_seed=1))
    (tmp_path / "empty").mkdir()
    if case == "copy":
        shutil.copytree(a, tmp_path / "copy")
    if case == "other experiment":
        (b / "eval" / "config.yaml").write_text(yaml.safe_dump({**config(), "experiment_name": "cpu"}))
        (a / "eval" / "config.yaml").write_text(yaml.safe_dump({**config(), "experiment_name": "tiny"}))
    if case == "empty npz":
        (b / "eval" / "records" / "soft__replay__same__0.npz").write_bytes(b"")
    if case == "truncated npz":
        rec = b / "eval" / "records" / "soft__replay__same__0.npz"
        rec.write_bytes(rec.read_bytes()[:100])
    if case == "bad config":
        (b / "eval" / "config.yaml").write_text("data: [unclosed\n")
    second = {
        "one": [],
        "twice": ["--run-dir", str(a) + "/"],
        "its eval folder": ["--run-dir", str(a / "eval")],
        "copy": ["--run-dir", str(tmp_path / "copy")],
        "missing": ["--run-dir", str(tmp_path / "nope")],
        "a file": ["--run-dir", str(a / "eval" / "config.yaml")],
        "empty": ["--run-dir", str(tmp_path / "empty")],
        "level": ["--run-dir", str(b), "--level", "95"],
        "n-boot": ["--run-dir", str(b), "--n-boot", "1"],
        "out folder": ["--run-dir", str(b), "--out", str(tmp_path)],
    }.get(case, ["--run-dir", str(b)])
    assert main(["--run-dir", str(a), *second]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert "Traceback" not in captured.err and "allow_pickle" not in captured.err
    assert captured.out == ""  # refused before any table is printed


def test_cli_says_why_runs_are_drawn_apart_and_counts_runs_per_pair(tmp_path, capsys) -> None:
    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config())
    other = config(run_seed=1)
    other["synthetic"] = {"seed": 1}
    write_run(b, 1, other)
    for rec in (b / "eval" / "records").glob("hard__*"):
        rec.unlink()  # run 2 has no hard row: soft - hard pools one run
    finish(b)  # its table, of the rows it has
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "drawn per run (the runs differ in synthetic.seed)" in out
    assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in out
    soft_hard = next(line for line in out.splitlines() if "| hard/replay/convnet | patient_hm |" in line)
    assert "| – | 1 of 2 |" in soft_hard


def test_cli_refuses_runs_whose_metrics_are_of_different_kinds(tmp_path, capsys) -> None:
    """A run on patients beside one on images (KeyError 'decisions' traceback before), or image runs with
    different numbers of classes: one line naming the folders of each kind, exit 2, nothing printed."""
    gastric, folder, three = tmp_path / "gastric", tmp_path / "folder", tmp_path / "three"
    write_run(gastric, 0, config())
    folder_cfg = {"data": {"_target_": "gastrodistill.data.collections.FolderDataModule", "root": "/a"}}
    write_image_run(folder, 1, folder_cfg)
    write_image_run(three, 2, folder_cfg, classes=3)
    for second, kinds in (
        (folder, f"patient-level in {gastric}; image-level, 2 classes in {folder}"),
        (three, f"patient-level in {gastric}; image-level, 3 classes in {three}"),
    ):
        assert main(["--run-dir", str(gastric), "--run-dir", str(second), "--n-boot", "100"]) == 2
        captured = capsys.readouterr()
        assert captured.err == (
            f"error: the runs' metrics are of different kinds ({kinds}): pool runs of one kind of data "
            "(all with patients, or all of images with the same classes)\n"
        )
        assert captured.out == ""
    assert main(["--run-dir", str(folder), "--run-dir", str(three), "--n-boot", "100"]) == 2
    assert "image-level, 2 classes in" in capsys.readouterr().err
    # images of the same classes from another data module or site: pooled, with the difference said
    npz = tmp_path / "npz"
    write_image_run(
        npz, 3, {"data": {"_target_": "gastrodistill.data.collections.NpzDataModule", "path": "/b"}}
    )
    assert main(["--run-dir", str(folder), "--run-dir", str(npz), "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "the runs differ in data._target_, data.path, data.root" in out
    assert "| soft/replay/convnet | random/standard/convnet | image_accuracy |" in out


def test_recipe_differences_name_recipe_keys_only():
    """Seed sweeps and runs of one recipe from two hosts differ in no recipe key: the host's precision, the
    process count and progress bars at any depth (``texture_matching.progress`` follows the trainer's
    progress bar) do not count; a distillation or evaluation setting does, by its full key."""
    from gastrodistill.evaluation.over_runs import recipe_differences

    base = {
        "seed": 0,
        "model": {"width": 32},
        "distill": {"outer_steps": 25, "texture_matching": {"steps": 400, "progress": True}},
        "eval": {"processes": 2, "standard": {"epochs": 150, "precision": "bf16-mixed"}},
    }
    host = {
        **base,
        "seed": 1,
        "distill": {"outer_steps": 25, "texture_matching": {"steps": 400, "progress": False}},
        "eval": {"processes": 1, "standard": {"epochs": 150, "precision": "32-true"}},
    }
    assert recipe_differences([base, host]) == []
    other = {**base, "distill": {"outer_steps": 30, "texture_matching": {"steps": 200, "progress": True}}}
    assert recipe_differences([base, other]) == ["distill.outer_steps", "distill.texture_matching.steps"]
    assert recipe_differences([base, {}]) == []  # a run without a saved config is not compared


def test_a_runs_recipe_is_its_sets_own_after_a_resume(tmp_path, capsys) -> None:
    """A resume extended run A's sets to 6 outer steps and its evaluation was run again without repeating
    that value, so eval/config.yaml names the command's 3: the recipe check reads the sets' own
    distill/<set>/config.yaml, when the records were trained on those very sets, and refuses to pool A
    with a 3-step run B (a newcomer pooled them)."""
    a, b = tmp_path / "a", tmp_path / "b"
    three = {**config(run_seed=0), "distill": {"outer_steps": 3, "mode": "soft"}}
    write_run(a, 0, three)
    write_run(b, 1, {**three, "data": config(run_seed=1)["data"]})
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    capsys.readouterr()
    give_sets(a, {"soft": 6, "hard": 6})
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    assert "different recipes (distill.outer_steps)" in capsys.readouterr().err
    # networks of an earlier version of the sets (kept from before the resume): the sets do not speak
    # for them, and the evaluation's own config stands
    give_sets(a, {"soft": 6, "hard": 6}, trained_on={"soft": "0" * 64, "hard": "1" * 64})
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    # the sets of B's recipe: pooled (their own mode and resume keys do not count, as a reviewer found)
    give_sets(a, {"soft": 3, "hard": 3})
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    # sets of two recipes in one run: differs from any one-recipe run
    give_sets(a, {"soft": 3, "hard": 5})
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    assert "distill.hard.outer_steps" in capsys.readouterr().err


def test_an_evaluation_folders_recipe_is_its_sets_own_through_distilled_dirs(tmp_path, capsys) -> None:
    """``gastrodistill-evaluate`` folders of sets distilled elsewhere: their eval/config.yaml names the
    command's default (3 outer steps), so a 6-step set's evaluation was pooled with a 3-step run. The sets
    named by ``eval.distilled_dirs`` (absolute, or relative to ``paths.root_dir``) speak for the recipe."""
    give_sets(tmp_path / "six_a", {"soft": 6})  # writes six_a/distill/soft
    give_sets(tmp_path / "six_b", {"soft": 6})
    folders = []
    for name, where, seed in (
        ("a", str(tmp_path / "six_a" / "distill" / "soft"), 0),
        ("b", "six_b/distill/soft", 1),  # relative to paths.root_dir
        ("c", None, 2),  # a 3-step run of the usual kind, no set folder named
    ):
        cfg = {**config(run_seed=seed), "distill": {"outer_steps": 3, "mode": "soft"}}
        cfg["paths"]["root_dir"] = str(tmp_path)
        if where is not None:
            cfg["eval"] = {"distilled_dirs": {"soft": where}}
        write_run(tmp_path / name, seed, cfg)
        evaluation = tmp_path / name / "eval"  # an evaluation's own output folder: records/, results.csv
        if where is not None:
            _sets_of_run_digests(evaluation, tmp_path / f"six_{name}" / "distill" / "soft")
        folders.append(str(evaluation))
    assert main(["--run-dir", folders[0], "--run-dir", folders[1], "--n-boot", "100"]) == 0
    capsys.readouterr()
    assert main(["--run-dir", folders[0], "--run-dir", folders[2], "--n-boot", "100"]) == 2
    assert "different recipes (distill.outer_steps)" in capsys.readouterr().err
    # b's set moved away after its evaluation: its recipe is unknown, not the evaluate command's default
    (tmp_path / "six_b" / "distill" / "soft").rename(tmp_path / "moved")
    assert main(["--run-dir", folders[1], "--run-dir", folders[2], "--n-boot", "100"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {folders[1]}: the recipe of its set soft cannot be read (the folder its eval.distilled_dirs "
        "names is gone, holds another set or has no config.yaml), so its distill settings are the evaluate "
        "command's defaults; put the set back, or pass --allow-recipe-differences to pool it anyway\n"
    )
    args = ["--run-dir", folders[1], "--run-dir", folders[2], "--n-boot", "100", "--allow-recipe-differences"]
    assert main(args) == 0


def test_the_finish_command_quotes_a_folder_hydra_would_misread(tmp_path) -> None:
    """A folder with a space, a comma, '=' or characters outside ASCII: the printed command failed
    (Hydra splits at the comma, refuses 'ü' unquoted); now absolute and in Hydra's quotes."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gastrodistill.evaluation.over_runs import finish_command

    folder = tmp_path / "sp ü" / "sw,c=1" / "1"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=tiny"]))
    words = shlex.split(finish_command(folder / "eval"))
    assert words[:3] == ["gastrodistill-reproduce", "experiment=tiny", "stages=[evaluate]"]
    (override,) = OverridesParser.create().parse_overrides([words[3]])
    assert override.key_or_group == "hydra.run.dir" and override.value() == str(folder)


def _sets_of_run_digests(evaluation: Path, set_dir: Path) -> None:
    """Settings files beside the soft records of ``evaluation`` naming the digest of the set in
    ``set_dir``."""
    import json

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.record_settings import set_digest

    digest = set_digest(DistilledSet.load(set_dir))
    for rec in (evaluation / "records").glob("soft__*.npz"):
        rec.with_name(rec.name.replace(".npz", ".settings.json")).write_text(
            json.dumps({"distilled set soft": digest})
        )


def test_cli_refuses_a_run_whose_evaluation_did_not_finish(tmp_path, capsys) -> None:
    """Two runs stopped by Ctrl-C in their evaluate stage (some networks' records, no eval/results.csv) were
    pooled with exit 0 and a table; now the first is named with the command that finishes it (its own
    overrides, 'stages=[evaluate]', its folder). A record the table was not computed from (a network trained
    again, the evaluation stopped before its table) or one it was computed from that is gone is refused the
    same way; its eval/ folder is named as given."""
    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config())
    write_run(b, 1, config(run_seed=1))
    (a / "eval" / "results.csv").unlink()
    (b / "eval" / "results.csv").unlink()
    (a / ".hydra").mkdir()
    (a / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=tiny", "eval.n_networks=4", "stages=[distill,evaluate]"])
    )
    (a / "config.yaml").write_text(yaml.safe_dump({"stages": ["distill", "evaluate"]}))  # its run record
    # the default stages: the audit and artifact follow (a newcomer's re-run with stages=[evaluate] left
    # the table without the audit's columns and wrote no artifact)
    (b / "config.yaml").write_text(
        yaml.safe_dump({"stages": ["generate", "patches", "distill", "evaluate", "audit", "artifact"]})
    )
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err == (
        f"error: {a}: its evaluation did not finish (no results.csv in {a / 'eval'}: an evaluate stage "
        "stopped part way); finish it with gastrodistill-reproduce experiment=tiny eval.n_networks=4 "
        f"'stages=[evaluate]' hydra.run.dir={a}, or leave the folder out\n"
    )
    for run in (a, b):
        finish(run)
    record = b / "eval" / "records" / "soft__replay__same__1.npz"
    retrained = load_record(record)  # that network trained again, the table not yet written again
    retrained["test_scores"] = 1.0 - retrained["test_scores"]
    save_record(b / "eval", retrained)
    assert main(["--run-dir", str(a), "--run-dir", str(b / "eval"), "--n-boot", "100"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {b / 'eval'}: its evaluation did not finish (records/soft__replay__same__1.npz changed "
        f"after results.csv was computed from it in {b / 'eval'}" in err
    )
    assert (
        f"gastrodistill-reproduce <its overrides> 'stages=[evaluate,audit,artifact]' hydra.run.dir={b},"
        in err
    )
    record.unlink()  # removed to be trained again (or retired by a resume): the table still counts it
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    assert "(records/soft__replay__same__1.npz is gone, and results.csv was computed from it in " in (
        capsys.readouterr().err
    )
    save_record(b / "eval", retrained)
    finish(b)  # the table written again from the records as they are: pooled
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    pooled = capsys.readouterr().out
    # a record the table was not computed from (a network of an earlier, larger evaluation) is not pooled
    save_record(
        b / "eval",
        {
            **retrained,
            "job": "soft__replay__same__7",
            "network": 7,
            "test_scores": 1 - retrained["test_scores"],
        },
    )
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    assert capsys.readouterr().out == pooled
    # without the list (a folder of an older version) that record, newer than the table, was refused
    (b / "eval" / "results.sources.json").unlink()
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    assert "(results.csv is older than records/soft__replay__same__7.npz" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("storage_size", 24, "data.storage_size"),
        ("patch_size", 199, "data.patch_size"),
        ("overlap", 20, "data.overlap"),
        ("mask_threshold", 0.7, "data.mask_threshold"),
        ("synthetic.image_size", 800, "synthetic.image_size"),
    ],
)
def test_cli_refuses_runs_whose_data_settings_differ(tmp_path, capsys, key, value, named) -> None:
    """A sweep over data.storage_size=16,24 was pooled with a note only: the data settings that change what
    the networks see are recipe keys; the seeds, the split seed and the data's location are not."""
    gastric = {"patch_size": 299, "overlap": 50, "storage_size": 16, "mask_threshold": 0.5}
    base = config()
    base["data"] |= {**gastric, "root": "./data/synthetic/cpu"}
    base["synthetic"] |= {"image_size": 600, "name": "tiny", "num_workers": 1}
    other = yaml.safe_load(yaml.safe_dump(base))
    section, leaf = key.split(".") if "." in key else ("data", key)
    other[section][leaf] = value
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, 0, base)
    write_run(b, 1, other)
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"error: the runs were made with different recipes ({named}); pool the runs" in captured.err
    assert (
        main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100", "--allow-recipe-differences"]) == 0
    )
    assert f"drawn per run (the runs differ in {named})" in capsys.readouterr().out


def test_seeds_and_the_datas_location_are_no_recipe_keys() -> None:
    """A seed sweep (seed=0,1: data.seed and synthetic.seed follow ${seed}), another split seed, and the same
    data from another folder, module or worker count pool; a data or synthetic setting does not."""
    from gastrodistill.evaluation.over_runs import recipe_differences

    base = {
        "seed": 0,
        "paths": {"data_root": "./data/synthetic/tiny"},
        "data": {"_target_": "a.Gastric", "root": "./a", "store_root": "./s", "seed": 0, "split_seed": 0}
        | {"storage_size": 16, "num_workers": 0, "eval_batch_size": 256, "progress": True},
        "synthetic": {"seed": 0, "name": "tiny", "root": "./a", "num_workers": 1, "image_size": 600},
    }
    moved = {
        "seed": 1,
        "paths": {"data_root": "/elsewhere"},
        "data": {"_target_": "a.Npz", "path": "/b.npz", "store_root": "/t", "seed": 1, "split_seed": 3}
        | {"storage_size": 16, "num_workers": 4, "eval_batch_size": 64, "progress": False},
        "synthetic": {"seed": 1, "name": "copy", "root": "/elsewhere", "num_workers": 8, "image_size": 600},
    }
    assert recipe_differences([base, moved]) == []
    bigger = {**base, "data": {**base["data"], "storage_size": 24, "augment": {"p": 0.5}}}
    assert recipe_differences([base, bigger]) == ["data.augment.p", "data.storage_size"]


def test_each_pooled_difference_draws_from_its_own_documented_stream_and_is_printed_with_its_interval():
    """derive_seed(seed, 'paired-over-runs', row, 'minus', partner, statistic): HM and AUC of one pair draw
    apart; the rendered line carries each run's difference, the runs counted and the pooled interval."""
    from gastrodistill.evaluation.over_runs import render
    from gastrodistill.utils.seeding import numpy_rng

    rng = np.random.default_rng(8)
    soft, rand = ("soft", "replay", "convnet"), ("random", "standard", "convnet")
    runs = [{soft: [net(rng, skill=0.3), net(rng, skill=0.4)], rand: [net(rng)]} for _ in range(2)]
    diffs = pool_runs(runs, 3, n_boot=60, level=0.9)
    assert [d.kind for d in diffs] == ["patient_hm", "patient_auc"]
    for d in diffs:
        stream = numpy_rng(
            3, "paired-over-runs", "soft/replay/convnet", "minus", "random/standard/convnet", d.kind
        )
        want = pooled_difference(d.kind, [(r[soft], r[rand]) for r in runs], stream, 60, 0.9)
        assert (d.estimate, d.low, d.high) == pytest.approx(want, abs=1e-12)
    text = render(diffs, ["/a", "/b"], True, 0.9, 60)
    auc = diffs[1]
    line = next(x for x in text.splitlines() if "| patient_auc |" in x)
    assert line == (
        f"| soft/replay/convnet | random/standard/convnet | patient_auc | {auc.per_run[0]:+.3f} | "
        f"{auc.per_run[1]:+.3f} | 2 of 2 | {auc.estimate:+.3f} [{auc.low:+.3f}, {auc.high:+.3f}] |"
    )
    assert "| run 1 | run 2 | runs | pooled [90 %] |" in text


def test_pooled_rows_list_the_distilling_architecture_first():
    """Soft rows on the architecture the baselines train (convnet) come before a cross-architecture soft
    row (alexnet), whatever the names' order."""
    rng = np.random.default_rng(9)
    rows = [
        ("soft", "replay", "alexnet"),
        ("hard", "replay", "alexnet"),
        ("soft", "replay", "convnet"),
        ("random", "standard", "convnet"),
    ]
    runs = [{k: [net(rng)] for k in rows} for _ in range(2)]
    got = [(d.row, d.partner) for d in pool_runs(runs, 0, n_boot=10) if d.kind == "patient_hm"]
    assert got == [
        (("soft", "replay", "convnet"), ("random", "standard", "convnet")),
        (("soft", "replay", "alexnet"), ("hard", "replay", "alexnet")),
    ]


def test_a_long_list_of_recipe_differences_says_how_many_more():
    from gastrodistill.evaluation.over_runs import RunsInputError, check_one_recipe

    base = {"eval": {f"k{i}": 0 for i in range(8)}}
    other = {"eval": {f"k{i}": 1 for i in range(8)}}
    with pytest.raises(RunsInputError) as err:
        check_one_recipe([base, other], verb="check")
    assert str(err.value).startswith(
        "the runs were made with different recipes (eval.k0, eval.k1, eval.k2, eval.k3, eval.k4, eval.k5 "
        "and 2 more); check the runs of one recipe"
    )


def test_the_finish_command_drops_an_added_stages_override(tmp_path):
    """A run started with '+stages=[...]': that override is dropped, as 'stages=' is (the command sets the
    stages itself)."""
    from gastrodistill.evaluation.over_runs import finish_command

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=cpu", "+stages=[distill,evaluate]", "seed=2"])
    )
    assert finish_command(run / "eval") == (
        f"gastrodistill-reproduce experiment=cpu seed=2 'stages=[evaluate]' hydra.run.dir={run}"
    )


def test_a_set_speaks_for_the_recipe_only_when_every_record_was_trained_on_it(tmp_path, capsys) -> None:
    """Run A's sets were extended to 6 outer steps, but one network of each was trained on the earlier
    version (another digest): the sets do not speak for all the records, and the evaluation's own
    3-step config stands, so A pools with a 3-step run B."""
    import json

    a, b = tmp_path / "a", tmp_path / "b"
    three = {**config(run_seed=0), "distill": {"outer_steps": 3, "mode": "soft"}}
    write_run(a, 0, three)
    write_run(b, 1, {**three, "data": config(run_seed=1)["data"]})
    give_sets(a, {"soft": 6, "hard": 6})
    for mode, digest in (("soft", "0" * 64), ("hard", "1" * 64)):
        older = a / "eval" / "records" / f"{mode}__replay__same__1.settings.json"
        older.write_text(json.dumps({f"distilled set {mode}": digest}))
    assert main(["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]) == 0
    assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in capsys.readouterr().out


def test_the_finish_command_names_a_relative_folder_absolutely(tmp_path, monkeypatch) -> None:
    """A run given as ``run/eval`` from its parent folder: the command names the run folder from the root,
    so it works from any folder."""
    from gastrodistill.evaluation.over_runs import finish_command

    (tmp_path / "run" / "eval").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert finish_command(Path("run/eval")) == (
        f"gastrodistill-reproduce <its overrides> 'stages=[evaluate]' hydra.run.dir={Path.cwd() / 'run'}"
    )


def test_a_set_whose_config_has_no_distill_section_leaves_the_recipe_unknown(tmp_path, capsys) -> None:
    """An evaluation's set (``eval.distilled_dirs``) whose ``config.yaml`` holds no ``distill`` mapping does
    not speak for the recipe: the evaluation's own section is the command's default, so pooling is
    refused as for a set that is gone."""
    give_sets(tmp_path / "elsewhere", {"soft": 6})
    set_dir = tmp_path / "elsewhere" / "distill" / "soft"
    folders = []
    for name, seed in (("a", 0), ("b", 1)):
        cfg = {**config(run_seed=seed), "distill": {"outer_steps": 3, "mode": "soft"}}
        if name == "a":
            cfg["eval"] = {"distilled_dirs": {"soft": str(set_dir)}}
        write_run(tmp_path / name, seed, cfg)
        folders.append(str(tmp_path / name / "eval"))
    _sets_of_run_digests(tmp_path / "a" / "eval", set_dir)
    for saved in ("{}\n", "distill: 6\nseed: 0\n"):
        (set_dir / "config.yaml").write_text(saved)
        assert main(["--run-dir", folders[0], "--run-dir", folders[1], "--n-boot", "100"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"error: {folders[0]}: the recipe of its set soft cannot be read ")


# Mutation review of cli/paired_over_runs.py: behaviours no test above pinned down.


def records_of(run: Path) -> dict[tuple[str, str, str], list[dict[str, np.ndarray]]]:
    """A run folder's networks per results row, read from its records as plain arrays."""
    out: dict[tuple[str, str, str], list[dict[str, np.ndarray]]] = {}
    for path in sorted((run / "eval" / "records").glob("*.npz")):
        rec = load_record(path)
        key = (str(rec["method"]), str(rec["schedule"]), str(rec["architecture"]))
        n = {"labels": rec["test_labels"], "decisions": rec["test_decisions"], "scores": rec["test_scores"]}
        out.setdefault(key, []).append(n)
    return out


def test_cli_pools_with_the_seed_resamples_and_level_it_is_given_and_its_defaults(tmp_path, capsys) -> None:
    """The printed soft − random line against a plain two-level bootstrap of the records, drawn from the
    documented stream of ``--seed`` (kills the seed, ``--n-boot`` or ``--level`` not reaching the pooling or
    the table, and other defaults than seed 0, 2000 resamples, 95 %)."""
    from gastrodistill.utils.seeding import numpy_rng

    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config(run_seed=0))
    write_run(b, 1, config(run_seed=1))
    soft, rand = ("soft", "replay", "convnet"), ("random", "standard", "convnet")
    pairs = [(records_of(r)[soft], records_of(r)[rand]) for r in (a, b)]
    whole = np.arange(len(LABELS))
    per_run = [plain_diff("patient_hm", s, r, whole) for s, r in pairs]
    for options, seed, n_boot, level in ((["--seed", "3", "--n-boot", "150", "--level", "0.9"], 3, 150, 0.9),
                                         ([], 0, 2000, 0.95)):  # fmt: skip
        assert main(["--run-dir", str(a), "--run-dir", str(b), *options]) == 0
        out = capsys.readouterr().out
        rng = numpy_rng(seed, "paired-over-runs", "soft/replay/convnet", "minus", "random/standard/convnet",
                        "patient_hm")  # fmt: skip
        idx = draw_units(LABELS, rng, n_boot)
        drawn = rng.integers(0, 2, size=(n_boot, 2))
        vals = [np.mean([plain_diff("patient_hm", *pairs[drawn[i, j]], idx[i]) for j in range(2)])
                for i in range(n_boot)]  # fmt: skip
        lo, hi = np.quantile(vals, (1 - level) / 2), np.quantile(vals, 1 - (1 - level) / 2)
        pct = f"{100 * level:g} %"
        assert f"test units: the same in every run (one draw per resample); {n_boot} resamples" in out
        assert f"| run 1 | run 2 | runs | pooled [{pct}] |" in out
        assert (
            f"| soft/replay/convnet | random/standard/convnet | patient_hm | {per_run[0]:+.3f} | "
            f"{per_run[1]:+.3f} | 2 of 2 | {np.mean(per_run):+.3f} [{lo:+.3f}, {hi:+.3f}] |"
        ) in out.splitlines()


def test_cli_refuses_the_levels_0_and_1_and_an_output_in_a_missing_folder(tmp_path, capsys) -> None:
    """The level lies strictly between 0 and 1 (kills <= at either end); ``--out`` in a folder that does
    not exist is refused before any pooling (kills dropping that check: the write failed after it)."""
    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config(run_seed=0))
    write_run(b, 1, config(run_seed=1))
    runs = ["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]
    for level in ("0", "1"):
        assert main([*runs, "--level", level]) == 2
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == (
            "",
            f"error: --level {float(level)} must lie between 0 and 1 (e.g. 0.95)\n",
        )
    out = tmp_path / "no" / "pooled.md"
    assert main([*runs, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        f"error: --out {out}: give a file path in an existing folder\n",
    )


def test_cli_pools_runs_of_one_experiment_and_a_run_that_names_none(tmp_path, capsys) -> None:
    """Two runs of experiment cpu, or one of cpu beside one whose config names no experiment, are of one
    experiment (kills refusing any named experiment, and counting the missing name as one)."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_run(a, 0, {**config(run_seed=0), "experiment_name": "cpu"})
    write_run(b, 1, {**config(run_seed=1), "experiment_name": "cpu"})
    write_run(c, 2, config(run_seed=2))
    for second in (b, c):
        assert main(["--run-dir", str(a), "--run-dir", str(second), "--n-boot", "100"]) == 0
        assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in capsys.readouterr().out


def test_cli_refuses_runs_without_partners_and_says_nothing_of_why_when_told_to_draw_apart(
    tmp_path, capsys
) -> None:
    """Runs of soft rows alone have nothing to pair (kills dropping the check: an empty table was
    printed); ``--independent`` draws apart by request, so no key is named as the reason (kills naming
    the split keys then)."""
    a, b = tmp_path / "seed0", tmp_path / "seed1"
    write_run(a, 0, config(run_seed=0))
    other = config(run_seed=1)
    other["synthetic"] = {"seed": 1}
    write_run(b, 1, other)
    args = ["--run-dir", str(a), "--run-dir", str(b), "--n-boot", "100"]
    assert main([*args, "--independent"]) == 0
    out = capsys.readouterr().out
    assert "test units: drawn per run; 100 resamples of runs and units" in out
    assert main(args) == 0
    assert (
        "test units: drawn per run (the runs differ in synthetic.seed); 100 resamples"
        in capsys.readouterr().out
    )
    for run in (a, b):
        for rec in (run / "eval" / "records").glob("*.npz"):
            if not rec.name.startswith("soft__"):
                rec.unlink()
        finish(run)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        "error: no distilled row has a partner (random, random_soft or hard) in these runs; were they "
        "evaluated with eval.baselines?\n"
    )
