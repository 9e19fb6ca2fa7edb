"""``python -m gastrodistill.cli.compare_runs``: runs and sweeps side by side, their numbers read from each
run's results table, the settings that differ found in their configs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _run_folders import config, give_sets, write_image_run, write_run

from gastrodistill.cli.compare_runs import main

ROWS = (
    ("soft", "replay", "convnet", False),
    ("soft", "replay", "lenet", True),
    ("hard", "replay", "convnet", False),
    ("full", "real", "convnet", False),
    ("random", "standard", "convnet", False),
)


def rich_table(rng: np.random.Generator, patients: bool = True) -> pd.DataFrame:
    """A results table with random numbers in every column the comparison reads (means, intervals,
    paired differences), as the evaluate stage names them."""
    stems = ("patient_hm", "patient_auc") if patients else ("image_accuracy", "image_auc")
    means = ("patient_hm", "patient_auc") if patients else ("patch_accuracy", "patch_auc")
    rows = []
    for method, schedule, arch, cross in ROWS:
        row = {"method": method, "schedule": schedule, "architecture": arch, "cross_architecture": cross}
        for mean, stem in zip(means, stems, strict=True):
            m = rng.uniform(0.3, 0.9)
            row |= {f"{mean}_mean": m, f"{stem}_ci_low": m - rng.uniform(0.05, 0.2)}
            row |= {f"{stem}_ci_high": m + rng.uniform(0.05, 0.2)}
            for partner in ("random", "hard"):
                d = rng.uniform(-0.2, 0.3)
                row |= {f"vs_{partner}_{stem}_diff": d, f"vs_{partner}_{stem}_ci_low": d - 0.1}
                row |= {f"vs_{partner}_{stem}_ci_high": d + 0.1}
        if not patients:
            row["patient_hm_mean"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def make_run(folder: Path, seed: int, cfg: dict, patients: bool = True) -> pd.DataFrame:
    """A finished run folder (records, config, sources list) whose ``results.csv`` is :func:`rich_table`;
    returns the table as written."""
    (write_run if patients else write_image_run)(folder, seed, cfg)
    table = rich_table(np.random.default_rng(100 + seed), patients)
    table.to_csv(folder / "eval" / "results.csv", index=False)
    return pd.read_csv(folder / "eval" / "results.csv")


def recipe(ipc: int, seed: int = 0, synthetic_seed: int = 0) -> dict:
    cfg = config(run_seed=seed)
    cfg["synthetic"]["seed"] = synthetic_seed
    return {**cfg, "seed": seed, "experiment_name": "cpu", "distill": {"ipc": ipc, "lr_images": 0.05}}


def cell(table: pd.DataFrame, method: str, schedule: str, stem: str, mean: str | None = None) -> str:
    r = table[(table.method == method) & (table.schedule == schedule) & ~table.cross_architecture].iloc[0]
    m = r[f"{mean or stem}_mean"]
    return f"{m:.3f} [{r[f'{stem}_ci_low']:.3f}, {r[f'{stem}_ci_high']:.3f}]"


def table_lines(text: str) -> list[list[str]]:
    """The Markdown table's rows (header first) as lists of cells."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_a_sweeps_jobs_in_job_order_with_their_differing_settings_and_numbers(tmp_path, capsys) -> None:
    sweep = tmp_path / "multiruns" / "t"
    tables = {
        job: make_run(sweep / str(job), job, recipe(ipc=ipc, seed=seed))
        for job, ipc, seed in ((10, 10, 1), (2, 1, 0), (0, 5, 0))
    }
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # Hydra's own file beside the jobs: not a run
    out, csv_path, plot = tmp_path / "c.md", tmp_path / "c.csv", tmp_path / "c.png"
    assert main([str(sweep), "--out", str(out), "--csv", str(csv_path), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    head, *lines = table_lines(text)
    assert head[:3] == ["run", "distill.ipc", "seed"]  # lr_images and the data's seed are the same
    assert [line[0] for line in lines] == ["job 0", "job 2", "job 10"]  # numbers' order, not text's
    assert [line[1:3] for line in lines] == [["5", "0"], ["1", "0"], ["10", "1"]]
    assert head[3:7] == [
        f"{r} [95% CI]" for r in ("soft replay", "hard replay", "full real", "random standard")
    ]
    assert head[7:] == [
        "soft replay / full real",
        "soft replay − random [95% CI]",
        "soft replay − hard [95% CI]",
    ]
    for line, job in zip(lines, (0, 2, 10), strict=True):
        t = tables[job]
        want = [cell(t, m, s, "patient_hm") for m, s in (("soft", "replay"), ("hard", "replay"))]
        want += [cell(t, m, s, "patient_hm") for m, s in (("full", "real"), ("random", "standard"))]
        assert line[3:7] == want
        soft = t[(t.method == "soft") & ~t.cross_architecture].iloc[0]
        full = t[t.method == "full"].iloc[0]
        assert line[7] == f"{soft.patient_hm_mean / full.patient_hm_mean:.3f}"
        for partner, got in zip(("random", "hard"), line[8:], strict=True):
            d, lo, hi = (soft[f"vs_{partner}_patient_hm_{s}"] for s in ("diff", "ci_low", "ci_high"))
            assert got == f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    assert out.read_text() == text
    frame = pd.read_csv(csv_path)
    assert list(frame.run) == ["job 0", "job 2", "job 10"] and list(frame["distill.ipc"]) == [5, 1, 10]
    for (_, row), job in zip(frame.iterrows(), (0, 2, 10), strict=True):
        soft = tables[job][(tables[job].method == "soft") & ~tables[job].cross_architecture].iloc[0]
        assert row["soft replay mean"] == pytest.approx(soft.patient_hm_mean)
        assert row["soft replay low"] == pytest.approx(soft.patient_hm_ci_low)
    assert frame["soft replay - hard high"].tolist() == pytest.approx(
        [tables[j].vs_hard_patient_hm_ci_high[0] for j in (0, 2, 10)]
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_auc_rows_of_other_architectures_and_image_level_data(tmp_path, capsys) -> None:
    a = make_run(tmp_path / "a", 0, recipe(ipc=1))
    make_run(tmp_path / "b", 1, recipe(ipc=2))
    assert (
        main([str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "auc", "--row", "soft/replay/lenet"]) == 0
    )
    head, first, _ = table_lines(capsys.readouterr().out)
    assert head == [
        "run",
        "distill.ipc",
        "soft replay (lenet) [95% CI]",
        "soft replay (lenet) / full real",  # the derived columns name the row they belong to
        "soft replay (lenet) − random [95% CI]",
        "soft replay (lenet) − hard [95% CI]",
    ]
    lenet = a[a.architecture == "lenet"].iloc[0]
    full = a[a.method == "full"].iloc[0]
    assert first[:4] == [
        "a",
        "1",
        f"{lenet.patient_auc_mean:.3f} [{lenet.patient_auc_ci_low:.3f}, {lenet.patient_auc_ci_high:.3f}]",
        f"{lenet.patient_auc_mean / full.patient_auc_mean:.3f}",
    ]
    assert first[4] == (
        f"{lenet.vs_random_patient_auc_diff:+.3f} [{lenet.vs_random_patient_auc_ci_low:+.3f}, "
        f"{lenet.vs_random_patient_auc_ci_high:+.3f}]"
    )

    images = [make_run(tmp_path / f"i{k}", k, recipe(ipc=k + 1), patients=False) for k in (0, 1)]
    assert main([str(tmp_path / "i0"), str(tmp_path / "i1")]) == 0
    text = capsys.readouterr().out
    assert "runs compared: image accuracy" in text
    assert table_lines(text)[1][2] == cell(images[0], "soft", "replay", "image_accuracy", "patch_accuracy")


def test_a_note_when_the_runs_score_other_test_patients_or_share_every_setting(tmp_path, capsys) -> None:
    make_run(tmp_path / "a", 0, recipe(ipc=1, synthetic_seed=0))
    make_run(tmp_path / "b", 1, recipe(ipc=1, synthetic_seed=3))
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert table_lines(text)[0][1] == "synthetic.seed"
    assert "The runs score different test patients (synthetic.seed differ)" in text

    make_run(tmp_path / "c", 2, recipe(ipc=1))
    make_run(tmp_path / "d", 3, recipe(ipc=1))
    for run in ("c", "d"):
        give_sets(tmp_path / run, {"soft": 3, "hard": 3})
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert table_lines(text)[0][:2] == ["run", "soft replay [95% CI]"]
    assert "The runs share every setting compared" in text and "could not be read" not in text
    shutil.move(tmp_path / "c" / "distill" / "soft", tmp_path / "soft_elsewhere")  # its recipe is unknown now
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert "c: the recipe of set soft could not be read" in text and "share every setting" not in text
    shutil.move(tmp_path / "soft_elsewhere", tmp_path / "c" / "distill" / "soft")
    give_sets(tmp_path / "d", {"soft": 6, "hard": 6})  # the sets speak for the recipe, not eval/config.yaml
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    assert table_lines(capsys.readouterr().out)[0][:2] == ["run", "distill.outer_steps"]
    (tmp_path / "d" / "eval" / "config.yaml").unlink()
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert "d: its evaluation folder has no readable config.yaml; its settings are unknown." in text
    assert "share every setting" not in text


def test_a_sweeps_unfinished_jobs_are_left_out_with_what_to_do(tmp_path, capsys) -> None:
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", 0, recipe(ipc=1))
    make_run(sweep / "1", 1, recipe(ipc=2))
    (sweep / "1" / "eval" / "results.csv").unlink()  # an evaluate stage stopped before its table
    (sweep / "1" / ".hydra").mkdir()
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["experiment=cpu", "distill.ipc=2"])
    )
    (sweep / "2" / ".hydra").mkdir(parents=True)  # a job that failed in its distillation
    (sweep / "3").mkdir()  # a job folder with nothing in it (skipped without a word before)
    assert main([str(sweep)]) == 0
    text = capsys.readouterr().out
    assert f"{sweep / '3'} left out: it holds no run files (the job wrote nothing)" in text
    assert [line[0] for line in table_lines(text)[1:]] == ["job 0"]
    assert (
        f"{sweep / '1'} left out (no results.csv); finish it with gastrodistill-reproduce experiment=cpu "
        f"distill.ipc=2 'stages=[evaluate]' hydra.run.dir={sweep / '1'}" in text
    )
    assert f"{sweep / '2'} left out: it has no evaluation (its log there says why)" in text

    assert main([str(sweep / "1")]) == 2  # named on the command line: refused, not left out
    err = capsys.readouterr().err
    assert err.startswith(f"error: {sweep / '1'}: its evaluation did not finish (no results.csv); finish it")
    assert err.count("\n") == 1


def planned_sweep(sweep: Path, task: list[str]) -> None:
    """The sweep's ``multirun.yaml`` as Hydra writes it, with the command's overrides ``task`` (the jobs it
    planned); ``sweep`` exists."""
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))


def hydra_record(folder: Path, choices: dict[str, str], overrides: list[str] | None = None) -> None:
    """The ``.hydra/`` files a Hydra job writes that the comparison reads: its config-group choices and
    its overrides."""
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    full = {"hydra": "default", "specialize": "cpu_gastric", "experiment": "cpu", **choices}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": full}}}))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or ["experiment=cpu"]))


def test_config_group_choices_lists_and_the_sweeps_own_key_order(tmp_path, capsys) -> None:
    sweep = tmp_path / "sweep"
    task = ["experiment=cpu", "distill=soft_cpu,soft", "eval.architectures=[same],[same,lenet]"]
    (sweep).mkdir()
    planned_sweep(sweep, task)
    for job, (group, archs) in enumerate(
        (
            ("soft_cpu", ["same"]),
            ("soft_cpu", ["same", "lenet"]),
            ("soft", ["same"]),
            ("soft", ["same", "lenet"]),
        )
    ):
        cfg = recipe(ipc=1)
        cfg["eval"] = {"architectures": archs}
        make_run(sweep / str(job), job, cfg)
        hydra_record(sweep / str(job), {"distill": group})
    assert main([str(sweep)]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    # the group's choice is a column of its own; the swept keys in the sweep's order, not alphabetical
    assert head[:3] == ["run", "distill", "eval.architectures"]
    assert [line[1:3] for line in lines] == [
        ["soft_cpu", "[same]"],
        ["soft_cpu", "[same, lenet]"],
        ["soft", "[same]"],
        ["soft", "[same, lenet]"],
    ]


def test_keys_a_group_choice_sets_are_no_columns_of_their_own(tmp_path, capsys) -> None:
    """``-m model=convnet,resnet18`` showed the group and every key its two files set (``model.depth``,
    ``model.width``, ...) as columns (a tester): keys one choice fixes are left out; a key that differs
    within one choice (``model.width=8,16`` swept too) stays."""
    for job, (group, depth, width) in enumerate(
        (("convnet", 3, 8), ("resnet18", 18, 8), ("resnet18", 18, 16))
    ):
        cfg = recipe(ipc=1)
        cfg["model"] = {"_target_": f"gastrodistill.models.{group}", "depth": depth, "width": width}
        make_run(tmp_path / "sweep" / str(job), job, cfg)
        hydra_record(tmp_path / "sweep" / str(job), {"model": group})
    assert main([str(tmp_path / "sweep")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:3] == ["run", "model", "model.width"] and "model.depth" not in head
    assert [line[1:3] for line in lines] == [["convnet", "8"], ["resnet18", "8"], ["resnet18", "16"]]


def test_a_swept_key_outside_the_recipe_and_a_removed_group_are_shown(tmp_path, capsys) -> None:
    """``-m +tag=x,y '~audit'``: the tag is no recipe key but the only thing the jobs differ in (it was
    left out, and the runs said to share every setting); a group removed by ``~audit`` showed the whole
    audit config as its choice."""
    for job, tag in enumerate(("x", "y")):
        folder = tmp_path / "sweep" / str(job)
        make_run(folder, job, {**recipe(ipc=1), "tag": tag})
        give_sets(folder, {"soft": 3, "hard": 3})
        hydra_record(folder, {}, ["experiment=cpu", f"+tag={tag}", "~audit", f"paths.root_dir={tmp_path}"])
    other = tmp_path / "other"
    make_run(other, 5, {**recipe(ipc=1), "audit": {"seed": 0, "sets": None}})
    give_sets(other, {"soft": 3, "hard": 3})
    hydra_record(other, {"audit": "default"})
    assert main([str(tmp_path / "sweep")]) == 0
    text = capsys.readouterr().out
    head, *lines = table_lines(text)
    assert head[:2] == ["run", "tag"] and [line[1] for line in lines] == ["x", "y"]
    assert "share every setting" not in text and "root_dir" not in text  # locations are no setting
    assert main([str(tmp_path / "sweep" / "0"), str(other)]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[1] == "audit" and [line[1] for line in lines] == ["–", "default"]


def test_a_full_standard_output_is_one_line_of_error(tmp_path) -> None:
    make_run(tmp_path / "sweep" / "0", 0, recipe(ipc=1))
    done = subprocess.run(
        f"{sys.executable} -m gastrodistill.cli.compare_runs {tmp_path / 'sweep'} > /dev/full",
        shell=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "error: cannot write the table to standard output (No space left on device)\n"


def test_labels_tell_runs_apart_and_jobs_that_never_started_are_named(tmp_path, capsys) -> None:
    for sweep in ("sw1", "sw2"):
        for job in (0, 1):
            make_run(tmp_path / sweep / str(job), job, recipe(ipc=job + 1))
    assert main([str(tmp_path / "sw1"), str(tmp_path / "sw2")]) == 0
    assert [line[0] for line in table_lines(capsys.readouterr().out)[1:]] == [
        "sw1/0",
        "sw1/1",
        "sw2/0",
        "sw2/1",
    ]
    assert main([str(tmp_path / "sw1" / "0" / "eval"), str(tmp_path / "sw2" / "0" / "eval")]) == 0
    assert [line[0] for line in table_lines(capsys.readouterr().out)[1:]] == ["sw1/0/eval", "sw2/0/eval"]
    assert main([str(tmp_path / "sw1"), str(tmp_path / "sw2" / "1")]) == 0
    assert [line[0] for line in table_lines(capsys.readouterr().out)[1:]] == ["sw1/0", "sw1/1", "sw2/1"]

    task = ["experiment=cpu", "distill.ipc=1,2,3", "paths.root_dir=/x"]
    planned_sweep(tmp_path / "sw1", task)
    assert main([str(tmp_path / "sw1")]) == 0
    text = capsys.readouterr().out
    assert (
        f"{tmp_path / 'sw1'}: the sweep planned 3 jobs (multirun.yaml); job 2 (distill.ipc=3) never started"
        in text
    )


def test_a_row_no_run_holds_is_named_and_empty_derived_columns_are_left_out(tmp_path, capsys) -> None:
    a = make_run(tmp_path / "a", 0, recipe(ipc=1))
    b = make_run(tmp_path / "b", 1, recipe(ipc=2))
    for folder, table in ((tmp_path / "a", a), (tmp_path / "b", b)):
        table[table.method != "hard"].drop(columns=[c for c in table if c.startswith("vs_hard")]).to_csv(
            folder / "eval" / "results.csv", index=False
        )
    assert (
        main([str(tmp_path / "a"), str(tmp_path / "b"), "--row", "soft/replay", "--row", "sfot/replay"]) == 0
    )
    text = capsys.readouterr().out
    head = table_lines(text)[0]
    assert head == ["run", "distill.ipc", "soft replay [95% CI]", "soft replay / full real",
                    "soft replay − random [95% CI]"]  # fmt: skip
    assert (
        "No run holds the row sfot/replay (the runs hold full/real/convnet, random/standard/convnet, " in text
    )
    assert "## 2 runs compared" in text
    assert main([str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "## 1 run compared" in text and "share every setting" not in text


def test_a_copied_run_is_named_as_one(tmp_path, capsys) -> None:
    """``cp -a run copy``: the copy's table equals the run's, so it is named as no second measurement (a
    tester's finding of the last session: it compared as a run of its own)."""
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    make_run(tmp_path / "b", 1, recipe(ipc=2))
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    assert "c: its results table equals a's to the last digit (a copy of one run, cp -a?)" in text
    assert text.count("to the last digit") == 1  # a and b differ


def test_the_plot_says_which_run_lacks_a_row(tmp_path, monkeypatch) -> None:
    """A run without one of the compared rows: its place in the plot says so (it was left empty)."""
    import gastrodistill.evaluation.plots as plots

    make_run(tmp_path / "a", 0, recipe(ipc=1))
    b = make_run(tmp_path / "b", 1, recipe(ipc=2))
    b[b.method != "hard"].to_csv(tmp_path / "b" / "eval" / "results.csv", index=False)
    drawn, save = {}, plots.save_figure

    def keep_texts(fig, path, **options):
        ax = fig.axes[0]
        drawn["notes"] = [(t.get_text(), t.xy[1]) for t in ax.texts]
        drawn["rows"] = [t.get_text().split(",")[0] for t in ax.get_yticklabels()]
        return save(fig, path, **options)

    monkeypatch.setattr(plots, "save_figure", keep_texts)
    plot = tmp_path / "c.png"
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--row", "soft/replay", "--row", "hard/replay"]
    assert main([*args, "--plot", str(plot)]) == 0
    assert drawn["rows"] == ["a", "b"] and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # hard is the second of two rows: drawn 0.35 / 2 below its run's line (b: line 1)
    assert drawn["notes"] == [("no hard replay row", pytest.approx(1 + 0.35 / 2))]


def test_outputs_are_written_together_or_not_at_all_and_never_into_a_run(
    tmp_path, capsys, monkeypatch
) -> None:
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", 0, recipe(ipc=1))
    make_run(sweep / "1", 1, recipe(ipc=2))
    make_run(tmp_path / "other" / "0", 2, recipe(ipc=3))  # a run not compared is no place either
    before = (sweep / "0" / "eval" / "results.csv").read_bytes()
    for flag, path, said in (
        ("--csv", sweep / "0" / "eval" / "results.csv", "lies inside"),
        ("--out", sweep / "results.csv", "is named like a run's file (results.csv)"),  # would look like a run
        ("--out", sweep / "multirun.yaml", "is named like a run's file (multirun.yaml)"),
        ("--csv", tmp_path / "other" / "0" / "eval" / "c.csv", "lies inside the run folder"),  # not compared
        ("--plot", tmp_path / "c.jpg", "the figure is a PNG; give a path ending in .png"),
    ):
        assert main([str(sweep), flag, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag} {path}") and said in err and err.count("\n") == 1
    assert main([str(sweep), "--out", str(tmp_path / "c.md"), "--csv", str(tmp_path / "c.md")]) == 2
    assert "is also given to --out" in capsys.readouterr().err
    assert (sweep / "0" / "eval" / "results.csv").read_bytes() == before and not (tmp_path / "c.jpg").exists()

    import gastrodistill.evaluation.plots as plots

    def full_disk(comparison, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_runs_compared", full_disk)
    out, csv_path, plot = tmp_path / "c.md", tmp_path / "c.csv", tmp_path / "c.png"
    assert main([str(sweep), "--out", str(out), "--csv", str(csv_path), "--plot", str(plot)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --plot {plot}: cannot write (No space left on device)\n"
    assert captured.out == ""  # nothing printed, and neither file written nor a temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "sweep"]
    assert main([str(sweep), "--out", str(sweep / "c.md")]) == 0  # beside the jobs: allowed
    assert (sweep / "c.md").read_text() == capsys.readouterr().out


def test_a_closed_pipe_ends_the_printing_without_a_traceback() -> None:
    """``compare_runs ... | head``: the reader leaves after its lines; 400 kB of table fill the pipe, so the
    writer meets the closed pipe (a traceback and exit status 1 before)."""
    script = (
        "from gastrodistill.cli.printing import print_to_reader; print_to_reader('| job | 0.5 |\\n' * 30000)"
    )
    done = subprocess.run(
        f"{sys.executable} -c \"{script}\" | head -2; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "| job | 0.5 |\n| job | 0.5 |\n")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist; give a run folder or a sweep folder"),
        ("file", "is not a folder; give a run folder"),
        ("empty", "holds no run: neither eval/results.csv nor job folders"),
        ("row", "--row 'soft': give method/schedule or method/schedule/architecture"),
        (
            "absent row",
            "no run holds the rows mean/real; the runs hold full/real/convnet, hard/replay/convnet",
        ),
        (
            "kinds",
            "some runs hold patient-level numbers and others image-level ones only (no patient_hm_mean",
        ),
        ("twice", "/a/../a is given twice (as "),
        ("out", "--plot"),
        ("table", "is not a results table of the evaluate stage: it lacks the columns ['schedule']"),
        ("blank row", "results.csv: line 7 has no method, schedule or architecture; evaluate the run again"),
        ("repeated row", "results.csv: line 7 repeats the row soft/replay/convnet; evaluate the run again"),
        ("text", "results.csv: line 2, column patient_hm_mean: 'abc' is not a number; evaluate the run"),
        # a blank line above (skipped by pandas) counts as a text editor counts it (a tester: it shifted)
        ("text below a blank line", "results.csv: line 5, column patient_hm_mean: 'abc' is not a number"),
    ],
)
def test_unusable_input_is_refused_in_one_line(tmp_path, capsys, case: str, message: str) -> None:
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    other = tmp_path / "b"
    args = [str(tmp_path / "a"), str(other)]
    if case == "missing":
        args = [str(tmp_path / "nowhere")]
    elif case == "file":
        (tmp_path / "f.txt").write_text("x")
        args = [str(tmp_path / "f.txt")]
    elif case == "empty":
        (tmp_path / "empty" / "notes").mkdir(parents=True)
        args = [str(tmp_path / "empty")]
    elif case == "row":
        make_run(other, 1, recipe(ipc=2))
        args += ["--row", "soft"]
    elif case == "absent row":
        make_run(other, 1, recipe(ipc=2))
        args += ["--row", "mean/real"]
    elif case == "kinds":
        write_image_run(other, 1, recipe(ipc=2))
    elif case == "twice":
        args = [str(tmp_path / "a"), str(tmp_path / "a" / ".." / "a")]
    elif case == "out":
        make_run(other, 1, recipe(ipc=2))
        args += ["--plot", str(tmp_path / "no" / "such" / "c.png")]
    elif case == "table":
        make_run(other, 1, recipe(ipc=2))
        pd.DataFrame({"method": ["soft"]}).to_csv(other / "eval" / "results.csv", index=False)
    elif case in ("blank row", "repeated row", "text", "text below a blank line"):
        table = make_run(other, 1, recipe(ipc=2))
        if case.startswith("text"):
            table["patient_hm_mean"] = table["patient_hm_mean"].astype(object)
            table.loc[0 if case == "text" else 2, "patient_hm_mean"] = "abc"
        else:
            extra = (
                {"method": "soft", "schedule": "replay", "architecture": "convnet"}
                if case != "blank row"
                else {}
            )
            table = pd.concat([table, pd.DataFrame([extra])], ignore_index=True)
        table.to_csv(other / "eval" / "results.csv", index=False)
        if case == "text below a blank line":
            lines = (other / "eval" / "results.csv").read_text().splitlines(keepends=True)
            (other / "eval" / "results.csv").write_text("".join([*lines[:2], "\n", *lines[2:]]))
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err, captured.err
    assert not (tmp_path / "no").exists()


def test_a_real_sweep_of_the_pipeline_compared_from_its_folder(tmp_path) -> None:
    """Hydra's own multirun of ``gastrodistill-reproduce`` (the tiny preset, two outer-step counts): the
    command finds both jobs, names the swept key and prints each job's own results table's numbers."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "gastrodistill.cli.reproduce", "-m", "experiment=tiny",
        "distill.outer_steps=1,2", "stages=[generate,patches,distill,evaluate]",
        f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = subprocess.run(
        [sys.executable, "-m", "gastrodistill.cli.compare_runs", str(sweep), "--row", "soft/replay"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    head, *lines = table_lines(shown.stdout)
    assert head[:3] == ["run", "distill.outer_steps", "soft replay [95% CI]"]
    for line, (job, steps) in zip(lines, ((0, "1"), (1, "2")), strict=True):
        table = pd.read_csv(sweep / str(job) / "eval" / "results.csv")
        assert line[:2] == [f"job {job}", steps]
        assert line[2] == cell(table, "soft", "replay", "patient_hm")
    assert len(lines) == 2

    # an evaluation of job 1's set on its own (gastrodistill-evaluate): its recipe is the set's own
    # (outer_steps 2), not the evaluate command's default (1)
    alone = tmp_path / "alone"
    command = [
        sys.executable,
        "-m",
        "gastrodistill.cli.evaluate",
        "experiment=tiny",
        "eval.distilled_dirs={soft: sweep/1/distill/soft}",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={alone}",
    ]  # fmt: skip  (the set's folder relative to where the evaluation runs, read from elsewhere below)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = yaml.safe_load((alone / "config.yaml").read_text())["eval"]["distilled_dirs"]
    assert saved == {"soft": str(sweep / "1" / "distill" / "soft")}  # recorded as the folder it read
    shown = subprocess.run(
        [sys.executable, "-m", "gastrodistill.cli.compare_runs", str(alone), str(sweep / "0"), "--row",
         "soft/replay"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    head, *lines = table_lines(shown.stdout)
    assert head[:2] == ["run", "distill.outer_steps"] and [line[:2] for line in lines] == [
        ["alone", "2"],
        ["0", "1"],
    ]


def test_the_choices_of_runs_given_by_their_eval_folders_are_read_from_the_run_folder(
    tmp_path, capsys
) -> None:
    """``compare_runs runA/eval runB/eval``: the config-group choices are in ``runA/.hydra``, above the
    folder given, and still tell the runs apart."""
    for name, group in (("a", "soft_cpu"), ("b", "soft")):
        make_run(tmp_path / name, ord(name), recipe(ipc=1))
        hydra_record(tmp_path / name, {"distill": group})
    assert main([str(tmp_path / "a" / "eval"), str(tmp_path / "b" / "eval")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "distill"]
    assert [line[:2] for line in lines] == [["a/eval", "soft_cpu"], ["b/eval", "soft"]]


def test_overrides_naming_places_hydras_own_and_hidden_groups_are_no_settings(tmp_path, capsys) -> None:
    """Two runs of one recipe from other folders (``paths.root_dir=/x`` and ``/y``, their own
    ``hydra.run.dir``), launchers and specialisations: none of it is a setting, so the runs share every
    setting compared."""
    for name, root, launcher, special in (("a", "/x", "basic", "cpu_gastric"), ("b", "/y", "joblib", "gpu")):
        make_run(tmp_path / name, ord(name), recipe(ipc=1))
        hydra_record(
            tmp_path / name,
            {"hydra/launcher": launcher, "specialize": special, "specialize_model": special},
            ["experiment=cpu", f"paths.root_dir={root}", f"hydra.run.dir={root}/run", f"+data.root={root}/d"],
        )
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert table_lines(text)[0][:2] == ["run", "soft replay [95% CI]"]
    assert "The runs share every setting compared" in text


def test_a_key_one_job_removes_and_a_tag_outside_the_config_are_shown_as_the_command_gave_them(
    tmp_path, capsys
) -> None:
    """``+tag=x`` beside ``~tag``: the removed key reads ``(removed)``; a tag the command added that the
    saved config lacks reads the override's value (it read ``–``)."""
    for job, (saved, override) in enumerate(((True, "+tag=x"), (False, "~tag"))):
        folder = tmp_path / "sweep" / str(job)
        make_run(folder, job, {**recipe(ipc=1), **({"tag": "x"} if saved else {})})
        hydra_record(folder, {}, ["experiment=cpu", override])
    assert main([str(tmp_path / "sweep")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "tag"] and [line[1] for line in lines] == ["x", "(removed)"]

    for job, tag in enumerate(("x", "y")):
        folder = tmp_path / "tags" / str(job)
        make_run(folder, job, recipe(ipc=1))  # no tag in the config
        hydra_record(folder, {}, ["experiment=cpu", f"+tag={tag}"])
    assert main([str(tmp_path / "tags")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "tag"] and [line[1] for line in lines] == ["x", "y"]


def test_a_run_without_recorded_choices_differs_in_none(tmp_path, capsys) -> None:
    """Run A's Hydra record names ``distill=soft``; run B (an evaluation without ``.hydra/``) records no
    choice: that is no difference."""
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    hydra_record(tmp_path / "a", {"distill": "soft"})
    make_run(tmp_path / "b", 1, recipe(ipc=1))
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    head = table_lines(capsys.readouterr().out)[0]
    assert head[:2] == ["run", "soft replay [95% CI]"] and "distill" not in head


def test_a_row_given_twice_is_shown_once(tmp_path, capsys) -> None:
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    make_run(tmp_path / "b", 1, recipe(ipc=2))
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--row", "soft/replay", "--row", " soft / replay"]
    assert main(args) == 0
    head = table_lines(capsys.readouterr().out)[0]
    assert head[:3] == ["run", "distill.ipc", "soft replay [95% CI]"]
    assert sum(c.startswith("soft replay [") for c in head) == 1


def test_the_distillations_own_row_is_read_whatever_the_tables_order(tmp_path, capsys) -> None:
    """A table whose cross-architecture soft replay row (lenet) comes before the convnet one: without an
    architecture, the row shown and divided is the distillation's own."""
    for name, seed in (("a", 0), ("b", 1)):
        table = make_run(tmp_path / name, seed, recipe(ipc=seed + 1))
        table.sort_values("cross_architecture", ascending=False, kind="stable").to_csv(
            tmp_path / name / "eval" / "results.csv", index=False
        )
    a = pd.read_csv(tmp_path / "a" / "eval" / "results.csv")
    assert a.architecture[0] == "lenet"  # the cross-architecture row first
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--row", "soft/replay", "--row", "full/real"]) == 0
    head, first, _ = table_lines(capsys.readouterr().out)
    soft, full = (
        a[(a.method == "soft") & (a.architecture == "convnet")].iloc[0],
        a[a.method == "full"].iloc[0],
    )
    assert head[2:4] == ["soft replay [95% CI]", "full real [95% CI]"]
    assert first[2] == cell(a, "soft", "replay", "patient_hm")
    assert first[4] == f"{soft.patient_hm_mean / full.patient_hm_mean:.3f}"


def test_swept_keys_come_in_the_sweeps_order_not_the_alphabets(tmp_path, capsys) -> None:
    """``-m eval.architectures=... distill=...``: the columns follow the command's order, though the group
    (``distill``) would come first and sorts first."""
    sweep = tmp_path / "sweep"
    task = ["experiment=cpu", "eval.architectures=[same],[same,lenet]", "distill=soft_cpu,soft"]
    sweep.mkdir()
    planned_sweep(sweep, task)
    jobs = (("soft_cpu", ["same"]), ("soft", ["same"]), ("soft_cpu", ["same", "lenet"]))
    for job, (group, archs) in enumerate(jobs):
        cfg = recipe(ipc=1)
        cfg["eval"] = {"architectures": archs}
        make_run(sweep / str(job), job, cfg)
        hydra_record(sweep / str(job), {"distill": group})
    assert main([str(sweep)]) == 0
    text = capsys.readouterr().out
    head, *lines = table_lines(text)
    assert head[:3] == ["run", "eval.architectures", "distill"]
    assert [line[1:3] for line in lines] == [
        ["[same]", "soft_cpu"],
        ["[same]", "soft"],
        ["[same, lenet]", "soft_cpu"],
    ]
    assert "job 3 (eval.architectures=[same,lenet] distill=soft) never started" in text


def test_the_first_planned_job_is_named_when_it_never_started(tmp_path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for job in (1, 2):
        make_run(sweep / str(job), job, recipe(ipc=job + 1))
    task = ["experiment=cpu", "distill.ipc=1,2,3"]
    planned_sweep(sweep, task)
    assert main([str(sweep)]) == 0
    text = capsys.readouterr().out
    assert [line[0] for line in table_lines(text)[1:]] == ["job 1", "job 2"]
    assert f"{sweep}: the sweep planned 3 jobs (multirun.yaml); job 0 (distill.ipc=1) never started" in text


# Mutation review of cli/compare_runs.py: behaviours no test above pinned down.


def test_the_split_seed_and_the_experiment_are_columns_when_they_differ(tmp_path, capsys) -> None:
    """Runs of one recipe but other split seeds (or experiments) showed no column for it (kills dropping
    data.split_seed from SEED_KEYS, and experiment_name from the keys compared)."""
    split = recipe(ipc=1)
    split["data"]["split_seed"] = 4
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    make_run(tmp_path / "b", 1, split)
    make_run(tmp_path / "c", 2, {**recipe(ipc=1), "experiment_name": "tiny"})
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    head, *lines = table_lines(text)
    assert head[:2] == ["run", "data.split_seed"] and [line[:2] for line in lines] == [["a", "0"], ["b", "4"]]
    assert "The runs score different test patients (data.split_seed differ)" in text
    assert main([str(tmp_path / "a"), str(tmp_path / "c")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "experiment_name"] and [line[1] for line in lines] == ["cpu", "tiny"]


def test_image_auc_reads_the_patch_auc_mean_and_the_image_auc_intervals(tmp_path, capsys) -> None:
    """``--metric auc`` of data without patients: the mean is patch_auc_mean, the intervals and paired
    differences the image_auc columns (kills either stem swapped for the accuracy's)."""
    tables = [make_run(tmp_path / f"i{k}", k, recipe(ipc=k + 1), patients=False) for k in (0, 1)]
    assert main([str(tmp_path / "i0"), str(tmp_path / "i1"), "--metric", "auc"]) == 0
    text = capsys.readouterr().out
    assert "## 2 runs compared: image AUC" in text
    head, *lines = table_lines(text)
    rows = (("soft", "replay"), ("hard", "replay"), ("full", "real"), ("random", "standard"))
    assert head[2:7] == [*(f"{m} {s} [95% CI]" for m, s in rows), "soft replay / full real"]
    for line, t in zip(lines, tables, strict=True):
        assert line[2:6] == [cell(t, m, s, "image_auc", "patch_auc") for m, s in rows]
        soft = t[(t.method == "soft") & ~t.cross_architecture].iloc[0]
        assert line[6] == f"{soft.patch_auc_mean / t[t.method == 'full'].iloc[0].patch_auc_mean:.3f}"
        d, lo, hi = (soft[f"vs_random_image_auc_{s}"] for s in ("diff", "ci_low", "ci_high"))
        assert line[7] == f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def test_a_sweeps_other_folders_are_no_jobs_and_no_finished_run_names_the_first_note(
    tmp_path, capsys
) -> None:
    """An empty ``.submitit`` folder beside the jobs is no job left out (kills noting any empty folder);
    with no finished job the error names the first note and counts the rest (kills notes[-1] and an
    off-by-one count)."""
    sweep = tmp_path / "sweep"
    make_run(sweep / "0", 0, recipe(ipc=1))
    (sweep / ".submitit").mkdir()
    (sweep / "1").mkdir()
    assert main([str(sweep)]) == 0
    text = capsys.readouterr().out
    assert f"{sweep / '1'} left out: it holds no run files" in text and ".submitit" not in text
    assert text.count("left out") == 1

    stopped = tmp_path / "stopped"
    for job in ("0", "1", "2"):
        (stopped / job / ".hydra").mkdir(parents=True)  # each stopped before its evaluation
    assert main([str(stopped)]) == 2
    assert capsys.readouterr().err == (
        f"error: no run with a finished evaluation to compare; {stopped / '0'} left out: it has no "
        "evaluation (its log there says why) (and 2 more)\n"
    )


def test_a_swept_added_key_keeps_its_place_in_the_sweeps_order(tmp_path, capsys) -> None:
    """``-m +tag=x,y distill.ipc=1,2``: the columns follow the command (tag first), the ``+`` stripped
    from the swept key (kills keeping ``+tag``, which matched no column and put tag last)."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    task = ["experiment=cpu", "+tag=x,y", "distill.ipc=1,2"]
    planned_sweep(sweep, task)
    for job, (tag, ipc) in enumerate((("x", 1), ("x", 2), ("y", 1), ("y", 2))):
        make_run(sweep / str(job), job, recipe(ipc=ipc))
        hydra_record(sweep / str(job), {}, ["experiment=cpu", f"+tag={tag}", f"distill.ipc={ipc}"])
    assert main([str(sweep)]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:3] == ["run", "tag", "distill.ipc"]
    assert [line[1:3] for line in lines] == [["x", "1"], ["x", "2"], ["y", "1"], ["y", "2"]]


@pytest.mark.parametrize(
    "column", ["vs_random_patient_hm_diff", "patient_hm_ci_low", "patient_auc_ci_high", "patient_hm_std"]
)
def test_text_in_any_number_column_is_refused_naming_its_line_and_column(tmp_path, capsys, column) -> None:
    """Differences, interval ends and spreads are number columns too (kills dropping _diff, or _ci_low and
    _ci_high, from the suffixes checked); a text there read as no number."""
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    table = make_run(tmp_path / "b", 1, recipe(ipc=2))
    table[column] = table.get(column, 0.1)
    table[column] = table[column].astype(object)
    table.loc[1, column] = "about 0.5"
    path = tmp_path / "b" / "eval" / "results.csv"
    table.to_csv(path, index=False)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: line 3, column {column}: 'about 0.5' is not a number; evaluate the run again to "
        "rewrite it\n"
    )


def test_a_table_without_architectures_or_a_row_with_an_empty_part_is_refused(tmp_path, capsys) -> None:
    """A table without the architecture column is named, not a KeyError (kills dropping that check);
    ``--row`` with an empty part (``soft/``) is refused as of the wrong shape (kills dropping all(parts))."""
    make_run(tmp_path / "a", 0, recipe(ipc=1))
    table = make_run(tmp_path / "b", 1, recipe(ipc=2))
    args = [str(tmp_path / "a"), str(tmp_path / "b")]
    for row in ("soft/", "/replay", "soft//convnet"):
        assert main([*args, "--row", row]) == 2
        assert capsys.readouterr().err.startswith(
            f"error: --row {row!r}: give method/schedule or method/schedule/architecture, e.g. soft/replay"
        )
    path = tmp_path / "b" / "eval" / "results.csv"
    table.drop(columns=["architecture"]).to_csv(path, index=False)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: {path}: it has no column architecture; it is not a results table the evaluate stage wrote; "
        "evaluate the run again to rewrite it\n"
    )
    assert "Traceback" not in captured.err


def test_an_override_below_a_shown_key_and_a_swept_key_one_choice_fixes_in_the_finished_jobs(
    tmp_path, capsys
) -> None:
    """``distill.texture_matching={steps: 400}`` against ``{steps: 200}`` is shown once, by the key that
    differs (kills dropping _covered); a key the sweep swept stays a column though the jobs that finished
    have one value per group choice (kills dropping ``k in order``)."""
    for name, steps in (("a", 400), ("b", 200)):
        cfg = recipe(ipc=1)
        cfg["distill"]["texture_matching"] = {"steps": steps}
        make_run(tmp_path / name, ord(name), cfg)
        hydra_record(tmp_path / name, {}, ["experiment=cpu", f"distill.texture_matching={{steps:{steps}}}"])
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "distill.texture_matching.steps"] and "distill.texture_matching" not in head
    assert [line[1] for line in lines] == ["400", "200"]

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    task = ["experiment=cpu", "model=convnet,resnet18", "model.width=8,16"]
    planned_sweep(sweep, task)
    for job, group, width in ((0, "convnet", 8), (3, "resnet18", 16)):  # jobs 1 and 2 never started
        cfg = recipe(ipc=1)
        cfg["model"] = {"_target_": f"gastrodistill.models.{group}", "width": width}
        make_run(sweep / str(job), job, cfg)
        hydra_record(sweep / str(job), {"model": group})
    assert main([str(sweep)]) == 0
    text = capsys.readouterr().out
    head, *lines = table_lines(text)
    assert head[:3] == ["run", "model", "model.width"]
    assert [line[1:3] for line in lines] == [["convnet", "8"], ["resnet18", "16"]]
    assert "jobs 1 (model=convnet model.width=16), 2 (model=resnet18 model.width=8) never started" in text


def test_a_mapping_reads_as_an_override_writes_it_and_the_sets_recipe_wins_over_the_command(
    tmp_path, capsys
) -> None:
    """A key that is empty in one run (``{}``, a leaf) and a mapping in the other reads ``{flip: True, p:
    0.5}`` there (kills Python's dict text); a
    resumed run's sets (6 outer steps) speak for it though its command said ``distill.outer_steps=3``
    (kills taking any override over the config)."""
    make_run(tmp_path / "a", 0, {**recipe(ipc=1), "distill": {"ipc": 1, "augment": {}}})
    make_run(tmp_path / "b", 1, {**recipe(ipc=1), "distill": {"ipc": 1, "augment": {"p": 0.5, "flip": True}}})
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:4] == ["run", "distill.augment", "distill.augment.flip", "distill.augment.p"]
    assert [line[1:4] for line in lines] == [["{}", "–", "–"], ["{flip: True, p: 0.5}", "True", "0.5"]]

    for name, steps in (("c", 6), ("d", 3)):
        make_run(tmp_path / name, ord(name), recipe(ipc=1))
        give_sets(tmp_path / name, {"soft": steps, "hard": steps})
        hydra_record(tmp_path / name, {}, ["experiment=cpu", "distill.outer_steps=3"])
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    head, *lines = table_lines(capsys.readouterr().out)
    assert head[:2] == ["run", "distill.outer_steps"] and [line[1] for line in lines] == ["6", "3"]


def test_a_cross_architecture_column_of_ones_and_zeros_marks_the_other_networks_rows(
    tmp_path, capsys
) -> None:
    """``cross_architecture`` written 1/0 (not True/False): the lenet row listed first is still not the
    distillation's own (kills accepting only 'true')."""
    for name, seed in (("a", 0), ("b", 1)):
        table = make_run(tmp_path / name, seed, recipe(ipc=seed + 1))
        table = table.sort_values("cross_architecture", ascending=False, kind="stable")
        table.assign(cross_architecture=table.cross_architecture.astype(int)).to_csv(
            tmp_path / name / "eval" / "results.csv", index=False
        )
    assert "soft,replay,lenet,1," in (tmp_path / "a" / "eval" / "results.csv").read_text()
    a = pd.read_csv(tmp_path / "a" / "eval" / "results.csv")
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--row", "soft/replay"]) == 0
    head, first, _ = table_lines(capsys.readouterr().out)
    soft = a[(a.method == "soft") & (a.architecture == "convnet")].iloc[0]
    full = a[a.method == "full"].iloc[0]
    assert first[2] == (
        f"{soft.patient_hm_mean:.3f} [{soft.patient_hm_ci_low:.3f}, {soft.patient_hm_ci_high:.3f}]"
    )
    assert first[3] == f"{soft.patient_hm_mean / full.patient_hm_mean:.3f}"


def test_the_derived_columns_follow_the_first_distilled_row_given(tmp_path, capsys) -> None:
    """``--row full/real --row hard/replay``: the ratio and differences are hard replay's (kills taking
    the first row given, a baseline), and hard has no difference to itself (kills showing 'hard − hard')."""
    a = make_run(tmp_path / "a", 0, recipe(ipc=1))
    make_run(tmp_path / "b", 1, recipe(ipc=2))
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--row", "full/real", "--row", "hard/replay"]) == 0
    head, first, _ = table_lines(capsys.readouterr().out)
    assert head == ["run", "distill.ipc", "full real [95% CI]", "hard replay [95% CI]",
                    "hard replay / full real", "hard replay − random [95% CI]"]  # fmt: skip
    hard, full = a[a.method == "hard"].iloc[0], a[a.method == "full"].iloc[0]
    assert first[4] == f"{hard.patient_hm_mean / full.patient_hm_mean:.3f}"
    d, lo, hi = (hard[f"vs_random_patient_hm_{s}"] for s in ("diff", "ci_low", "ci_high"))
    assert first[5] == f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def test_numbers_a_run_lacks_read_as_dashes_and_a_missing_interval_is_left_out(tmp_path, capsys) -> None:
    """Run b has no hard row, no differences to hard and no intervals for soft replay: its cells read –
    or the mean alone, the column kept for run a (kills showing a derived column only when every run has
    it, and printing [nan, nan]); the default rows a run lacks get no note (kills the note without --row)."""
    a = make_run(tmp_path / "a", 0, recipe(ipc=1))
    b = make_run(tmp_path / "b", 1, recipe(ipc=2))
    gone = [c for c in b if c.startswith("vs_hard") or c.startswith("vs_random_patient_hm_ci")]
    b = b[b.method != "hard"].drop(columns=[*gone, "patient_hm_ci_low", "patient_hm_ci_high"])
    b.to_csv(tmp_path / "b" / "eval" / "results.csv", index=False)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    head, first, second = table_lines(text)
    assert head[-1] == "soft replay − hard [95% CI]"
    soft_a = a[(a.method == "soft") & ~a.cross_architecture].iloc[0]
    d, lo, hi = (soft_a[f"vs_hard_patient_hm_{s}"] for s in ("diff", "ci_low", "ci_high"))
    assert first[-1] == f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    soft_b = b[(b.method == "soft") & (b.architecture == "convnet")].iloc[0]
    assert second[2:4] == [f"{soft_b.patient_hm_mean:.3f}", "–"]  # soft replay alone, no hard row
    assert second[-2:] == [f"{soft_b.vs_random_patient_hm_diff:+.3f}", "–"]
    assert "No run holds" not in text
    assert main([str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "No run holds" not in text
    assert table_lines(text)[0] == ["run", "soft replay [95% CI]", "full real [95% CI]",
                                    "random standard [95% CI]", "soft replay / full real",
                                    "soft replay − random [95% CI]"]  # fmt: skip


def test_a_run_without_its_config_gets_one_note_and_outputs_refuse_a_folder(tmp_path, capsys) -> None:
    """A run whose config.yaml is gone and whose set moved away: only the config's note (kills noting the
    unread set too); ``--out`` naming a folder is refused as no file path (kills dropping is_dir), and a
    ``.PNG`` plot is a PNG (kills the case-sensitive suffix)."""
    for name in ("c", "d"):
        make_run(tmp_path / name, ord(name), recipe(ipc=1))
        give_sets(tmp_path / name, {"soft": 3, "hard": 3})
    (tmp_path / "c" / "eval" / "config.yaml").unlink()
    shutil.move(tmp_path / "c" / "distill" / "soft", tmp_path / "soft_elsewhere")
    args = [str(tmp_path / "c"), str(tmp_path / "d")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "c: its evaluation folder has no readable config.yaml; its settings are unknown." in text
    assert "could not be read" not in text
    (tmp_path / "out").mkdir()
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {tmp_path / 'out'}: give a file path in an existing folder\n"
    )
    assert main([*args, "--plot", str(tmp_path / "c.PNG")]) == 0
    assert (tmp_path / "c.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
