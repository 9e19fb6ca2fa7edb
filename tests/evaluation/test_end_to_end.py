"""The whole study (generate, patches, distill soft/hard, evaluate, audit, artifact) on tiny data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gastrodistill.anonymity.verdict import NOT_AUDITED
from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.check_experiment import main as check_main
from gastrodistill.cli.paired_over_runs import main as pool_main

REPO = Path(CONF_DIR).parent


def test_reproduce_tiny_end_to_end(compose_cfg, tmp_path, capsys):
    from gastrodistill.cli.reproduce import run
    from gastrodistill.sharing.artifact import load_artifact

    cfg = compose_cfg(["experiment=tiny"])
    paths = run(cfg)
    out = Path(cfg.paths.output_dir)
    printed = capsys.readouterr().out
    assert str(out / "eval" / "results.md") in printed
    total = json.loads((out / "timings.json").read_text())["total"]  # what the closing line counts
    assert f"stages: {total:.0f} s in all (start-up and the checks before them not counted)" in printed

    table = pd.read_csv(out / "eval" / "results.csv")
    assert {"soft", "hard", "full", "random", "mean"} <= set(table.method)
    assert set(table[table.method == "soft"].schedule) == {"replay", "standard"}
    assert table.cross_architecture.any()  # lenet rows beside the distillation ConvNet
    soft = table[(table.method == "soft") & ~table.cross_architecture & (table.schedule == "replay")].iloc[0]
    assert soft.n_images == 2 * 3 * 1  # steps x classes x ipc of the tiny preset
    nets = pd.read_csv(out / "eval" / "networks.csv")
    replayed = nets[nets.job.str.startswith("soft__replay__same__")]
    assert len(replayed) > 0 and soft.patch_accuracy_mean == pytest.approx(replayed.patch_accuracy.mean())
    # the audit's numbers joined the table, the artifact loads and trains nothing from pickles
    assert np.isfinite(soft.audit_mia_loss_auc) and soft.audit_artifact_leaks == 0
    distilled, card = load_artifact(paths["artifact (soft)"])
    assert tuple(distilled.images.shape) == (6, 1, 16, 16)
    assert card["evaluation"]["patient_hm_mean"] == pytest.approx(soft.patient_hm_mean)
    for f in (
        "SUMMARY.md",
        "config.yaml",
        "run_info.json",
        "eval/plots/roc_curves.png",
        "eval/plots/confusion_matrices.png",
        "eval/plots/lr_schedule.png",
        "eval/plots/distilled_soft.png",
        "audit/audit.md",
        "distill/hard/distilled.safetensors",
    ):
        assert (out / f).is_file(), f

    # the summary says the recipe beside the table (tiny preset: 2 steps x 1 epoch, 1 image per class each)
    summary = (out / "SUMMARY.md").read_text()
    assert (
        "- distillation (soft, hard): 2 images per class (ipc 1 x 2 steps); T = 2 inner steps (2 x 1 epochs)"
        in summary
    )
    assert "## Targets (distillation architecture, replay schedule" in summary
    n = cfg.eval.n_networks
    assert f"- evaluation: {n} fresh network{'' if n == 1 else 's'} per row" in summary
    # outputs inside the run folder relative to it (true of a moved copy); the data and the patch store by
    # their config keys: no local folder (the data's often names the site) in a summary read by others
    assert "- distilled set (soft): `distill/soft`" in summary and str(out) not in summary
    assert "- data: `paths.data_root` (config.yaml)" in summary and str(cfg.paths.data_root) not in summary
    store = Path(paths["patch store"])
    assert f"- patch store: `{store.name}` under `data.store_root` (config.yaml)" in summary
    assert str(cfg.paths.store_root) not in summary

    # no patient identifier in anything the run wrote (text files), nor in the artifacts' bytes
    manifest = pd.read_csv(Path(cfg.paths.data_root) / "manifest.csv")
    ids = set(manifest.patient_id.astype(str))
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in {".csv", ".md", ".json", ".yaml", ".txt", ".log"}:
            text = f.read_text(errors="ignore")
            assert not any(pid in text for pid in ids), f
    for f in (out / "artifacts").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(pid.encode() in data for pid in ids), f

    # the recipe checker reads this run: the smoke recipe passes, an impossible range fails
    assert check_main([str(REPO / "experiments" / "tiny.yaml"), "--run-dir", str(out)]) == 0
    bad = tmp_path / "bad.yaml"
    shutil.copy(REPO / "experiments" / "tiny.yaml", bad)
    bad.write_text(bad.read_text().replace("range: [0.0, 1.0]", "range: [2.0, 3.0]", 1))
    assert check_main([str(bad), "--run-dir", str(out)]) == 1
    assert "OUTSIDE" in capsys.readouterr().out

    # the pooled paired view reads this run's records: pooled with itself it gives the table's own difference
    from gastrodistill.evaluation.over_runs import load_run, pool_runs

    run, _ = load_run(out)
    pooled = pool_runs([run, run], seed=0, n_boot=20)
    soft_random = next(
        d
        for d in pooled
        if d.row == ("soft", "replay", "convnet") and d.partner[0] == "random" and d.kind == "patient_hm"
    )
    assert soft_random.per_run == pytest.approx([soft.vs_random_patient_hm_diff] * 2)
    # ... refuses a run of another recipe (before: pooled without a word), unless told to pool it anyway
    other_recipe = tmp_path / "other_recipe"
    shutil.copytree(out / "eval", other_recipe / "eval")
    config = yaml.safe_load((other_recipe / "eval" / "config.yaml").read_text())
    config["distill"]["outer_steps"] += 1
    config["eval"]["processes"] = 7  # how a run was spread over processes is no recipe
    (other_recipe / "eval" / "config.yaml").write_text(yaml.safe_dump(config))
    assert pool_main(["--run-dir", str(out), "--run-dir", str(other_recipe)]) == 2
    err = capsys.readouterr().err
    assert "the runs were made with different recipes (distill.outer_steps);" in err
    assert (
        pool_main(["--run-dir", str(out), "--run-dir", str(other_recipe), "--allow-recipe-differences"]) == 2
    )
    assert "holds the same records" in capsys.readouterr().err  # past the recipe check: a copy of one run
    # ... and the command refuses a copy of the run as a second run
    twin = tmp_path / "twin"
    shutil.copytree(out / "eval", twin / "eval")
    assert pool_main(["--run-dir", str(out), "--run-dir", str(twin)]) == 2
    assert "holds the same records" in capsys.readouterr().err

    # an evaluate-only re-run with another recipe is refused before the run's record is rewritten
    from gastrodistill.cli.reproduce import run as reproduce
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    record = {f: (out / f).read_bytes() for f in ("config.yaml", "run_info.json", "SUMMARY.md")}
    epochs = int(cfg.eval.standard.epochs)
    other = compose_cfg(
        [
            "experiment=tiny",
            "stages=[evaluate]",
            f"eval.standard.epochs={epochs + 1}",
            f"paths.output_dir={out}",
        ]
    )
    with pytest.raises(EvaluationConfigError, match=f"eval.standard.epochs was {epochs}, now {epochs + 1}"):
        reproduce(other)
    assert {f: (out / f).read_bytes() for f in record} == record

    # an accepted evaluate-only re-run keeps the audit's numbers of these very sets in the table it rewrites
    table = pd.read_csv(out / "eval" / "results.csv")
    same = compose_cfg(["experiment=tiny", "stages=[evaluate]", f"paths.output_dir={out}"])
    reproduce(same)
    pd.testing.assert_frame_equal(pd.read_csv(out / "eval" / "results.csv"), table)
    assert "Anonymity audit" in (out / "eval" / "results.md").read_text()
    assert "- anonymity audit: `audit/audit.md`" in (out / "SUMMARY.md").read_text()
    # ... and an artifact stage after it publishes the audit's verdict, as the first run's did
    card = json.loads((out / "artifacts" / "soft" / "card.json").read_text())
    reproduce(compose_cfg(["experiment=tiny", "stages=[evaluate,artifact]", f"paths.output_dir={out}"]))
    again = json.loads((out / "artifacts" / "soft" / "card.json").read_text())
    assert again["anonymity_verdict"] == card["anonymity_verdict"] != NOT_AUDITED
    assert again["anonymity"] == card["anonymity"]
    # an artifact stage alone publishes the folder's evaluation and audit of these sets too (before: its cards
    # said "not audited" and carried no numbers, though eval/ and audit/ held them)
    reproduce(compose_cfg(["experiment=tiny", "stages=[artifact]", f"paths.output_dir={out}"]))
    alone = json.loads((out / "artifacts" / "soft" / "card.json").read_text())
    assert alone["anonymity_verdict"] == card["anonymity_verdict"] and alone["anonymity"] == card["anonymity"]
    assert card["evaluation"] and alone["evaluation"] == pytest.approx(
        card["evaluation"], rel=1e-9
    )  # csv: 10 digits
    assert "holds no current" not in capsys.readouterr().out
    # the table lists the records it was computed from, by content (so a copy without file times is current)
    import hashlib

    listed = json.loads((out / "eval" / "results.sources.json").read_text())["records"]
    assert listed == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "eval" / "records").glob("*.npz")
    }
    # ... but not an evaluation that is no longer current (a record the table was not computed from: a
    # network trained again after the table), which it names
    from gastrodistill.evaluation.report import load_record, save_record

    record = load_record(next((out / "eval" / "records").glob("soft__*.npz")))
    record["test_scores"] = record["test_scores"] * 0.5  # the same ranking, other bytes
    save_record(out / "eval", record)
    reproduce(compose_cfg(["experiment=tiny", "stages=[artifact]", f"paths.output_dir={out}"]))
    stale = json.loads((out / "artifacts" / "soft" / "card.json").read_text())
    assert stale["anonymity_verdict"] == card["anonymity_verdict"] and "evaluation" not in stale
    assert "no current evaluation numbers (eval/results.csv; run 'stages=[evaluate,artifact]'" in (
        capsys.readouterr().out
    )
    # ... and an audit alone says that it cannot join such a table (before the review: nothing)
    reproduce(compose_cfg(["experiment=tiny", "stages=[audit]", f"paths.output_dir={out}"]))
    assert "audit: eval/results.csv is not a current evaluation of these sets" in capsys.readouterr().out
    reproduce(compose_cfg(["experiment=tiny", "stages=[evaluate,artifact]", f"paths.output_dir={out}"]))
    # an audit alone joins its numbers to the folder's table of these sets (before: results.csv kept none)
    pd.read_csv(out / "eval" / "results.csv").filter(regex="^(?!audit_)").to_csv(
        out / "eval" / "results.csv", index=False, float_format="%.10g"
    )
    # an audit-only re-run attacks the evaluation's saved network, as the whole run's audit did: the same
    # numbers (before, it trained a network of its own)
    audit_json = out / "audit" / "audit.json"
    first = json.loads(audit_json.read_text())
    reproduce(compose_cfg(["experiment=tiny", "stages=[audit]", f"paths.output_dir={out}"]))
    joined = pd.read_csv(out / "eval" / "results.csv")
    pd.testing.assert_frame_equal(joined, table)
    again = json.loads(audit_json.read_text())
    assert again["reference_sha256"] == first["reference_sha256"]
    assert json.dumps(again["results"], sort_keys=True) == json.dumps(first["results"], sort_keys=True)
    # ... but not an audit of other sets or another patch store; and the audit's `real` row stands for the
    # `full` rows only when the real-data network is the one it attacked (a retrained reference is another)
    original = audit_json.read_text()
    saved = json.loads(original)
    assert set(saved["set_sha256"]) == {"soft", "hard"} and len(saved["reference_sha256"]) == 64
    for key, sub in (("set_sha256", "soft"), ("data_source_hash", None), ("reference_sha256", None)):
        changed = json.loads(original)
        if sub:
            changed[key][sub] = "0" * 64
        else:
            changed[key] = "0" * 16
        audit_json.write_text(json.dumps(changed))
        reproduce(same)
        rewritten = pd.read_csv(out / "eval" / "results.csv")
        if key == "reference_sha256":  # the sets' rows keep their audit, the full rows lose theirs
            assert rewritten[rewritten.method == "soft"].audit_mia_loss_auc.notna().all()
            assert rewritten[rewritten.method == "full"].audit_mia_loss_auc.isna().all()
            assert table[table.method == "full"].audit_mia_loss_auc.notna().all()
        else:
            assert not any(c.startswith("audit_") for c in rewritten.columns), key
    # a list of records that is not a file is refused before the table is rewritten (it was a traceback
    # after results.csv had been written again), naming what to remove
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    listed = out / "eval" / "results.sources.json"
    listed.unlink()
    listed.mkdir()
    before = (out / "eval" / "results.csv").read_bytes()
    with pytest.raises(EvaluationConfigError, match=r"results.sources.json is not a file .*: remove it"):
        reproduce(compose_cfg(["experiment=tiny", "stages=[evaluate]", f"paths.output_dir={out}"]))
    assert (out / "eval" / "results.csv").read_bytes() == before and listed.is_dir()


def test_reproduce_refuses_unknown_or_misordered_stages(compose_cfg):
    from gastrodistill.cli.reproduce import Pipeline, ReproduceConfigError

    with pytest.raises(ReproduceConfigError, match=r"stages \['evaluate', 'distill'\] are out of order"):
        Pipeline(compose_cfg(["experiment=tiny", "stages=[evaluate,distill]"])).run()
    with pytest.raises(ReproduceConfigError, match=r"stages is empty; list some of"):
        Pipeline(compose_cfg(["experiment=tiny", "stages=[]"])).check_values()
    with pytest.raises(ReproduceConfigError, match=r"stages \['train'\] unknown"):
        Pipeline(compose_cfg(["experiment=tiny", "stages=[train]"])).run()
    with pytest.raises(ReproduceConfigError, match="needs distilled sets"):
        Pipeline(compose_cfg(["experiment=tiny", "stages=[audit]"])).run()
    # the evaluation alone in a new folder: refused before the run record is written (before, the
    # evaluation's n_per_class message came after eval/config.yaml), with the ways on
    pipe = Pipeline(compose_cfg(["experiment=tiny", "stages=[evaluate]"]))
    with pytest.raises(ReproduceConfigError, match=r"this run folder \(.*\) holds none") as info:
        pipe.run()
    assert "hydra.run.dir=outputs/tiny/runs/<time>" in str(info.value)
    assert "eval.baselines.n_per_class=N" in str(info.value)
    assert not (pipe.out / "run_info.json").exists() and not (pipe.out / "eval").exists()
    # baselines that need no random subset size run without sets, as before
    Pipeline(
        compose_cfg(["experiment=tiny", "stages=[evaluate]", "eval.baselines.methods=[mean]"])
    ).check_sets_present(["evaluate"])
    # one stage without brackets is that stage, not its letters
    with pytest.raises(ReproduceConfigError, match="stage 'audit' needs distilled sets"):
        Pipeline(compose_cfg(["experiment=tiny", "stages=audit"])).run()
    # a bad eval value stops the study before the distillation (not after minutes of it); the
    # distillation's own output folder is never written
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    cfg = compose_cfg(["experiment=tiny", "stages=[distill,evaluate]", "eval.standard.epochs=0"])
    pipe = Pipeline(cfg)
    with pytest.raises(EvaluationConfigError, match="eval.standard: .*epochs >= 1"):
        pipe.run()
    assert not (pipe.out / "distill").exists()


def test_reproduce_refuses_a_bad_matching_value_before_generating_anything(compose_cfg, tmp_path):
    """distill.distribution_matching is checked before the first stage, even with the matching off:
    no synthetic data, patch store or run folder is written."""
    from gastrodistill.distillation.errors import DistillConfigError

    cfg = compose_cfg(
        [
            "experiment=tiny",
            f"paths.root_dir={tmp_path}",
            "distill.distribution_matching.steps=0",
            "distill.distribution_matching.lr=0",
        ]
    )
    from gastrodistill.cli.reproduce import Pipeline

    pipe = Pipeline(cfg)
    with pytest.raises(DistillConfigError, match=r"distill.distribution_matching.lr must be > 0, got 0.0"):
        pipe.run()
    assert not pipe.out.exists()
    assert not any(tmp_path.rglob("*.png")) and not any(tmp_path.rglob("*.npy"))


def test_reproduce_refuses_an_image_smaller_than_a_patch_before_generating(compose_cfg, tmp_path):
    """synthetic.image_size below data.patch_size (and a bad overlap) stop the study before the collection
    is written; the patches stage had refused every image after generating them all."""
    from gastrodistill.cli.reproduce import Pipeline, ReproduceConfigError
    from gastrodistill.data.errors import GeometryError

    for overrides, error, message in (
        (["synthetic.image_size=200"], ReproduceConfigError, r"synthetic.image_size=200 px is smaller than "),
        (
            ["data.overlap=299"],
            GeometryError,
            r"data.overlap=299 must be >= 0 and smaller than data.patch_size",
        ),
    ):
        pipe = Pipeline(compose_cfg(["experiment=tiny", f"paths.root_dir={tmp_path}", *overrides]))
        with pytest.raises(error, match=message):
            pipe.run()
        assert not pipe.out.exists() and not any(tmp_path.rglob("*.png"))
    fits = compose_cfg(["experiment=tiny", "synthetic.image_size=299", "stages=[generate]"])
    Pipeline(fits).check_patch_fits(299)  # an image of exactly one patch is tiled


def test_a_run_folder_keeps_its_sets_and_its_cards_describe_them(compose_cfg, capsys):
    """A fresh distillation into a run folder that holds finished sets is refused before anything is
    rewritten; a resume continues them, and the summary then leaves out the table of the sets it replaced
    and says which stages to run again. Each artifact's card gives the recipe of its own set: its label
    mode (one config distils both) and the settings it was distilled with, not the current command's."""
    from gastrodistill.cli.reproduce import run as reproduce
    from gastrodistill.distillation.errors import DistillConfigError

    base = ["experiment=tiny", "distill.ckpt_every=3", "stages=[generate,patches,distill,evaluate,artifact]"]
    cfg = compose_cfg(base)
    reproduce(cfg)
    out = Path(cfg.paths.output_dir)
    cards = {m: json.loads((out / "artifacts" / m / "card.json").read_text()) for m in ("soft", "hard")}
    assert {m: c["training_recipe"]["distill"]["mode"] for m, c in cards.items()} == {
        "soft": "soft",
        "hard": "hard",
    }
    assert cards["soft"]["training_recipe"]["distill"]["outer_steps"] == 3
    capsys.readouterr()

    again = ["experiment=tiny", "stages=[distill]", f"paths.output_dir={out}"]
    files = ("config.yaml", "run_info.json", "SUMMARY.md", "distill/soft/distilled.safetensors")
    before = {f: (out / f).read_bytes() for f in files}
    with pytest.raises(DistillConfigError, match="already holds a finished soft-label set") as info:
        reproduce(compose_cfg([*again, "distill.outer_steps=4"]))
    assert f"distill.resume={out / 'distill'}" in str(info.value) and "\n" not in str(info.value)
    assert {f: (out / f).read_bytes() for f in files} == before

    reproduce(compose_cfg([*again, "distill.outer_steps=4", f"distill.resume={out / 'distill'}"]))
    assert (out / "distill" / "soft" / "distilled.safetensors").read_bytes() != before[files[-1]]
    summary = (out / "SUMMARY.md").read_text()
    printed = capsys.readouterr().out
    for text in (summary, printed):
        assert "run 'stages=[evaluate,artifact]' here" in text  # the outputs the folder holds (no audit/)
        assert "| soft |" not in text  # the earlier sets' table is not shown as this run's
    # each run in the folder kept the record of the one before: the first run's command is on record
    first = yaml.safe_load((out / "history" / "1" / "config.yaml").read_text())
    assert first["stages"] == ["generate", "patches", "distill", "evaluate", "artifact"]
    assert first["distill"]["outer_steps"] == 3 and (out / "history" / "1" / "SUMMARY.md").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["distill"]["outer_steps"] == 4
    assert "earlier run record" in summary and "history/1/" in summary
    # the evaluation's networks of the replaced sets went to the history with the record of the run that
    # trained them; the baselines' networks, which do not depend on the sets, stay
    retired = out / "history" / "1" / "eval" / "records"
    assert "earlier version of the hard and soft set(s); they are moved to history/1/eval/records/" in summary
    assert {p.name.split("__")[0] for p in retired.glob("*.npz")} == {"soft", "hard"}
    kept = {p.name.split("__")[0] for p in (out / "eval" / "records").glob("*.npz")}
    assert kept and not kept & {"soft", "hard"}
    # the same resume again (a scheduler's retry: the same steps from the step-3 checkpoint, the same sets)
    # still names the outputs the first one made stale (before the review: nothing, and the 3-step table
    # was embedded as current), and retires nothing more
    reproduce(compose_cfg([*again, "distill.outer_steps=4", f"distill.resume={out / 'distill'}"]))
    summary = (out / "SUMMARY.md").read_text()
    assert "run 'stages=[evaluate,artifact]' here" in summary and "| soft |" not in summary
    assert "are moved to" not in summary
    # the artifact stage alone, with the command's default of 3 outer steps: the card says the set's 4
    reproduce(compose_cfg(["experiment=tiny", "stages=[artifact]", f"paths.output_dir={out}"]))
    card = json.loads((out / "artifacts" / "hard" / "card.json").read_text())
    assert card["training_recipe"]["distill"]["outer_steps"] == 4
    assert card["training_recipe"]["distill"]["mode"] == "hard"
    # and so does SUMMARY.md's recipe (a tester's finding: it gave the command's 3 for the sets' 4)
    summary = (out / "SUMMARY.md").read_text()
    recipe = summary.split("## Recipe")[1].split("## Outputs")[0]
    assert "; 4 outer steps, real batch" in recipe and "other settings than" not in recipe
    # the evaluation is still the 3-step sets': named as stale, its table not shown as this folder's (a
    # tester: a run of later stages alone embedded it, after a note that the cards publish no numbers)
    assert "eval/ in this folder do not describe the distilled sets" in summary and "| soft |" not in summary
    assert "run 'stages=[evaluate]' here" in summary
    capsys.readouterr()
    # a resume that evaluates again shows its own new table, without removing anything first (before, its
    # evaluation refused the earlier sets' networks after the distillation); only the artifacts are stale
    import shutil as _shutil

    resume = f"distill.resume={out / 'distill'}"
    # ... but with another evaluation recipe, which the baselines' networks were not trained with, it is
    # refused before distilling (before the review: after the whole distillation)
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    soft_file = out / "distill" / "soft" / "distilled.safetensors"
    soft_bytes = soft_file.read_bytes()
    epochs = int(cfg.eval.standard.epochs)
    resume_and_evaluate = [
        *again[:1],
        "stages=[distill,evaluate]",
        f"paths.output_dir={out}",
        resume,
        "distill.outer_steps=5",
    ]
    with pytest.raises(EvaluationConfigError, match=f"eval.standard.epochs was {epochs}, now {epochs + 1}"):
        reproduce(compose_cfg([*resume_and_evaluate, f"eval.standard.epochs={epochs + 1}"]))
    assert soft_file.read_bytes() == soft_bytes
    capsys.readouterr()
    # given with another start setting, which the resumed sets do not have (their checkpoints' is kept): the
    # study's config.yaml and the evaluation's name the sets' lr_init, as their own records do (a breaker
    # found the command's there)
    lr_init = yaml.safe_load((out / "distill" / "soft" / "config.yaml").read_text())["distill"]["lr_init"]
    reproduce(compose_cfg([*resume_and_evaluate, f"distill.lr_init={lr_init * 3}"]))
    printed = capsys.readouterr().out
    assert "| soft |" in printed and "run 'stages=[artifact]' here" in printed and "eval/ and" not in printed
    note = "the distilled sets were started with other distill.lr_init than this command gives"
    assert note in printed and note in (out / "SUMMARY.md").read_text()
    for record in (out, out / "eval", out / "distill" / "soft", out / "distill" / "hard"):
        assert yaml.safe_load((record / "config.yaml").read_text())["distill"]["lr_init"] == lr_init, record
    # ... and so does a later command that only evaluates the sets (before: its records gave its own value)
    later = ["experiment=tiny", "stages=[evaluate]", f"paths.output_dir={out}", "distill.outer_steps=5"]
    reproduce(compose_cfg([*later, f"distill.lr_init={lr_init * 3}"]))
    assert note in capsys.readouterr().out
    for record in (out, out / "eval"):
        assert yaml.safe_load((record / "config.yaml").read_text())["distill"]["lr_init"] == lr_init, record
    # a resume that leaves the sets as they were (the same steps again from the step-3 checkpoint, seeded
    # alike; or no step left) retires nothing, and names as stale only what is: the artifacts of 4 steps
    records = sorted(p.name for p in (out / "eval" / "records").iterdir())
    reproduce(compose_cfg([*again, resume, "distill.outer_steps=5", f"distill.lr_init={lr_init * 3}"]))
    printed = capsys.readouterr().out
    assert note in printed  # a resume that only distils records the sets' start too
    assert yaml.safe_load((out / "config.yaml").read_text())["distill"]["lr_init"] == lr_init
    assert "resuming the soft-label distillation" in printed and "run 'stages=[artifact]' here" in printed
    assert "eval/ and" not in printed and "| soft |" in printed
    assert (
        "are moved to" not in printed
        and sorted(p.name for p in (out / "eval" / "records").iterdir()) == records
    )
    # a network trained on an earlier version of a set that this command did not change (a resume
    # interrupted after the soft mode, continued later) is retired too: its settings name the earlier set
    folder = out / "eval" / "records"
    key = next(p.name.removesuffix(".npz") for p in folder.glob("soft__*.npz"))
    earlier = key.rsplit("__", 1)[0] + "__99"
    _shutil.copy(folder / f"{key}.npz", folder / f"{earlier}.npz")
    settings = json.loads((folder / f"{key}.settings.json").read_text())
    settings["distilled set soft"] = "0" * 64
    (folder / f"{earlier}.settings.json").write_text(json.dumps(settings))
    reproduce(compose_cfg([*again, resume, "distill.outer_steps=5"]))
    assert "1 network(s) of eval/records/ were trained on an earlier version of the soft set(s)" in (
        capsys.readouterr().out
    )
    assert sorted(p.name for p in folder.iterdir()) == records
    # soft finished and its checkpoints gone, hard to be continued from its own checkpoint file: the soft
    # set is kept with a note (before, refused as a fresh distillation into a finished set)
    _shutil.rmtree(out / "distill" / "soft" / "checkpoints")
    soft_before = (out / "distill" / "soft" / "distilled.safetensors").read_bytes()
    hard_ckpt = out / "distill" / "hard" / "checkpoints" / "last.ckpt"
    reproduce(compose_cfg([*again, f"distill.resume={hard_ckpt}", "distill.outer_steps=6"]))
    printed = capsys.readouterr().out
    assert "the soft-label set in this folder is finished and distill.resume names no checkpoint" in printed
    assert (out / "distill" / "soft" / "distilled.safetensors").read_bytes() == soft_before
    assert json.loads((out / "distill" / "hard" / "summary.json").read_text())["outer_steps"] == 6


def test_an_experiment_name_holding_a_patient_id_is_refused_before_any_stage_logs(
    compose_cfg, tmp_path, monkeypatch, capsys
):
    """experiment_name names the run folder, the loggers' runs and every card: once the data can be read,
    a name holding one of its patient ids stops the study before the distillation logs anything (before,
    only the artifact stage refused it, after every other stage had logged it). With the data on disk it
    is refused before the patch store is built, by ``reproduce`` and by ``distill`` (both built a whole
    store first: a newcomer's finding)."""
    from _cli_runner import run_main

    from gastrodistill.cli import distill
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.sharing.card import CardError

    cfg = compose_cfg(["experiment=tiny", "stages=[generate,patches]"])
    Pipeline(cfg).run()
    pid = str(pd.read_csv(Path(cfg.paths.data_root) / "manifest.csv").patient_id.iloc[0])
    stores = Path(cfg.data.store_root)
    built = sorted(p.name for p in stores.iterdir())
    new_store = "data.storage_size=12"  # a store not built yet
    pipe = Pipeline(
        compose_cfg(["experiment=tiny", f"experiment_name=site_{pid}", "stages=[patches,distill]", new_store])
    )
    with pytest.raises(CardError) as info:
        pipe.run()
    text = str(info.value)
    assert (
        text.startswith("experiment_name holds a private string of the data (patient_id)") and pid not in text
    )
    assert not (pipe.out / "distill").exists() and not (pipe.out / "logs").exists()
    assert sorted(p.name for p in stores.iterdir()) == built  # no store was begun
    capsys.readouterr()
    argv = ["cmd", "experiment=tiny", f"paths.root_dir={tmp_path}", "logger=csv", new_store]
    code, text = run_main(
        distill.main,
        [*argv, f"experiment_name=site_{pid}", f"hydra.run.dir={tmp_path / 'run'}"],
        monkeypatch,
        capsys,
    )
    assert code == 1 and "Traceback" not in text, text
    assert "experiment_name holds a private string of the data (patient_id)" in text and pid not in text
    assert sorted(p.name for p in stores.iterdir()) == built and not (tmp_path / "run").exists()
    Pipeline(compose_cfg(["experiment=tiny", "experiment_name=site_a", "stages=[patches]"])).run()
    # the standalone distillation refuses it too, before its loggers start (and before any outer step)
    import hydra

    from gastrodistill.distillation.run import run_distillation

    named = compose_cfg(["experiment=tiny", f"experiment_name=site_{pid}"])
    with pytest.raises(CardError, match=r"experiment_name holds a private string of the data \(patient_id\)"):
        run_distillation(named, hydra.utils.instantiate(named.data), Path(named.paths.output_dir) / "alone")
    assert not (Path(named.paths.output_dir) / "alone").exists() and not (pipe.out / "logs").exists()


def test_a_wandb_project_or_tag_holding_a_patient_id_or_a_path_is_refused_before_any_stage_logs(compose_cfg):
    """The W&B run's project, group, name and tags name it on the W&B server like experiment_name does: a
    patient id or a path there stops the study before any logger starts (they reached the W&B run)."""
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.sharing.card import CardError
    from gastrodistill.sharing.publish import check_logged_names_in_data

    cfg = compose_cfg(["experiment=tiny", "stages=[generate,patches]"])
    Pipeline(cfg).run()
    pid = str(pd.read_csv(Path(cfg.paths.data_root) / "manifest.csv").patient_id.iloc[0])
    wandb = ["experiment=tiny", "logger=default", "stages=[patches,distill]"]
    for override, message in (
        (
            f"logger.wandb.tags=[ok,site_{pid}]",
            "logger.wandb.tags[1] holds a private string of the data (patient_id)",
        ),
        (
            f"logger.wandb.project=proj_{pid}",
            "logger.wandb.project holds a private string of the data (patient_id)",
        ),
        ("logger.wandb.project=/home/jane/x", "logger.wandb.project: the value contains a path separator"),
        (f"logger.wandb.name=lr_{pid}", "logger.wandb.name holds a private string of the data (patient_id)"),
        (f"logger.wandb.tags=[{'t' * 65}]", "logger.wandb.tags[0] is 65 characters long"),
        # the W&B group is experiment_name by default: named as experiment_name, in distill-only runs too
        ("experiment_name=ablation/lr", "experiment_name='ablation/lr' contains a path separator"),
    ):
        pipe = Pipeline(compose_cfg([*wandb, override]))
        with pytest.raises(CardError) as info:
            pipe.run()
        assert str(info.value).startswith(message) and pid not in str(info.value), (override, info.value)
        assert not (pipe.out / "distill").exists() and not (pipe.out / "logs").exists()
    fine = compose_cfg(
        [
            *wandb,
            "logger.wandb.tags=[site_a,lr-0.01]",
            "logger.wandb.project=study",
            "logger.wandb.name=lr_0.03",
        ]
    )
    check_logged_names_in_data(fine, Pipeline(fine).datamodule())  # ordinary names pass


def test_the_evaluate_and_audit_commands_refuse_a_patient_id_as_experiment_name(
    compose_cfg, tmp_path, monkeypatch, capsys
):
    from _cli_runner import run_main

    from gastrodistill.cli import audit, evaluate
    from gastrodistill.cli.reproduce import Pipeline

    cfg = compose_cfg(["experiment=tiny", "stages=[generate,patches,distill]"])
    Pipeline(cfg).run()
    capsys.readouterr()  # the set-up's output (and any earlier test's stale log handlers' complaints)
    soft = Path(cfg.paths.output_dir) / "distill" / "soft"
    pid = str(pd.read_csv(Path(cfg.paths.data_root) / "manifest.csv").patient_id.iloc[0])
    common = ["experiment=tiny", f"paths.root_dir={tmp_path}", "logger=csv", f"experiment_name=site_{pid}"]
    for main, extra in (
        (evaluate.main, f"eval.distilled_dirs={{soft: {soft}}}"),
        (audit.main, f"audit.sets={{soft: {soft}}}"),
    ):
        argv = ["cmd", *common, extra, f"hydra.run.dir={tmp_path / 'run'}"]
        code, text = run_main(main, argv, monkeypatch, capsys)
        assert code == 1 and "Traceback" not in text, text
        assert "experiment_name holds a private string of the data (patient_id)" in text, text
        assert pid not in text and not (tmp_path / "run").exists()


def test_a_re_run_stopped_before_its_stages_finish_leaves_the_folders_record_as_it_was(
    compose_cfg, monkeypatch
):
    """An audit re-run with other settings, stopped (Ctrl-C) in the audit stage, had left its own settings
    in config.yaml, run_info.json and audit/config.yaml beside the earlier audit.json, table and summary.
    The stage's record is now written with its outputs, and reproduce puts its earlier record back."""
    import gastrodistill.anonymity.audit as audit_module
    from gastrodistill.cli.reproduce import Pipeline

    cfg = compose_cfg(["experiment=tiny"])
    Pipeline(cfg).run()
    out = Path(cfg.paths.output_dir)
    files = ("config.yaml", "run_info.json", "SUMMARY.md", "audit/config.yaml", "audit/run_info.json")
    before = {f: (out / f).read_bytes() for f in files}

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_module, "informative_selection", stop)
    again = compose_cfg(["experiment=tiny", "stages=[audit,artifact]", "audit.membership.shadows=6"])
    with pytest.raises(KeyboardInterrupt):
        Pipeline(again).run()
    assert {f: (out / f).read_bytes() for f in files} == before
    assert not (out / "history").exists()  # the copy of the earlier record went back, not beside it


def test_an_audit_re_run_stopped_as_it_writes_its_files_leaves_the_earlier_audit_as_it_was(
    compose_cfg, monkeypatch
):
    """``reproduce 'stages=[audit]'`` with other settings, stopped as the audit wrote its figures, had
    replaced the earlier audit's ROC figure beside that audit's report and audit.json (which the evaluate
    and artifact stages join). The earlier ``audit/`` now stays whole, byte for byte, as does the run's
    record."""
    from gastrodistill.anonymity import figures
    from gastrodistill.cli.reproduce import Pipeline

    soft_only = ["experiment=tiny", "reproduce.distill_modes=[soft]"]
    Pipeline(compose_cfg([*soft_only, "stages=[generate,patches,distill,audit]"])).run()
    out = Path(compose_cfg(soft_only).paths.output_dir)
    record = ("config.yaml", "run_info.json", "SUMMARY.md", "timings.json")
    before, audit_before = {f: (out / f).read_bytes() for f in record}, _files_below(out / "audit")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "plot_closest_pairs", stop)  # after the first two figures are written
    again = compose_cfg([*soft_only, "stages=[audit]", "audit.membership.shadows=6"])
    with pytest.raises(KeyboardInterrupt):
        Pipeline(again).run()
    assert _files_below(out / "audit") == audit_before
    assert {f: (out / f).read_bytes() for f in record} == before
    assert not (out / "history").exists() and not [p.name for p in out.iterdir() if p.name.startswith(".")]


def _files_below(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_audit_command_stopped_as_it_writes_its_files_leaves_no_run_folder(
    compose_cfg, tmp_path, monkeypatch, capsys
):
    """``gastrodistill-audit`` stopped (Ctrl-C, or SIGTERM: ``timeout``) as it wrote its figures exited 130
    with ``interrupted (Ctrl-C)`` but left ``audit/similarity_histograms.png`` (at another moment also
    ``membership_roc.png``) and no ``audit.md`` in its new run folder (a newcomer's finding); the audit's
    files appear together now, so the folder holds nothing of it and goes, as after any early stop."""
    from _cli_runner import run_main

    from gastrodistill.anonymity import figures
    from gastrodistill.cli import audit
    from gastrodistill.cli.reproduce import Pipeline

    cfg = compose_cfg(
        ["experiment=tiny", "stages=[generate,patches,distill]", "reproduce.distill_modes=[soft]"]
    )
    Pipeline(cfg).run()
    capsys.readouterr()
    soft = Path(cfg.paths.output_dir) / "distill" / "soft"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "plot_closest_pairs", stop)  # after the first two figures are written
    run = tmp_path / "run"
    argv = [
        "gastrodistill-audit",
        "experiment=tiny",
        f"paths.root_dir={tmp_path}",
        "logger=csv",
        f"audit.sets={{soft: {soft}}}",
        f"hydra.run.dir={run}",
    ]
    code, text = run_main(audit.main, argv, monkeypatch, capsys)
    assert code == 130 and text.strip().splitlines()[-1] == "interrupted (Ctrl-C)", text
    assert not run.exists()
