"""Patch labels from stomach masks and from patch_labels.csv, and the errors for missing/bad labels."""

from __future__ import annotations

import numpy as np
import pytest

from gastrodistill.data.errors import PatchLabelError
from gastrodistill.data.labelling import (
    GASTRITIS,
    IRRELEVANT,
    NON_GASTRITIS,
    check_coverage,
    label_image,
    labels_from_mask,
    load_patch_labels,
)
from gastrodistill.data.manifest import load_manifest, validate_files
from gastrodistill.data.tiling import Geometry, tile_positions

GEOM = Geometry(32, 8)


def test_mask_fraction_against_threshold():
    mask = np.zeros((100, 90), dtype=bool)
    mask[:, :45] = True  # left half is stomach
    pos = tile_positions(100, 90, 32, 8)
    for diagnosis, positive in (("gastritis", GASTRITIS), ("non-gastritis", NON_GASTRITIS)):
        labels = labels_from_mask(mask, pos, 32, 0.5, diagnosis)
        for (r, c), lab in zip(pos, labels, strict=True):
            inside = sum(1 for x in range(c, c + 32) if x < 45) / 32  # share of stomach columns
            assert lab == (positive if inside >= 0.5 else IRRELEVANT), (r, c, inside)
    # col 24 covers columns 24..55: 21/32 = 0.656 stomach; threshold 0.7 turns it irrelevant
    lab = labels_from_mask(mask, [(0, 24)], 32, 0.7, "gastritis")
    assert lab.tolist() == [IRRELEVANT]
    lab = labels_from_mask(mask, [(0, 24)], 32, 21 / 32, "gastritis")  # exactly at the threshold
    assert lab.tolist() == [GASTRITIS]


def test_manual_labels_win_over_the_mask():
    mask = np.ones((100, 90), dtype=bool)
    pos = tile_positions(100, 90, 32, 8)
    labels = label_image(pos, 32, "gastritis", 0.5, mask, {(24, 48): IRRELEVANT, (68, 58): NON_GASTRITIS})
    assert labels[pos.index((24, 48))] == IRRELEVANT
    assert labels[pos.index((68, 58))] == NON_GASTRITIS
    assert (np.delete(labels, [pos.index((24, 48)), pos.index((68, 58))]) == GASTRITIS).all()


def _with_labels(root, text):
    (root / "patch_labels.csv").write_text(text)
    return load_manifest(root)


def test_patch_labels_file_parsed_by_number_or_name(data_root):
    m = _with_labels(
        data_root, "image,row,col,label\nimages/A1_0.png,0,0,2\n./images/A1_0.png,24,0,irrelevant\n"
    )
    labels = load_patch_labels(m)
    assert labels == {"images/A1_0.png": {(0, 0): 2, (24, 0): 0}}


def test_patch_labels_with_backslashes_name_the_manifests_images(data_root):
    """patch_labels.csv exported on Windows (``images\\A1_0.png``) matches the manifest's images, as a
    manifest with backslashes does (``manifest.manifest_path``): it was "not in manifest.csv"."""
    m = _with_labels(data_root, "image,row,col,label\nimages\\A1_0.png,0,0,2\n")
    assert load_patch_labels(m) == {"images/A1_0.png": {(0, 0): 2}}


def test_patch_labels_separated_by_semicolons_are_named_as_such(data_root):
    (data_root / "patch_labels.csv").write_text("image;row;col;label\nimages/A1_0.png;0;0;2\n")
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(load_manifest(data_root))
    msg = str(info.value)
    assert msg.startswith(f"{data_root / 'patch_labels.csv'}: the header is separated by semicolons (';'), ")
    assert "save it as comma-separated CSV UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'" in msg


def test_bad_patch_label_rows_are_listed(data_root):
    m = _with_labels(
        data_root,
        "image,row,col,label\n"
        "images/unknown.png,0,0,1\n"  # line 2
        "images/A1_0.png,x,0,1\n"  # line 3
        "images/A1_0.png,0,0,ulcer\n"  # line 4
        "images/A1_0.png,0,24,1\n"
        "images/A1_0.png,0,24,2\n",  # line 6: duplicate
    )
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(m)
    msg = str(info.value)
    assert len(info.value.problems) == 4
    assert "line 2: image 'images/unknown.png' is not in manifest.csv" in msg
    assert "line 3: row/col 'x','0' must be integer" in msg
    assert "line 4: label 'ulcer' must be 0/1/2" in msg
    assert "line 6: patch (0, 24) of image 'images/A1_0.png' is labelled twice" in msg


def test_off_grid_labels_and_images_without_any_label_are_errors(data_root):
    import csv

    with open(data_root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    rows[0]["mask"] = ""  # images/A1_0.png now has no mask ...
    from gastric_testdata import write_manifest

    write_manifest(data_root, rows)
    m = _with_labels(data_root, "image,row,col,label\nimages/A1_0.png,0,0,1\nimages/A1_1.png,5,5,1\n")
    sizes = validate_files(m, GEOM, progress=False)
    with pytest.raises(PatchLabelError) as info:
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    msg = str(info.value)
    assert (
        "manifest.csv line 2 (image 'images/A1_0.png'): no mask and no manual label for 15 of its 16 patches"
        in msg
    )
    # with its line (a docs tester's finding: the other patch_labels.csv errors named theirs)
    assert "patch_labels.csv line 3: image 'images/A1_1.png': 1 row/col pair(s) such as (5, 5) are not" in msg
    m = _with_labels(
        data_root, "image,row,col,label\n" + "".join(f"images/A1_1.png,{i},1,1\n" for i in range(7))
    )
    with pytest.raises(
        PatchLabelError, match=r"csv lines 2, 3, 4, 5, 6 \.\.\.: image 'images/A1_1.png': 7 row"
    ):
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    # rows in another order than the grid's: still the file's first lines, in their order
    backwards = "".join(f"images/A1_1.png,{i},1,1\n" for i in range(6, -1, -1))
    m = _with_labels(data_root, "image,row,col,label\n" + backwards)
    with pytest.raises(PatchLabelError, match=r"csv lines 2, 3, 4, 5, 6 \.\.\.: image 'images/A1_1.png'"):
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    # ... and labelling all 16 of its patches by hand makes it valid
    full = "".join(f"images/A1_0.png,{r},{c},1\n" for r, c in tile_positions(100, 90, 32, 8))
    m = _with_labels(data_root, "image,row,col,label\n" + full)
    check_coverage(m, sizes, GEOM, load_patch_labels(m))


def test_patch_labels_not_in_utf8_are_refused_naming_the_file_and_line(data_root):
    (data_root / "patch_labels.csv").write_bytes(
        "image,row,col,label\nimages/A1_0.png,0,0,2\nimages/A1_0.png,24,0,irr\u00e9levant\n".encode("latin-1")
    )
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(load_manifest(data_root))
    msg = str(info.value)
    assert msg.startswith(f"{data_root / 'patch_labels.csv'} line 3: byte 0xe9 is not UTF-8")
    assert "save it as UTF-8" in msg
