"""gastrodistill-patches: Hydra entry point builds the store, prints counts, records the run."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
from _cli_runner import assert_nothing_written, run_main
from hydra.core.global_hydra import GlobalHydra

from gastrodistill.cli import build_patches
from gastrodistill.data.patch_store import PatchStore


def test_cli_builds_store_and_prints_counts(tmp_path, data_root, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = [
        "gastrodistill-patches",
        f"paths.root_dir={tmp_path}",
        f"paths.data_root={data_root}",
        f"hydra.run.dir={out}",
        "data.patch_size=32",
        "data.overlap=8",
        "data.storage_size=16",
        "logger=csv",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    build_patches.main()
    text = capsys.readouterr().out
    where = re.search(r"patch store: (\S+)", text).group(1)
    store = PatchStore(where)
    assert store.path.parent == tmp_path / "data" / "stores"
    for split in ("train", "val", "test"):
        counts = store.meta["counts"][split]
        line = next(ln for ln in text.splitlines() if ln.startswith(split))
        numbers = [int(v) for v in line.split()[1:]]
        assert numbers == [store.meta["n_patients"][split], *counts.values(), sum(counts.values())]
    assert "256 patches of 32 px (overlap 8) stored at 16 px" in text
    n_images = len((data_root / "manifest.csv").read_text().strip().splitlines()) - 1  # rows below the header
    assert f"stored at 16 px, {store.patches.nbytes / 1e6:.1f} MB, from {n_images} images\n" in text
    assert "images/" not in text  # no image path printed
    assert text.count("grey levels used") == 1  # the table's line, not the builder's log line too
    levels = re.search(r"grey levels used \(of 256\): train (\d+)", text)
    assert levels and int(levels.group(1)) == int(np.count_nonzero(store.meta["pixel_histograms"]["train"]))
    info = json.loads((out / "run_info.json").read_text())
    assert info["patch_store"]["content_hash"] == store.content_hash and "versions" in info
    assert "patch_size: 32" in (out / "config.yaml").read_text()
    GlobalHydra.instance().clear()


def test_the_summary_table_counts_each_split_and_warns_of_a_split_with_few_grey_levels():
    """Rows: the split's patients, its patches per class and their sum; then the grey levels of each split
    and a warning for one using fewer than 64 of 256 (kills the total, the patients' split, the levels line
    and the warnings dropped)."""
    from gastrodistill.data.labelling import CLASS_NAMES

    train_hist, test_hist = np.zeros(256, int), np.zeros(256, int)
    train_hist[:10] = 5  # 10 levels used: few
    test_hist[::2] = 1  # 128 levels used
    meta = {
        "counts": {
            "train": dict(zip(CLASS_NAMES, [7, 3, 2], strict=True)),
            "test": dict(zip(CLASS_NAMES, [4, 0, 1], strict=True)),
        },  # fmt: skip
        "n_patients": {"train": 6, "test": 2},
        "pixel_histograms": {"train": train_hist.tolist(), "test": test_hist.tolist()},
    }
    lines = build_patches.summary_table(meta).splitlines()
    assert lines[0].split() == ["split", "patients", *CLASS_NAMES, "total"]
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert lines[2].split() == ["train", "6", "7", "3", "2", str(7 + 3 + 2)]
    assert lines[3].split() == ["test", "2", "4", "0", "1", str(4 + 0 + 1)]
    assert lines[4] == "grey levels used (of 256): train 10, test 128"
    assert len(lines) == 6 and lines[5].startswith("WARNING: split 'train' uses only 10 of 256 grey levels")


def test_patches_of_a_collection_that_needs_no_store_is_one_line_naming_the_commands_to_run(
    tmp_path, monkeypatch, capsys
):
    """`gastrodistill-patches data=npz`: the npz data need no patch store, which the command says in one line
    before reading anything (kills the data module's type check dropped)."""
    path = tmp_path / "d.npz"
    arrays = {f"{s}_images": np.zeros((4, 8, 8), np.uint8) for s in ("train", "val", "test")}
    np.savez(path, **arrays, **{f"{s}_labels": np.arange(4) % 2 for s in ("train", "val", "test")})
    work = tmp_path / "work"
    argv = ["gastrodistill-patches", f"paths.root_dir={work}", "logger=csv", "data=npz", f"data.path={path}"]
    code, text = run_main(build_patches.main, argv, monkeypatch, capsys)
    assert code == 1, text
    assert text.strip() == (
        "error: gastrodistill-patches builds gastric patch stores (data=gastric); data=NpzDataModule needs "
        "no store: run gastrodistill-distill or gastrodistill-reproduce with it directly"
    )
    assert_nothing_written(work)


def test_run_returns_the_store_folder_it_printed(compose_cfg, data_root, capsys):
    """`run` (the command's work, for callers in Python) returns the store's folder (kills `None`)."""
    cfg = compose_cfg([f"paths.data_root={data_root}", "data.patch_size=32", "data.overlap=8"])
    cfg.data.storage_size, cfg.data.progress = 16, False
    path = build_patches.run(cfg)
    assert f"patch store: {path}\n" in capsys.readouterr().out
    assert PatchStore(path).meta["shape"][0] == 256
