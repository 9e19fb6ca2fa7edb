"""What the audit writes, read back: ``audit_per_image.csv``, ``audit.json``'s content and ``audit.md``
against the numbers they come from, and the three figures from their matplotlib axes (not only that a file
exists)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _anon_data import FAST_AUDIT, make_dm, ncc_matrix, noise_set
from omegaconf import OmegaConf

from gastrodistill.anonymity import figures
from gastrodistill.anonymity.membership import BEST_OF, AttackMetrics, TargetAttack
from gastrodistill.anonymity.report import (
    _roc_for_plot,
    private_string_lines,
    render_report,
    text_region_lines,
    write_outputs,
)
from gastrodistill.anonymity.text_check import PrivateStrings, TextRegionReport
from gastrodistill.anonymity.verdict import anonymity_verdict
from gastrodistill.sharing.artifact import leak_advice

#: A small audit whose controls are flagged.
SMALL = [
    *FAST_AUDIT,
    "audit.controls.noise_std=1e-6",
    "audit.controls.required_noisy=1.0",
    "audit.artifact.write=false",
]
#: An informative training patch; image 2 of ``soft`` is its copy.
COPIED = 5
#: write_outputs' parameters, in order.
OUTPUT_ARGS = (
    "out",
    "cfg",
    "dm",
    "distilled_sets",
    "nearest",
    "text_report",
    "mia",
    "results",
    "leaks",
    "strings",
    "informative",
    "spaces",
    "notes",
)
SPACES = {"ncc": "pixel NCC", "ssim": "pixel SSIM", "feature": "feature cosine"}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """One small audit of a set holding a copy of a training patch and of a noise set: its folder and
    results, the arguments run_audit gave write_outputs (by name) and each figure as drawn (file ->
    Figure)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.anonymity import audit
    from gastrodistill.cli import CONF_DIR

    root = tmp_path_factory.mktemp("audited")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config", [f"paths.root_dir={root}", f"paths.output_dir={root}/out", "logger=csv", *SMALL]
        )
    GlobalHydra.instance().clear()
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    soft = noise_set(dm, steps=2, ipc=1, seed=1)
    with torch.no_grad():
        soft.images[2] = dm.load_split("train", [COPIED])[0][0]
    sets = {"soft": soft, "hard": noise_set(dm, steps=1, ipc=2, seed=2)}
    args, drawn = {}, {}
    write, save = audit.write_outputs, figures.save_figure

    def recording(*a):
        args.update(zip(OUTPUT_ARGS, a, strict=True))
        return write(*a)

    def keep(fig, path, **options):
        drawn[Path(path).name] = fig
        return save(fig, path, **options)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit, "write_outputs", recording)
        mp.setattr(figures, "save_figure", keep)
        torch.set_num_threads(1)
        try:
            results = audit.run_audit(cfg, dm, sets, root / "out" / "audit")
        finally:
            torch.set_num_threads(threads)
    return SimpleNamespace(
        cfg=cfg, dm=dm, sets=sets, results=results, out=root / "out" / "audit", args=args, drawn=drawn
    )


def _render(audited, **changes):
    """audit.md's text for the captured audit with some of render_report's inputs changed."""
    a = {**audited.args, "results": copy.deepcopy(audited.args["results"]), **changes}
    verdicts = {name: anonymity_verdict(a["results"][name]) for name in a["distilled_sets"]}
    return render_report(
        a["cfg"],
        a["nearest"],
        a["text_report"],
        a["results"],
        a["leaks"],
        a["strings"],
        a["informative"],
        verdicts,
        a["spaces"],
        a["notes"],
    )


def _fmt(v) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


def _pct(v) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.0%}"


def _drawing(monkeypatch):
    """Each figure the module draws from now on (file name -> Figure), kept after it is saved and closed."""
    drawn, save = {}, figures.save_figure

    def keep(fig, path, **options):
        drawn[Path(path).name] = fig
        return save(fig, path, **options)

    monkeypatch.setattr(figures, "save_figure", keep)
    return drawn


def test_the_per_image_csv_is_each_images_step_class_target_and_nearest_real_patch(audited) -> None:
    """Per image: its step (the set's own batches), class and probability (its soft target), and per space
    the similarity, train index of the nearest informative real patch (NCC against numpy) and its flag.
    Kills: the step counted per ipc, the class index or class 0's probability written, the flag at >."""
    dm, results = audited.dm, audited.results
    table = pd.read_csv(audited.out / "audit_per_image.csv")
    columns = [c for s in SPACES for c in (s, f"{s}_real_index", f"{s}_flagged")]
    assert list(table.columns) == ["set", "image", "step", "class", "target_prob", *columns]
    x_train = dm._splits["train"][0]
    informative = audited.args["informative"].indices
    for name, ds in audited.sets.items():
        rows = table[table["set"] == name].reset_index(drop=True)
        images = ds.images.detach()
        assert rows["image"].tolist() == list(range(len(images)))
        for i, step in enumerate(rows["step"]):
            assert 0 <= step < ds.steps and any(torch.equal(images[i], x) for x in ds.batch(step)[0]), (
                name,
                i,
            )
        targets = ds.soft_targets().detach().numpy()
        assert rows["class"].tolist() == [dm.class_names[c] for c in targets.argmax(1)]
        np.testing.assert_allclose(rows["target_prob"], targets.max(1), rtol=1e-6)
        ncc = ncc_matrix(images.numpy(), x_train[informative])
        np.testing.assert_allclose(rows["ncc"], ncc.max(1), atol=1e-4)
        assert rows["ncc_real_index"].tolist() == informative[ncc.argmax(1)].tolist()
        for s in SPACES:
            flagged = rows[s] >= results[name][f"{s}_ref_q"]
            assert rows[f"{s}_flagged"].tolist() == flagged.tolist(), (name, s)
    copy_row = table[(table["set"] == "soft") & (table["image"] == 2)]
    assert copy_row["ncc_real_index"].item() == COPIED and copy_row["ncc_flagged"].item()


def test_audit_json_holds_each_sets_verdict_the_sample_sizes_and_what_was_searched(audited) -> None:
    """audit.json and audit.md: each set's verdict from its own row; audit.json: the sample sizes counted
    from the reference (numpy),
    the private strings searched per kind, the real patches searched, that the reference is by patient."""
    payload = json.loads((audited.out / "audit.json").read_text())
    report = (audited.out / "audit.md").read_text().splitlines()
    for name in ("soft", "hard"):
        assert payload["verdicts"][name] == anonymity_verdict(payload["results"][name]), name
        assert f"- **{name}**: {payload['verdicts'][name]}" in report, name  # audit.md's verdict line
    assert payload["verdicts"]["soft"].startswith("flagged: 1 of 6 distilled images")
    assert payload["verdicts"]["hard"].startswith("pass")
    ref = audited.args["nearest"].reference["ncc"]
    duplicate = np.isfinite(ref) & (ref >= 0.99)
    informative = audited.args["informative"]
    sizes = payload["sample_sizes"]
    assert sizes["n_reference"] == len(ref) and sizes["n_reference_duplicates"] == duplicate.sum()
    assert sizes["n_reference_used"] == (np.isfinite(ref) & ~duplicate).sum()
    assert sizes["n_informative"] == len(informative.indices) == payload["n_real_searched"]
    assert (
        sizes["n_train_patches"] == 32
        and sizes["n_excluded_class"] == (audited.dm.labels("train") == 0).sum()
    )
    assert payload["informative"] == informative.describe()
    assert payload["private_strings_checked"] == {"patient_id": 16 + 4 + 16}
    assert payload["private_strings_too_short"] == 0
    assert payload["reference_by_patient"] is True and payload["leaks"] == {"soft": [], "hard": []}


def test_written_outputs_carry_leaks_text_corner_similarities_and_flags_at_the_threshold(audited, tmp_path):
    """write_outputs with two leaks, strings too short to search, a text-corner report, data without
    patients and similarities at a reference of one value: audit.json lists each leak's file and kind (no
    attribute), the strings' counts, the patches searched and that the reference is not by patient; audit.md
    each leak and the advice; the CSV each image's text-corner NCC, its nearest patch in each space and a
    flag for an image exactly at the threshold. Kills: the leak kind kept whole, the CSV's flag at >, one
    space's nearest index in every column, the text column left out, a fixed by-patient flag, the patches
    searched or the short strings' count from elsewhere, the paths not the files written."""
    nearest = audited.args["nearest"]
    at, just_below = 0.5, np.nextafter(0.5, 0)  # a reference of 0.5 only has its threshold at 0.5
    first = np.arange(6) == 0
    sets = {
        name: {
            **{f"{s}_index": np.arange(6) + 10 * k for k, s in enumerate(nearest.spaces)},
            **{s: np.where(first, at if name == "soft" else just_below, 0.1) for s in nearest.spaces},
        }
        for name in nearest.sets
    }
    reference = {s: np.full(len(v), 0.5) for s, v in nearest.reference.items()}
    flat = dataclasses.replace(nearest, sets=sets, reference=reference, n_real=123, by_patient=False)
    strings = PrivateStrings(["Zyxwvut-PID-1", "Hospital Wqxzvb"], ["patient_id", "dicom:InstitutionName"], 3)
    text = TextRegionReport(
        sets={"soft": np.linspace(0.1, 0.6, 6), "hard": np.linspace(0.2, 0.3, 6)},
        ordinary=np.linspace(0, 0.5, 50),
        text=np.array([0.7, 0.8, 0.9]),
        n_text_patches=3,
    )
    results = copy.deepcopy(audited.args["results"])
    for name in ("soft", "hard"):
        results[name].update(text.summary(name))
    leaks = {
        "soft": [
            {"file": "card.json", "kind": "dicom:PatientName"},
            {"file": "grid.png", "kind": "patient_id"},
        ],
        "hard": [],
    }
    a = {
        **audited.args,
        "out": tmp_path,
        "nearest": flat,
        "text_report": text,
        "results": results,
        "leaks": leaks,
        "strings": strings,
    }
    paths, payload = write_outputs(**a)
    assert paths == {
        "similarity": tmp_path / "similarity_histograms.png",
        "membership_roc": tmp_path / "membership_roc.png",
        "closest_pairs": tmp_path / "closest_pairs.png",
    }
    assert all(p.is_file() for p in paths.values())
    assert payload["leaks"] == {
        "soft": [{"file": "card.json", "kind": "dicom"}, {"file": "grid.png", "kind": "patient_id"}],
        "hard": [],
    }
    assert payload["n_real_searched"] == 123 and payload["reference_by_patient"] is False
    assert payload["private_strings_checked"] == {"patient_id": 1, "dicom": 1}
    assert payload["private_strings_too_short"] == 3
    table = pd.read_csv(tmp_path / "audit_per_image.csv")
    for name in ("soft", "hard"):
        rows = table[table["set"] == name]
        np.testing.assert_allclose(rows["text_corner_ncc"], text.sets[name])
        for k, s in enumerate(nearest.spaces):
            assert rows[f"{s}_flagged"].tolist() == [name == "soft", *[False] * 5], (name, s)
            assert rows[f"{s}_real_index"].tolist() == list(range(10 * k, 10 * k + 6)), (name, s)
    text = (tmp_path / "audit.md").read_text()
    assert "Searched over 123 informative real patches." in text and "(the data have no patients)" in text
    report = text.splitlines()
    assert "- soft: **2 LEAK(S)**: dicom:PatientName in card.json, patient_id in grid.png" in report
    assert "- hard: no private string found" in report
    assert leak_advice(["dicom:PatientName", "patient_id"]) in report


def test_the_private_string_lines_count_kinds_short_strings_and_each_sets_leaks() -> None:
    """One leak is a leak (with the advice); no leak in any set: no advice. Kills: one leak read as none,
    the advice only when every set leaks, the short strings' count left out."""
    strings = PrivateStrings(["Zyxwvut-PID-1", "Hospital Wqxzvb"], ["patient_id", "dicom:InstitutionName"], 3)
    leaks = {"a": [{"file": "card.json", "kind": "patient_id"}], "b": []}
    lines = private_string_lines(strings, 4, leaks, ["a", "b"])
    assert lines == [
        "Private strings searched in every artifact byte (UTF-8/UTF-16, any case, zip members decompressed): "
        "1 dicom, 1 patient_id; 3 shorter than 4 characters were not searched.",
        "- a: **1 LEAK(S)**: patient_id in card.json",
        "- b: no private string found",
        "",
        leak_advice(["patient_id"]),
    ]
    assert private_string_lines(strings, 4, leaks, ["b"]) == [lines[0], lines[2]]


def test_the_text_corner_table_holds_each_sets_numbers_against_numpy(compose_cfg) -> None:
    """The text-region row: the set's highest NCC, the ordinary patches' 99th percentile, the text patches'
    median and the share above that percentile (not above the median), each computed here with numpy."""
    sims, ordinary = np.array([0.2, 0.85, 0.5, 0.95]), np.random.default_rng(1).uniform(0, 0.8, 200)
    report = TextRegionReport(
        sets={"soft": sims}, ordinary=ordinary, text=np.array([0.7, 0.9, 0.95]), n_text_patches=3
    )
    p99 = np.percentile(ordinary, 99)
    lines = text_region_lines(compose_cfg([]).audit.text, report, {"soft": report.summary("soft")}, ["soft"])
    assert lines[-2:] == [
        "|---|---|---|---|---|",
        f"| soft | 0.950 | {p99:.3f} | 0.900 | {np.mean(sims > p99):.0%} |",
    ]


@pytest.mark.parametrize(("certified", "detected"), [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0)])
def test_the_reports_banner_names_each_control_that_failed(audited, certified, detected) -> None:
    """No banner when both controls hold; else one line naming the positive controls and/or the overfitted
    network. Kills: 'and' for 'or' in the banner's condition, either cause's words under the wrong test."""
    results = copy.deepcopy(audited.args["results"])
    results["real"].update(controls_certified=certified, mia_control_detected=detected)
    lines = _render(audited, results=results).splitlines()
    banner = [
        line for line in lines if line.startswith("**This audit cannot certify anonymity on these data**")
    ]
    causes = (
        "its positive controls (real patches, and real patches with small noise) were not flagged. "
        if not certified
        else ""
    ) + ("Its membership attack did not detect its overfitted control. " if not detected else "")
    expected = [f"**This audit cannot certify anonymity on these data**: {causes}"] if causes else []
    assert banner == expected


def test_the_reports_sample_sizes_count_the_reference_and_the_membership_pool(audited) -> None:
    """The reference line counts its patches, the near-duplicates (NCC >= 0.99; exact ones apart) and the
    patches the quantile rests on (by hand: 6, 2, 1 and 3); the pool line its patches and patients, each
    from the ``real`` row. Kills: the quantile's count taken as the reference's, counts swapped, the
    'informative only' words under the wrong setting."""
    ncc = np.array([0.2, 0.5, 0.995, 1.0, np.nan, 0.3])
    nearest = dataclasses.replace(
        audited.args["nearest"],
        reference={s: ncc for s in audited.args["nearest"].spaces},
        reference_indices=np.arange(6),
    )
    results = copy.deepcopy(audited.args["results"])
    results["real"].update(
        mia_patch_n_members=101,
        mia_patch_n_nonmembers=99,
        mia_pool_patients=17,
        mia_patient_n_members=9,
        mia_patient_n_nonmembers=8,
        mia_n_shadows=4,
    )
    lines = _render(audited, nearest=nearest, results=results).splitlines()
    assert (
        "- Reference: 6 informative patches, each with its nearest informative patch of a different "
        "patient; 2 of them have a near-duplicate in another patient (pixel NCC >= 0.99; 1 exact) and are "
        "left out of the quantile, which rests on 3 patches." in lines
    )
    pool = (
        "- Membership: pool of 101 training and 99 test patches ({}the same number of each class on both "
        "sides) from 17 patients (9 training and 8 test patients); 4 shadow networks on complementary "
        "random halves of the patients."
    )
    assert pool.format("informative only, ") in lines
    cfg = copy.deepcopy(audited.cfg)
    cfg.audit.membership.informative_only = False
    assert pool.format("") in _render(audited, cfg=cfg, nearest=nearest, results=results).splitlines()


def test_the_reports_nearest_table_has_every_set_and_control_in_every_space(audited) -> None:
    """One row per set and per positive control in each space, with the numbers of audit.json; the header
    and the rule name the flag quantile; a missing number reads n/a. Kills: the controls' rows dropped,
    the share written as a number, the quantile's words fixed at 99."""
    results = json.loads((audited.out / "audit.json").read_text())["results"]
    lines = (audited.out / "audit.md").read_text().splitlines()
    for name in ("soft", "hard", "control_copy", "control_noisy"):
        r = results[name]
        for s, title in SPACES.items():
            row = (
                f"| {name} | {int(r['n_images'])} | {title} | {r[f'{s}_nearest_mean']:.3f} | "
                f"{r[f'{s}_nearest_max']:.3f} | {r[f'{s}_ref_median']:.3f} | {r[f'{s}_ref_q']:.3f} | "
                f"{r[f'{s}_frac_flagged']:.0%} |"
            )
            assert row in lines, row
    header = "| set | images | space | nearest mean | nearest max | ref median | ref q99 | flagged |"
    assert header in lines
    assert any("is at or above the reference's 99% quantile in ncc, ssim: then" in line for line in lines)
    nearest = dataclasses.replace(audited.args["nearest"], flag_quantile=0.95)
    edited = copy.deepcopy(audited.args["results"])
    edited["soft"].update(ncc_ref_median=math.nan, ncc_frac_flagged=math.nan)
    text = _render(audited, nearest=nearest, results=edited)
    assert header.replace("q99", "q95") in text and "reference's 95% quantile in ncc, ssim" in text
    r = edited["soft"]
    assert (
        f"| soft | 6 | pixel NCC | {r['ncc_nearest_mean']:.3f} | {r['ncc_nearest_max']:.3f} | n/a | " in text
    )
    assert text.split("| soft | 6 | pixel NCC |")[1].splitlines()[0].endswith("| n/a |")


def test_the_reports_membership_table_and_flag_lines(audited) -> None:
    """Both levels of every attacked network (the real one, the overfitted control, each set's) with the
    numbers of audit.json, the primary attack named; per set the flag bar, the larger of flag_auc and
    0.5 + 3 chance sd, and whether it was reached. Kills: the patient level or the control left out,
    the bar the smaller of the two, the flag words reversed."""
    results = json.loads((audited.out / "audit.json").read_text())["results"]
    lines = (audited.out / "audit.md").read_text().splitlines()
    labels = {
        "real": "trained on all real patches",
        "control_overfit": "positive control: overfitted on some training patients",
        "soft": "soft: 2 fresh networks (replay)",
        "hard": "hard: 2 fresh networks (replay)",
    }
    for row, label in labels.items():
        r = results[row]
        for level in ("patch", "patient"):
            k = f"mia_{level}"
            expected = (
                f"| {label} | {level} | {int(r[f'{k}_n_members'])} / {int(r[f'{k}_n_nonmembers'])} | "
                f"{_fmt(r[f'{k}_loss_auc'])} | {_fmt(r[f'{k}_calibrated_loss_auc'])} | "
                f"{_fmt(r[f'{k}_lira_auc'])} | "
                f"{_fmt(r[f'{k}_best_auc'])} ± {_fmt(r[f'{k}_best_auc_std'])} "
                f"({BEST_OF[int(r[f'{k}_best_attack_index'])]}) | {_pct(r[f'{k}_best_tpr_at_0p1pct'])} | "
                f"{_pct(r[f'{k}_best_tpr_at_1pct'])} | {_fmt(r[f'{k}_best_advantage'])} |"
            )
            assert expected in lines, expected
    edited = copy.deepcopy(audited.args["results"])
    edited["soft"].update(mia_auc_null_sd=0.05, membership_flagged=1.0)
    edited["hard"].update(mia_auc_null_sd=0.01, membership_flagged=0.0)
    text = _render(audited, results=edited).splitlines()
    for name, bar, sd, word in (
        ("soft", "0.650", "0.050", "**flagged**"),
        ("hard", "0.600", "0.010", "below it"),
    ):
        r = edited[name]
        assert (
            f"- {name}: flagged at patch best AUC >= {bar} (the larger of 0.6 and 0.5 + 3 × {sd}, the "
            f"larger chance sd of: membership redrawn over the patients {_fmt(r['mia_patch_best_null_sd'])}, "
            f"patches taken as independent {_fmt(r['mia_auc_null_sd_patches'])}); {word}"
        ) in text


def test_the_closest_pairs_are_the_most_ncc_similar_images_above_their_nearest_real_patches(audited) -> None:
    """closest_pairs.png, read from its axes: the ``closest_pairs`` most similar images of all sets (NCC
    against numpy), most similar first, each shown above its nearest real patch, '!' at or above the flag
    threshold, which the title gives. Kills: least similar first, one pair too many, no threshold, the
    real patch of another space's search, the rows swapped."""
    fig, dm = audited.drawn["closest_pairs.png"], audited.dm
    table = pd.read_csv(audited.out / "audit_per_image.csv").set_index(["set", "image"])
    x_train = dm._splits["train"][0]
    informative = audited.args["informative"].indices
    candidates = []
    for name, ds in audited.sets.items():
        ncc = ncc_matrix(ds.images.detach().numpy(), x_train[informative])
        candidates += [(ncc[i].max(), name, i, informative[ncc[i].argmax()]) for i in range(len(ncc))]
    top = sorted(candidates, reverse=True)[:4]
    threshold = audited.results["soft"]["ncc_ref_q"]
    assert len(fig.axes) == 2 * 4
    mean, std = dm.mean[0], dm.std[0]
    for col, (_, name, i, real) in enumerate(top):
        sim = table.loc[(name, i), "ncc"]
        assert fig.axes[col].get_title() == f"{name} #{i}\nsim {sim:.3f}" + (" !" if sim >= threshold else "")
        shown = [np.clip(fig.axes[row * 4 + col].get_images()[0].get_array(), 0, 1) for row in (0, 1)]
        distilled = audited.sets[name].images[i, 0].detach().numpy() * std + mean
        np.testing.assert_allclose(shown[0], np.clip(distilled, 0, 1), atol=1e-5)
        np.testing.assert_allclose(shown[1], x_train[real, 0], atol=1e-5)
    assert top[0][1:3] == ("soft", 2) and fig.axes[0].get_title().endswith(" !")
    assert fig._suptitle.get_text() == (
        "top: distilled image, bottom: its nearest real training patch; '!' = at or above the flag threshold "
        f"{threshold:.3f}"
    )


def test_a_closest_pair_at_the_threshold_is_marked_and_none_without_a_threshold(
    tmp_path, monkeypatch
) -> None:
    """'!' marks a similarity equal to the threshold; without a threshold nothing is marked and the title
    has no note; a three-channel image is drawn in colour; the figure is closed once saved. Kills: '!' at >
    only, the first channel drawn alone, the figure left open."""
    import matplotlib.pyplot as plt

    drawn = _drawing(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    distilled, real = torch.rand(2, 1, 4, 4, generator=gen), torch.rand(2, 1, 4, 4, generator=gen)
    figures.plot_closest_pairs(distilled, real, [0.9, 0.8], ["a #0", "b #1"], tmp_path / "p.png", 0.9)
    fig = drawn["p.png"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a #0\nsim 0.900 !", "b #1\nsim 0.800"]
    np.testing.assert_allclose(fig.axes[3].get_images()[0].get_array(), real[1, 0].numpy())
    figures.plot_closest_pairs(distilled, real, [0.9, 0.8], ["a #0", "b #1"], tmp_path / "q.png")
    fig = drawn["q.png"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a #0\nsim 0.900", "b #1\nsim 0.800"]
    assert fig._suptitle.get_text() == "top: distilled image, bottom: its nearest real training patch"
    colour = torch.rand(1, 3, 4, 4, generator=gen)  # three channels are shown as colour, not as one grey
    figures.plot_closest_pairs(colour, colour, [0.5], ["c #0"], tmp_path / "c.png")
    np.testing.assert_allclose(drawn["c.png"].axes[0].get_images()[0].get_array(), colour[0].permute(1, 2, 0))
    assert plt.get_fignums() == []


def _step_heights(patch, n_bins: int) -> np.ndarray:
    """The bin heights of a ``histtype='step'`` outline: (e0, 0), (e0, h0), (e1, h0), (e1, h1), ..."""
    return patch.get_xy()[1 : 2 * n_bins : 2, 1]


def test_the_similarity_histograms_draw_the_used_reference_each_set_and_the_flag(
    tmp_path, monkeypatch
) -> None:
    """Per space: 30 bin edges over every value drawn, the reference without duplicates and unmatched
    patches (grey, density), each set's outline, a line at the reference's flag quantile (numpy), the
    space's title. Kills: other bins, raw reference drawn, counts for densities, the line elsewhere."""
    import matplotlib.pyplot as plt

    from gastrodistill.anonymity.nearest import NearestReport

    drawn = _drawing(monkeypatch)
    rng = np.random.default_rng(0)
    ncc = np.concatenate([rng.uniform(0.2, 0.8, 40), [0.995, np.nan]])  # a duplicate, an unmatched patch
    ssim = np.concatenate([rng.uniform(0.1, 0.7, 40), [0.05, np.nan]])
    soft = {"ncc": rng.uniform(0.3, 0.95, 6), "ssim": rng.uniform(0.0, 0.6, 6)}
    report = NearestReport(
        sets={"soft": soft},
        reference={"ncc": ncc, "ssim": ssim},
        reference_indices=np.arange(42),
        spaces=("ncc", "ssim"),
        n_real=100,
        by_patient=False,
        flag_quantile=0.95,
    )
    figures.plot_similarity_histograms(report, tmp_path / "h.png")
    fig = drawn["h.png"]
    assert [ax.get_title() for ax in fig.axes] == [
        "nearest real patch: pixel NCC",
        "nearest real patch: pixel SSIM",
    ]
    for ax, space in zip(fig.axes, ("ncc", "ssim"), strict=True):
        used = (ncc if space == "ncc" else ssim)[:40]  # the duplicate's pair and the unmatched one left out
        edges = np.linspace(min(used.min(), soft[space].min()), max(used.max(), soft[space].max()) + 1e-6, 30)
        bars = ax.containers[0]
        np.testing.assert_allclose([b.get_x() for b in bars], edges[:-1], atol=1e-9)
        np.testing.assert_allclose([b.get_height() for b in bars], np.histogram(used, edges, density=True)[0])
        (outline,) = [p for p in ax.patches if p.get_label() == "distilled soft"]
        np.testing.assert_allclose(
            _step_heights(outline, 29), np.histogram(soft[space], edges, density=True)[0]
        )
        (line,) = ax.get_lines()
        assert line.get_label() == "flag: reference q95" and ax.get_xlabel() == "similarity"
        np.testing.assert_allclose(line.get_xdata(), [np.quantile(used, 0.95)] * 2)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["distilled soft", "flag: reference q95", "real vs other samples"]
    assert fig.axes[1].get_legend() is None and plt.get_fignums() == []


def _attack(auc: float, fpr, tpr) -> AttackMetrics:
    return AttackMetrics(auc, 0.0, {}, 5, 5, (np.asarray(fpr, float), np.asarray(tpr, float)))


def test_the_roc_figure_draws_the_best_attack_of_each_row_per_network(tmp_path, monkeypatch) -> None:
    """``primary: best`` draws per row the calibrated attack of the highest mean AUC over its networks
    (named), every network's curve in the row's colour, the first labelled with the mean AUC; linear and
    log axes (curves clipped at 1e-4, limits 1e-3..1) with the chance diagonal. Kills: the weakest attack,
    the attack's name dropped, the last network's AUC or every curve labelled, a colour per network, no
    log scale, the legend on the log axes."""
    import matplotlib.pyplot as plt

    def network(aucs, shift):
        fpr = np.array([0.0, 0.00005, 0.5, 1.0])
        tpr = np.clip(fpr + shift, 0, 1)
        return TargetAttack(
            patch={a: _attack(v, fpr, tpr) for a, v in zip(BEST_OF, aucs, strict=True)}, patient={}
        )

    mia = {
        "real": [network((0.6, 0.7, 0.65), 0.2)],  # lira the strongest
        "soft": [network((0.58, 0.5, 0.56), 0.1), network((0.54, 0.56, 0.55), 0.05)],  # calibrated_loss
    }
    curves = _roc_for_plot(mia, "best")
    assert list(curves) == ["real (lira)", "soft (calibrated_loss)"]
    assert [auc for _, _, auc in curves["soft (calibrated_loss)"]] == [0.58, 0.54]
    assert list(_roc_for_plot(mia, "lira")) == ["real", "soft"]
    drawn = _drawing(monkeypatch)
    figures.plot_membership_roc(curves, tmp_path / "roc.png", attack="best")
    fig = drawn["roc.png"]
    assert [ax.get_title() for ax in fig.axes] == [
        "membership inference (best)",
        "membership inference (best), log axes",
    ]
    for ax, log in zip(fig.axes, (False, True), strict=True):
        *nets, diagonal = ax.get_lines()
        labels = [line.get_label() for line in nets[:2]]
        assert labels == ["real (lira) (AUC 0.700)", "soft (calibrated_loss) (AUC 0.560)"]
        assert nets[2].get_label().startswith("_")  # the row's second network: same colour, no label
        assert nets[1].get_color() == nets[2].get_color() != nets[0].get_color()
        for line, (fpr, tpr, _) in zip(
            nets, [*curves["real (lira)"], *curves["soft (calibrated_loss)"]], strict=True
        ):
            want = (np.clip(fpr, 1e-4, 1), np.clip(tpr, 1e-4, 1)) if log else (fpr, tpr)
            np.testing.assert_allclose(line.get_xdata(), want[0])
            np.testing.assert_allclose(line.get_ydata(), want[1])
        np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
        assert (ax.get_xscale(), ax.get_yscale()) == (("log", "log") if log else ("linear", "linear"))
        if log:
            np.testing.assert_allclose([*ax.get_xlim(), *ax.get_ylim()], [1e-3, 1, 1e-3, 1])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["real (lira) (AUC 0.700)", "soft (calibrated_loss) (AUC 0.560)"]
    assert fig.axes[1].get_legend() is None and plt.get_fignums() == []


def test_a_zero_closest_pairs_audit_writes_an_empty_pairs_figure(audited, tmp_path, monkeypatch) -> None:
    """``audit.closest_pairs=0``, which the config check accepts, ended the audit in 'stack expects a
    non-empty TensorList' after every network had trained; it draws the figure without pairs."""
    drawn = _drawing(monkeypatch)
    cfg = OmegaConf.create(OmegaConf.to_container(audited.cfg))
    cfg.audit.closest_pairs = 0
    paths, _ = write_outputs(**{**audited.args, "out": tmp_path, "cfg": cfg})
    assert paths["closest_pairs"].is_file()
    assert not any(ax.get_images() for ax in drawn["closest_pairs.png"].axes)
