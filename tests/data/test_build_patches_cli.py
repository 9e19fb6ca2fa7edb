"""gastrodistill-patches: Hydra entry point builds the store, prints counts, records the run."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
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
    assert "images/" not in text  # no image path printed
    assert text.count("grey levels used") == 1  # the table's line, not the builder's log line too
    levels = re.search(r"grey levels used \(of 256\): train (\d+)", text)
    assert levels and int(levels.group(1)) == int(np.count_nonzero(store.meta["pixel_histograms"]["train"]))
    info = json.loads((out / "run_info.json").read_text())
    assert info["patch_store"]["content_hash"] == store.content_hash and "versions" in info
    assert "patch_size: 32" in (out / "config.yaml").read_text()
    GlobalHydra.instance().clear()
