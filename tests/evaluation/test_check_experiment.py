"""The recipe checker against a hand-made results table."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gastrodistill.cli.check_experiment import (
    CheckOverRuns,
    RecipeError,
    evaluate,
    evaluate_runs,
    load_recipe,
    main,
)

TABLE = pd.DataFrame(
    {
        "method": ["soft", "soft", "hard", "full", "random"],
        "schedule": ["replay", "replay", "replay", "real", "standard"],
        "architecture": ["convnet", "lenet", "convnet", "convnet", "convnet"],
        "cross_architecture": [False, True, False, False, False],
        "patient_hm_mean": [0.80, 0.50, 0.70, 0.85, 0.60],
    }
)

RECIPE = """
name: t
overrides: [experiment=cpu]
results: eval/results.csv
expect:
  - what: ratio
    value: {method: soft, schedule: replay}
    relative_to: {method: full, schedule: real}
    range: [0.9, 1.2]
  - what: soft minus hard
    value: {method: soft, schedule: replay}
    minus: {method: hard, schedule: replay}
    range: [0.0, 1.0]
  - what: cross-arch soft
    value: {method: soft, schedule: replay, architecture: lenet}
    range: [0.6, 1.0]
  - what: missing row
    value: {method: mean, schedule: standard}
    range: [0.0, 1.0]
"""


def test_checks_hand_computed(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    checks = evaluate(load_recipe(p), TABLE)
    assert checks[0].value == pytest.approx(0.80 / 0.85) and checks[0].ok  # 0.941, primary architecture
    assert checks[1].value == pytest.approx(0.10) and checks[1].ok
    assert checks[2].value == pytest.approx(0.50) and not checks[2].ok
    learned_nothing = TABLE.assign(patient_hm_mean=[0.80, 0.50, 0.70, 0.0, 0.60])  # a tiny run's all-data row
    zero = evaluate(load_recipe(p), learned_nothing)[0]
    assert math.isnan(zero.value) and not zero.ok
    assert zero.note == "method=full, schedule=real: patient_hm_mean is 0, so no ratio"
    named = {**load_recipe(p), "expect": [{**load_recipe(p)["expect"][0]}]}
    named["expect"][0]["relative_to"] = {"method": "full", "schedule": "real", "column": "patient_hm_mean"}
    assert evaluate(named, learned_nothing)[0].note == zero.note  # the column given: said once
    assert math.isnan(checks[3].value) and not checks[3].ok
    # the primary architecture's row is chosen whatever the row order (the cross-architecture one first)
    flipped = TABLE.iloc[[1, 0, 2, 3, 4]].reset_index(drop=True)
    assert evaluate(load_recipe(p), flipped)[0].value == pytest.approx(0.80 / 0.85)
    csv = tmp_path / "results.csv"
    TABLE.to_csv(csv, index=False)
    assert main([str(p), "--results", str(csv)]) == 1


def test_a_check_holds_at_both_ends_of_its_range():
    from gastrodistill.cli.check_experiment import Check

    assert Check("x", 0.5, 0.5, 1.0).ok and Check("x", 1.0, 0.5, 1.0).ok
    assert not Check("x", 0.4999, 0.5, 1.0).ok and not Check("x", float("nan"), 0.0, 1.0).ok


def test_malformed_recipe_is_named(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: t\noverrides: []\nresults: x\nexpect:\n  - value: {method: soft}\n")
    with pytest.raises(RecipeError, match=r"expect\[0\] needs 'value' and a two-number 'range'"):
        load_recipe(p)
    assert main([str(p), "--results", str(tmp_path / "none.csv")]) == 2


def test_several_runs_are_checked_on_their_mean_with_a_t_interval(tmp_path, capsys):
    """Three runs (e.g. seeds): per-run values, their mean, and the 95 % Student-t interval over the runs,
    against a plain computation with the textbook quantile t(0.975, 2) = 4.302653."""
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    soft = [0.85, 0.70, 0.60]  # soft replay HM per run; hard stays 0.70
    tables = []
    for i, v in enumerate(soft):
        df = TABLE.copy()
        df.loc[0, "patient_hm_mean"] = v
        tables.append(df)
        (tmp_path / f"run{i}" / "eval").mkdir(parents=True)
        df.to_csv(tmp_path / f"run{i}" / "eval" / "results.csv", index=False)
    checks = evaluate_runs(load_recipe(p), tables)
    minus = checks[1]  # soft minus hard, range [0, 1]
    diffs = [v - 0.70 for v in soft]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert minus.values == pytest.approx(diffs)
    assert minus.mean == pytest.approx(mean)  # 0.017: inside [0, 1] although one run is below
    assert minus.interval == pytest.approx(
        (mean - 4.302653 * sd / math.sqrt(3), mean + 4.302653 * sd / math.sqrt(3))
    )
    assert minus.ok
    assert math.isnan(checks[3].mean) and not checks[3].ok  # the row missing from every run stays outside
    dirs = [arg for i in range(3) for arg in ("--run-dir", str(tmp_path / f"run{i}"))]
    assert main([str(p), *dirs]) == 1
    out = capsys.readouterr().out
    assert "run 3:" in out and "95 % interval over runs" in out and "(means over 3 runs)" in out


def test_one_run_missing_a_number_makes_the_mean_outside():
    c = CheckOverRuns("x", [0.5, math.nan], 0.0, 1.0)
    assert math.isnan(c.mean) and not c.ok
    assert math.isnan(CheckOverRuns("y", [0.5], 0.0, 1.0).interval[0])  # one run: no interval


def test_rerun_into_several_folders_is_refused(tmp_path, capsys, monkeypatch):
    """The re-run is replaced here: a mutant that let two folders through started the real cpu pipeline."""
    import gastrodistill.cli.check_experiment as ce

    reran: list = []
    monkeypatch.setattr(ce, "rerun", lambda recipe, run_dir: reran.append(run_dir))
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    assert main([str(p), "--run", "--run-dir", str(tmp_path / "a"), "--run-dir", str(tmp_path / "b")]) == 2
    assert "give at most one --run-dir" in capsys.readouterr().err and reran == []


def test_rerun_into_a_folder_that_holds_a_run_is_refused(tmp_path, capsys, monkeypatch):
    """--run into a finished run's folder overwrote its results unsaid; an empty folder is fine."""
    import gastrodistill.cli.check_experiment as ce

    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    done = tmp_path / "done"
    (done / "eval").mkdir(parents=True)
    (done / "eval" / "results.csv").write_text("kept\n")
    reran: list = []
    monkeypatch.setattr(ce, "rerun", lambda recipe, run_dir: reran.append(run_dir))
    assert main([str(p), "--run", "--run-dir", str(done)]) == 2
    err = capsys.readouterr().err
    assert f"--run writes a new run into {done}, which already holds files" in err and "\n" not in err.strip()
    assert not reran and (done / "eval" / "results.csv").read_text() == "kept\n"
    (tmp_path / "empty").mkdir()
    main([str(p), "--run", "--run-dir", str(tmp_path / "empty")])  # no results there: refused after the run
    assert reran == [tmp_path / "empty"]


def test_a_missing_number_says_what_was_not_found(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    p.write_text(
        RECIPE.replace(
            "value: {method: soft, schedule: replay}\n    minus:",
            "value: {method: sotf, schedule: replay}\n    minus:",
        )
    )
    checks = evaluate(
        load_recipe(p), TABLE.drop(columns=["cross_architecture"]).rename(columns={"patient_hm_mean": "hm"})
    )
    assert checks[0].note == "no column 'patient_hm_mean'; no column 'patient_hm_mean'"
    checks = evaluate(load_recipe(p), TABLE)
    assert checks[1].note == "no row method=sotf, schedule=replay" and not checks[1].ok
    assert checks[0].note == "" and checks[0].ok
    csv = tmp_path / "results.csv"
    TABLE.to_csv(csv, index=False)
    assert main([str(p), "--results", str(csv)]) == 1
    assert "(not found: no row method=sotf, schedule=replay)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\noverrides: []\nresults: x\nexpect: [\n", "not valid YAML"),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: soft}, range: [a, b]}\n",
            "must be two numbers",
        ),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: soft}, range: [0.9, 0.1]}\n",
            "low end above",
        ),
        # a misspelt filter used to be dropped: another row was checked and could pass
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {methd: hard}, range: [0, 1]}\n",
            "expect[0].value has unknown key(s) ['methd']",
        ),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: soft}, range: [0, 1],"
            " minus: {method: hard, schedual: standard}}\n",
            "expect[0].minus has unknown key(s) ['schedual']",
        ),
        # the mutation review's cases: each check dropped or loosened went unseen
        ("- name: t\n", "a recipe is a YAML mapping"),
        ("name: t\noverrides: []\nresults: x\n", "missing key 'expect'"),
        ("name: t\noverrides: []\nresults: x\nexpect: {value: {method: soft}}\n", "'expect' is a list"),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: soft}, range: [0, 1, 2]}\n",
            "expect[0] needs 'value' and a two-number 'range'",
        ),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: soft}, range: [0, 1],"
            " relative_to: {method: full}, minus: {method: hard}}\n",
            "expect[0] has both 'relative_to' and 'minus'; use one",
        ),
        (
            "name: t\noverrides: []\nresults: x\nexpect:\n  - {value: soft, range: [0, 1]}\n",
            "expect[0].value must be a mapping, e.g. {method: soft}",
        ),
    ],
)
def test_bad_recipes_are_named_without_a_traceback(tmp_path, capsys, text, message):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(p)
    assert main([str(p), "--results", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and message in err and "Traceback" not in err


def test_unusable_run_inputs_are_refused_with_the_file_named(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    run = tmp_path / "run0"
    (run / "eval").mkdir(parents=True)
    TABLE.to_csv(run / "eval" / "results.csv", index=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    other = tmp_path / "other.csv"
    TABLE.drop(columns=["method"]).to_csv(other, index=False)
    whole = (run / "eval" / "results.csv").read_text()
    cut = tmp_path / "cut.csv"  # a copy stopped inside the last row: pandas alone reads NaN there
    cut.write_text(whole[: whole.rindex(",")])
    cut_at_row = tmp_path / "cut_at_row.csv"  # stopped right after a field, before the line's end
    cut_at_row.write_text(whole.rstrip("\n"))
    extra = tmp_path / "extra.csv"  # a row with one field too many
    lines = whole.splitlines(keepends=True)
    extra.write_text(lines[0] + lines[1].rstrip("\n") + ",9\n" + "".join(lines[2:]))
    blank_end = tmp_path / "blank_end.csv"  # a blank line at the end is no error (pandas skips it)
    blank_end.write_text(whole + "\n")
    cases = [
        (["--run-dir", str(run), "--run-dir", str(run) + "/"], "given twice"),
        (["--run-dir", str(tmp_path / "nope")], "does not exist"),
        (["--results", str(run / "eval" / "results.csv"), "--run-dir", str(run)], "not both"),
        (["--results", str(empty)], f"{empty} is not a readable results table"),
        (
            ["--results", str(other)],
            f"{other} is not a results table of the evaluate stage: it lacks the columns",
        ),
        (["--run-dir", str(run / "eval" / "results.csv")], "is a file; give the run's folder"),
        (["--results", str(cut)], f"{cut}: line 6 has 4 fields where its header has 5; it looks cut short"),
        (["--results", str(extra)], f"{extra}: line 2 has 6 fields where its header has 5; copy it again"),
        (["--results", str(cut_at_row)], f"{cut_at_row} is cut short (no final newline)"),
    ]
    for args, message in cases:
        assert main([str(p), *args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert main([str(p), "--results", str(blank_end)]) != 2, capsys.readouterr().err


def _cpu_recipe_and_run(tmp_path, config_text: str):
    """The cpu recipe (experiment_name cpu) and a finished run folder whose config.yaml is ``config_text``."""
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE.replace("name: t\n", "name: t\nexperiment_name: cpu\n"))
    run = tmp_path / "run0"
    (run / "eval").mkdir(parents=True)
    TABLE.to_csv(run / "eval" / "results.csv", index=False)
    (run / "config.yaml").write_text(config_text)
    return p, run


def test_a_run_of_another_experiment_is_checked_with_a_warning(tmp_path, capsys):
    """A tiny run checked against the cpu recipe still prints its checks, but says the ranges are not its
    experiment's (the run's config.yaml records experiment_name)."""
    p, run = _cpu_recipe_and_run(tmp_path, "experiment_name: tiny\nseed: 0\n")
    assert main([str(p), "--run-dir", str(run)]) == 1
    out = capsys.readouterr()
    assert f"warning: {run} is a run of experiment 'tiny'; this recipe's ranges are for 'cpu'" in out.err
    assert "ratio" in out.out
    (run / "config.yaml").write_text("experiment_name: cpu\n")
    main([str(p), "--run-dir", str(run)])
    assert "warning" not in capsys.readouterr().err
    # a run of the same experiment name that chose another data group (an npz run of experiment=cpu) is
    # named too, with the groups it chose (a newcomer's npz run was checked against the gastric ranges unsaid)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=cpu\n- data=npz\n- data.path=d.npz\n")
    main([str(p), "--run-dir", str(run)])
    err = capsys.readouterr().err
    assert f"warning: {run} chose config groups the recipe does not (data=npz)" in err
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=cpu\n- seed=3\n")
    main([str(p), "--run-dir", str(run)])
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "recipe", sorted((Path(__file__).parents[2] / "experiments").glob("*.yaml")), ids=str
)
def test_every_shipped_recipe_loads_and_its_overrides_compose(recipe, compose_cfg):
    """experiments/full_synthetic.yaml was not valid YAML (an unquoted ': ' in a description) until this
    test: its expectations could not be checked at all."""
    loaded = load_recipe(recipe)
    cfg = compose_cfg(list(loaded["overrides"]))
    assert str(cfg.experiment_name) == str(loaded.get("experiment_name", cfg.experiment_name))


def test_the_newest_single_run_is_checked_and_a_later_sweep_is_named(tmp_path, capsys):
    """Without --run-dir the newest finished run under runs/ is checked; multirun jobs that finished after
    it are not searched, and a note now says so instead of checking the older run unsaid."""
    import os

    from gastrodistill.cli.check_experiment import latest_run

    recipe = {"name": "t", "results": "eval/results.csv", "overrides": []}
    exp = tmp_path / "outputs" / "t"
    for i, folder in enumerate((exp / "runs" / "old", exp / "runs" / "new", exp / "multiruns" / "s" / "0")):
        (folder / "eval").mkdir(parents=True)
        (folder / "eval" / "results.csv").write_text("x\n")
        os.utime(folder / "eval" / "results.csv", (1000 + i, 1000 + i))
    assert latest_run(tmp_path, recipe) == exp / "runs" / "new"
    err = capsys.readouterr().err
    assert f"note: checking {exp / 'runs' / 'new'}; 1 multirun job(s) finished after it" in err
    assert str(exp / "multiruns" / "s" / "0") in err
    os.utime(exp / "runs" / "new" / "eval" / "results.csv", (2000, 2000))  # the sweep is older: no note
    assert latest_run(tmp_path, recipe) == exp / "runs" / "new" and capsys.readouterr().err == ""


def test_the_newest_run_of_another_config_group_is_not_taken_for_the_recipe(tmp_path, capsys):
    """An npz run of ``experiment=cpu`` writes to the same outputs/cpu/runs as the gastric study: without
    --run-dir the newest run whose Hydra overrides choose a config group the recipe does not choose
    (``data=npz``) is skipped with a note; a value override (``seed=1``) or the recipe's own group is not."""
    import os

    from gastrodistill.cli.check_experiment import latest_run

    recipe = {"name": "cpu", "results": "eval/results.csv", "overrides": ["experiment=cpu"]}
    runs = tmp_path / "outputs" / "cpu" / "runs"
    made = {"gastric": ["experiment=cpu", "seed=1"], "npz": ["experiment=cpu", "data=npz", "data.path=d.npz"]}
    for i, (name, overrides) in enumerate(made.items()):
        (runs / name / "eval").mkdir(parents=True)
        (runs / name / ".hydra").mkdir()
        (runs / name / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in overrides) + "\n")
        (runs / name / "eval" / "results.csv").write_text("x\n")
        os.utime(runs / name / "eval" / "results.csv", (1000 + i, 1000 + i))
    assert latest_run(tmp_path, recipe) == runs / "gastric"
    err = capsys.readouterr().err
    assert "note: 1 run(s) under" in err and "(data=npz in npz)" in err
    npz_recipe = {**recipe, "overrides": ["experiment=cpu", "data=npz"]}
    assert latest_run(tmp_path, npz_recipe) == runs / "npz"
    # a trainer or logger choice is no other study; with only other studies, none is checked (a reviewer
    # found the fallback search taking the skipped npz run back)
    (runs / "gastric" / ".hydra" / "overrides.yaml").write_text(
        "- experiment=cpu\n- trainer=ddp\n- logger=wandb\n"
    )
    assert latest_run(tmp_path, recipe) == runs / "gastric"
    import shutil

    shutil.rmtree(runs / "gastric")
    with pytest.raises(RecipeError, match="no finished run"):
        latest_run(tmp_path, recipe)


def test_a_run_that_spelled_out_its_presets_groups_is_of_the_recipe(tmp_path, capsys):
    """A run made with ``experiment=cpu model=convnet_cpu distill=soft_cpu`` (the preset's own choices,
    spelled out) is the recipe's study: its Hydra record's resolved choices are compared with the recipe's,
    not its override strings (a reviewer found it warned); ``data=npz`` still differs."""
    import yaml as _yaml

    p, run = _cpu_recipe_and_run(tmp_path, "experiment_name: cpu\n")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(
        "- experiment=cpu\n- model=convnet_cpu\n- distill=soft_cpu\n"
    )
    choices = {"experiment": "cpu", "model": "convnet_cpu", "distill": "soft_cpu", "data": "gastric"}
    (run / ".hydra" / "hydra.yaml").write_text(_yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    main([str(p), "--run-dir", str(run)])
    assert "warning" not in capsys.readouterr().err
    choices["data"] = "npz"
    (run / ".hydra" / "hydra.yaml").write_text(_yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    main([str(p), "--run-dir", str(run)])
    assert "chose config groups the recipe does not (data=npz)" in capsys.readouterr().err
    # optional groups whose option has no file loaded nothing: not listed as choices (a newcomer's finding)
    choices.update(data="folder", specialize="cpu_folder", specialize_model="cpu_folder_convnet_cpu")
    (run / ".hydra" / "hydra.yaml").write_text(_yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    main([str(p), "--run-dir", str(run)])
    assert "chose config groups the recipe does not (data=folder); this" in capsys.readouterr().err
    choices.update(data="npz", specialize="cpu_npz")  # one that exists, and was loaded, is listed
    (run / ".hydra" / "hydra.yaml").write_text(_yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    main([str(p), "--run-dir", str(run)])
    assert (
        "chose config groups the recipe does not (data=npz, specialize=cpu_npz); this"
        in capsys.readouterr().err
    )


def _two_runs(tmp_path, second: dict | None = None):
    """The recipe and two finished run folders (records, eval/config.yaml, results table) of seeds 0 and 1
    (``second``: run 1's config instead)."""
    from _run_folders import config, write_run

    tmp_path.mkdir(exist_ok=True)
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    a, b = tmp_path / "job0", tmp_path / "job1"
    write_run(a, 0, {**config(), "distill": {"lr_images": 0.01}})
    write_run(b, 1, second or {**config(run_seed=1), "distill": {"lr_images": 0.01}})
    return p, a, b


def test_runs_of_different_recipes_are_refused(tmp_path, capsys):
    """job0 and job1 of a sweep over distill.lr_images=0.01,0.02 were checked as two runs of one recipe
    ("all means over 2 runs inside their ranges"); now refused as paired_over_runs refuses them (its
    recipe_differences), unless --allow-recipe-differences. The runs of a seed sweep are checked."""
    from _run_folders import config

    p, a, b = _two_runs(tmp_path)
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b)]) == 1  # a seed sweep: checked
    assert "(means over 2 runs)" in capsys.readouterr().out
    p, a, b = _two_runs(tmp_path / "sweep", {**config(run_seed=1), "distill": {"lr_images": 0.02}})
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err == (
        "error: the runs were made with different recipes (distill.lr_images); check the runs of one recipe "
        "(a seed sweep), or pass --allow-recipe-differences to check them anyway\n"
    )
    results = [str(d / "eval" / "results.csv") for d in (a, b)]
    assert main([str(p), "--results", results[0], "--results", results[1]]) == 2  # the tables alone too
    assert "different recipes (distill.lr_images)" in capsys.readouterr().err
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b), "--allow-recipe-differences"]) == 1
    assert "(means over 2 runs)" in capsys.readouterr().out


def test_an_evaluation_folder_is_taken_as_a_run_dir(tmp_path, capsys):
    """``gastrodistill-evaluate``'s own folder holds results.csv itself, not eval/results.csv: it was
    refused with "no results at <folder>/eval/results.csv", though the table was there (a tester)."""
    p, a, b = _two_runs(tmp_path)
    assert main([str(p), "--run-dir", str(a / "eval"), "--run-dir", str(b / "eval")]) == 1
    assert "(means over 2 runs)" in capsys.readouterr().out


def test_a_copy_of_one_run_is_refused(tmp_path, capsys):
    """A ``cp -a`` copy of a run folder counted as a second run (a zero-width interval over runs); now
    refused with paired_over_runs' own check (the same records)."""
    import shutil

    p, a, _ = _two_runs(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(copy)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {copy} holds the same records as {a} (a copy of one run); each run counts once\n"
    )


def test_a_table_older_than_its_records_is_refused(tmp_path, capsys):
    """A record that changed after the table was computed from it (a network trained again, the evaluation
    stopped before its table) is refused, as paired_over_runs refuses it, naming the command that
    finishes it; so is a list of records that cannot be read. A record the table does not list (an earlier,
    larger evaluation's network) is not the table's: left out, the run checked as before. A folder written
    before the table listed its records is judged by file times."""
    import os
    import shutil

    from _run_folders import net

    from gastrodistill.evaluation.report import RESULTS_SOURCES, load_record, save_record

    p, a, b = _two_runs(tmp_path)
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b)]) == 1
    checked = capsys.readouterr().out
    first = load_record(b / "eval" / "records" / "soft__replay__same__0.npz")
    stray = {**first, "job": "soft__replay__same__2", "network": 2, "patient_hm": 0.0}
    save_record(b / "eval", stray)  # a third network of an earlier evaluation with eval.n_networks=3
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b)]) == 1
    assert capsys.readouterr().out == checked  # the same check: the stray network is not pooled
    n = net(np.random.default_rng(5), skill=0.4)
    save_record(b / "eval", {**first, "test_decisions": n["decisions"], "test_scores": n["scores"]})
    for args in (["--run-dir", str(a), "--run-dir", str(b)], ["--run-dir", str(b)]):
        assert main([str(p), *args]) == 2
        err = capsys.readouterr().err
        assert (
            f"error: {b}: its evaluation did not finish (records/soft__replay__same__0.npz changed after "
            "results.csv was computed from it" in err
        )
        assert f"'stages=[evaluate]' hydra.run.dir={b}, or leave the folder out" in err
    sources = b / "eval" / RESULTS_SOURCES
    listed = sources.read_text()
    for damage, why in (
        (lambda: sources.write_text(listed[:100]), "results.sources.json is not the list of records"),
        (
            lambda: (sources.unlink(), sources.mkdir()),
            "results.sources.json cannot be read (IsADirectoryError)",
        ),
    ):
        damage()
        assert main([str(p), "--run-dir", str(b)]) == 2
        assert f"error: {b}: its evaluation did not finish ({why}" in capsys.readouterr().err
    shutil.rmtree(sources)  # an older version's folder, without the list: its file times decide
    record = next((b / "eval" / "records").glob("*.npz"))
    later = (b / "eval" / "results.csv").stat().st_mtime_ns + 10**9
    os.utime(record, ns=(later, later))
    assert main([str(p), "--run-dir", str(b)]) == 2
    assert f"error: {b}: its evaluation did not finish (results.csv is older than records/" in (
        capsys.readouterr().err
    )


def test_a_run_copied_without_its_file_times_is_checked(tmp_path, capsys):
    """A run folder copied without its files' times (``cp -r``: every record newer than the table) read as
    an unfinished evaluation and was refused; the records are now compared by content with the list the
    table was computed from."""
    import os
    import shutil

    p, a, b = _two_runs(tmp_path)
    copy = tmp_path / "copied"
    shutil.copytree(b, copy, copy_function=shutil.copyfile)  # contents only, as cp -r
    table = copy / "eval" / "results.csv"
    later = table.stat().st_mtime_ns + 10**9
    for record in (copy / "eval" / "records").glob("*.npz"):
        os.utime(record, ns=(later, later))
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(copy)]) == 1  # checked, as the original
    assert "(means over 2 runs)" in capsys.readouterr().out
    assert main([str(p), "--run-dir", str(a), "--run-dir", str(b)]) == 1
    assert "(means over 2 runs)" in capsys.readouterr().out


def test_a_number_is_looked_up_as_documented(tmp_path):
    """The first matching row (a table without cross_architecture: the primary architecture's row first;
    mutant: the last), a row key the table lacks named (mutant: ignored, another row read), values that
    YAML reads as numbers compared as text (mutant: 1 != '1'), the value's mapping as the label without
    ``what`` (mutant: empty)."""
    from gastrodistill.cli.check_experiment import lookup

    old = TABLE.drop(columns=["cross_architecture"])  # soft replay: convnet 0.80, then lenet 0.50
    assert lookup(old, {"method": "soft", "schedule": "replay"}) == (0.80, "")
    no_arch = TABLE.drop(columns=["architecture"])
    ref = {"method": "soft", "schedule": "replay", "architecture": "lenet"}
    value, note = lookup(no_arch, ref)
    assert math.isnan(value) and note == "no column 'architecture'"
    p = tmp_path / "r.yaml"
    p.write_text("name: t\noverrides: []\nresults: x\nexpect:\n  - {value: {method: 1}, range: [0, 1]}\n")
    numbered = TABLE.assign(method=["1", "soft", "hard", "full", "random"])
    (check,) = evaluate(load_recipe(p), numbered)
    assert check.value == 0.80 and check.ok and check.note == ""
    assert check.what == str({"method": 1})


def test_the_mean_over_runs_holds_at_both_ends_of_its_range():
    """Mutant: the high end excluded. (0.5 + 1.0) / 2 = 0.75 and (0.0 + 0.5) / 2 = 0.25 exactly."""
    assert CheckOverRuns("x", [0.5, 1.0], 0.25, 0.75).ok and CheckOverRuns("x", [0.0, 0.5], 0.25, 0.75).ok
    assert not CheckOverRuns("x", [0.5, 1.0], 0.25, 0.7499).ok


def test_the_report_counts_the_numbers_outside(tmp_path, capsys):
    """Of RECIPE on TABLE with the cross-architecture value at 0.70 (inside [0.6, 1]), only the missing row
    is outside: 1 of 4 (mutant: the 3 inside counted)."""
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    csv = tmp_path / "results.csv"
    TABLE.assign(patient_hm_mean=[0.80, 0.70, 0.70, 0.85, 0.60]).to_csv(csv, index=False)
    assert main([str(p), "--results", str(csv)]) == 1
    assert capsys.readouterr().out.rstrip().endswith("\n1 of 4 outside")


def test_the_row_lines_of_a_table_count_its_blank_lines(tmp_path):
    """``attrs["lines"]``: each row's line in the file, the header line 1, blank lines counted (mutant:
    numbered from 1), so an error found later names the line an editor shows."""
    from gastrodistill.cli.check_experiment import read_results

    source = tmp_path / "results.csv"
    source.write_text("method,schedule\nsoft,replay\n\nhard,replay\nfull,real\n")
    assert read_results(source).attrs["lines"] == [2, 4, 5]


def _run_with_overrides(folder: Path, overrides: list[str], mtime: int) -> None:
    import os

    (folder / "eval").mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "eval" / "results.csv").write_text("x\n")
    os.utime(folder / "eval" / "results.csv", (mtime, mtime))


def test_the_latest_run_is_searched_under_the_experiment_name_and_by_overrides(tmp_path, capsys):
    """Runs live under outputs/<experiment_name>/runs (mutant: the recipe's name); elsewhere a run is the
    recipe's only when its overrides hold the recipe's (mutant: any); a sweep job finished at the same time
    as the run is not later (mutant: >=); a model or +data choice is another study (mutants: model not a
    study group, the + kept)."""
    from gastrodistill.cli.check_experiment import latest_run

    recipe = {"name": "cpu_synthetic", "experiment_name": "cpu", "results": "eval/results.csv"}
    recipe["overrides"] = ["experiment=cpu"]
    run = tmp_path / "outputs" / "cpu" / "runs" / "a"
    _run_with_overrides(run, ["experiment=cpu"], 1000)
    _run_with_overrides(tmp_path / "outputs" / "cpu" / "multiruns" / "s" / "0", ["experiment=cpu"], 1000)
    assert latest_run(tmp_path, recipe) == run
    assert capsys.readouterr().err == ""  # the sweep job is no later than the run
    for other in (["experiment=cpu", "model=lenet"], ["experiment=cpu", "+data=npz"]):
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in other))
        with pytest.raises(RecipeError, match="no finished run of 'cpu_synthetic'"):
            latest_run(tmp_path, recipe)
        assert f"({other[1]} in a)" in capsys.readouterr().err
    elsewhere = {**recipe, "experiment_name": "none_here"}
    _run_with_overrides(tmp_path / "outputs" / "x" / "runs" / "seed", ["seed=1"], 2000)
    with pytest.raises(RecipeError, match="no finished run"):
        latest_run(tmp_path, elsewhere)  # neither the other-study run nor one without experiment=cpu
    _run_with_overrides(tmp_path / "outputs" / "y" / "runs" / "b", ["experiment=cpu", "seed=2"], 3000)
    assert latest_run(tmp_path, elsewhere) == tmp_path / "outputs" / "y" / "runs" / "b"


def test_a_rerun_into_a_folder_that_cannot_be_written_is_refused_before_it_runs(
    tmp_path, capsys, monkeypatch
):
    """Mutant: the output-folder check skipped, the re-run started (its traceback, then ours)."""
    import gastrodistill.cli.check_experiment as ce

    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    (tmp_path / "afile").write_text("x")
    reran: list = []
    monkeypatch.setattr(ce, "rerun", lambda recipe, run_dir: reran.append(run_dir))
    target = tmp_path / "afile" / "sub"
    assert main([str(p), "--run", "--run-dir", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: --run-dir {target} is inside {tmp_path / 'afile'}, which is a file; give a folder you can "
        "write to (it is created if missing)\n"
    )
    assert reran == []


def test_a_rerun_runs_the_recipe_into_its_folder(tmp_path, monkeypatch, capsys):
    """The reproduce command beside this Python, the recipe's overrides, then hydra.run.dir (mutant:
    dropped, the run went to Hydra's default folder), checked, albumentations' update check off."""
    import subprocess
    import sys

    import gastrodistill.cli.check_experiment as ce

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    ce.rerun({"overrides": ["experiment=tiny", "seed=3"]}, tmp_path / "run")
    ((cmd, kw),) = calls
    exe = Path(sys.executable).with_name("gastrodistill-reproduce")
    first = str(exe) if exe.exists() else "gastrodistill-reproduce"
    assert cmd == [first, "experiment=tiny", "seed=3", f"hydra.run.dir={tmp_path / 'run'}"]
    assert kw["check"] is True and kw["env"]["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert capsys.readouterr().out == f"running: {' '.join(cmd)}\n"
