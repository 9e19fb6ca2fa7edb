"""Header strings, patient ids and paths never reach the artifact; the text corner is not reproduced."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest
import torch
from _anon_data import (
    IMAGE_NAME,
    PatientDM,
    all_bytes,
    make_dm,
    noise_set,
    structured_patch,
    write_dicom_root,
)

from gastrodistill.anonymity.text_check import (
    TextCheckError,
    patches_in_corner,
    private_strings,
    scan_for_strings,
    text_patch_mask,
    text_region_similarity,
)
from gastrodistill.sharing.artifact import ArtifactError, save_artifact
from gastrodistill.sharing.card import CardError
from gastrodistill.sharing.publish import publish_artifact


def test_private_strings_come_from_header_manifest_and_patients(tmp_path):
    secrets = write_dicom_root(tmp_path / "src")
    strings = private_strings(make_dm(patients=(2, 1, 1), per_patient=2), tmp_path / "src")
    values = set(strings.values)
    for key in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber"):
        assert secrets[key] in values, key
    assert {"Zyxwvut", "Qwerty", "Plonkit", secrets["sop_uid"], secrets["study_uid"], IMAGE_NAME} <= values
    assert "Zyxwvut-PID-train-0000" in values  # patient ids of the data module
    assert "1.2.840.10008.1.2.1" not in values  # the transfer syntax is a standard UID, not an identifier
    assert "GASTRODISTILL" not in values  # file meta names the writing software (it would flag every card)
    assert strings.counts()["dicom"] >= 8 and strings.counts()["path"] >= 2


def test_private_strings_read_the_manifest_as_the_data_stage_does(tmp_path):
    """Excel's "CSV UTF-8" starts the manifest with a BOM, and hand-written headers often have a space
    after each comma: the audit must still see the image and mask columns (and so read the DICOM header
    and the file names), exactly as the data stage does."""
    secrets = write_dicom_root(tmp_path / "src")
    mask = "masks/Zyxwvut_Qwerty_mask0042.png"
    row = f"{IMAGE_NAME},{secrets['PatientID']},gastritis,{mask}\n"
    manifest = tmp_path / "src" / "manifest.csv"
    manifest.write_text("image,patient_id,diagnosis,mask\n" + row, encoding="utf-8")
    plain = private_strings(None, tmp_path / "src")
    assert secrets["PatientName"] in plain.values and mask in plain.values  # the reference is complete
    for header in ("image,patient_id,diagnosis,mask\n", "image, patient_id, diagnosis, mask\n"):
        manifest.write_text(header + row, encoding="utf-8-sig")  # with a BOM
        strings = private_strings(None, tmp_path / "src")
        assert sorted(strings.values) == sorted(plain.values), header
        assert strings.counts() == plain.counts(), header


def test_private_strings_read_a_manifest_with_backslashes_as_the_data_stage_does(tmp_path):
    """A manifest exported on Windows (``images\\x.dcm``): the data stage reads ``\\`` as ``/``, so the
    audit must too, or it reads no DICOM header of the images it lists (it looked for a file named
    ``images\\x.dcm``); the path as the manifest writes it is searched for as well."""
    secrets = write_dicom_root(tmp_path / "src")
    written = IMAGE_NAME.replace("/", "\\")
    (tmp_path / "src" / "manifest.csv").write_text(
        f"image,patient_id,diagnosis\n{written},{secrets['PatientID']},gastritis\n"
    )
    values = set(private_strings(None, tmp_path / "src").values)
    for key in ("PatientName", "PatientID", "InstitutionName", "AccessionNumber"):
        assert secrets[key] in values, key
    assert {IMAGE_NAME, written, IMAGE_NAME.rsplit("/", 1)[1]} <= values


def test_private_strings_read_dicom_files_without_an_extension(tmp_path):
    """A folder of DICOM files named without ``.dcm`` (common from PACS exports): the readers decode them
    by the ``DICM`` marker, so the audit must read their headers too."""
    secrets = write_dicom_root(tmp_path / "src")
    (tmp_path / "src" / "manifest.csv").unlink()  # no manifest: every file below the root is looked at
    (tmp_path / "src" / IMAGE_NAME).rename(tmp_path / "src" / "images" / "IM0001")
    (tmp_path / "src" / "images" / "notes.txt").write_text("not an image")
    values = set(private_strings(None, tmp_path / "src").values)
    for key in ("PatientName", "PatientID", "InstitutionName", "AccessionNumber"):
        assert secrets[key] in values, key


def test_published_artifact_holds_no_identifier_or_path(tmp_path, compose_cfg):
    secrets = write_dicom_root(tmp_path / "src")
    cfg = compose_cfg([f"paths.data_root={tmp_path / 'src'}", "model=lenet"])
    dm = make_dm(patients=(3, 2, 2), per_patient=3)
    out = publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / "share" / "soft", archive=True)
    blob = all_bytes(out).lower() + all_bytes(f"{out}.zip").lower()
    forbidden = [
        *secrets.values(),
        "Zyxwvut",
        "Qwerty",
        "Wqxzvb",
        "Zyxwvut_Qwerty_scan0042",
        str(tmp_path),
        *np.unique(dm.patient_ids("train")),
    ]
    for s in forbidden:
        for enc in ("utf-8", "utf-16-le"):
            assert s.lower().encode(enc) not in blob, (s, enc)
    assert b"zyxwvut-pid" not in blob
    assert scan_for_strings([out, f"{out}.zip"], private_strings(dm, tmp_path / "src")) == []


def test_a_leaking_card_is_refused_and_nothing_is_written(tmp_path):
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    fields = {
        "architecture": {"_target_": "gastrodistill.models.LeNet"},
        "training_recipe": {},
        "source_hash": dm.source_hash(),
    }
    target = tmp_path / "art"
    with pytest.raises(ArtifactError, match="private string"):
        save_artifact(
            target,
            noise_set(dm),
            {**fields, "description": "from QX-778899"},
            forbidden_strings=["QX-778899"],
        )
    assert not target.exists() and not list(tmp_path.iterdir())
    bad = [
        ({"description": f"{tmp_path}/data"}, "path separator"),
        ({"description": "C:scan.dcm"}, "file path"),
        ({"description": "Doe^John"}, "person name"),
        ({"description": "1.2.392.200036.9116.2.1"}, "UID"),
        ({"evaluation": {"patient_id": 3}}, "patients"),
        ({"data_root": "x"}, "not allowed"),
        ({"source_hash": "abc"}, "sha256"),
    ]
    for extra, message in bad:
        with pytest.raises(CardError, match=message):
            save_artifact(target, noise_set(dm), {**fields, **extra})
    assert not target.exists()


def test_scanner_finds_utf16_strings_inside_zip_members(tmp_path):
    secrets = write_dicom_root(tmp_path / "src")
    with zipfile.ZipFile(tmp_path / "leaky.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("card.json", ("note: " + secrets["PatientID"].lower()).encode("utf-16-le"))
    hits = scan_for_strings([tmp_path / "leaky.zip"], private_strings(None, tmp_path / "src"))
    assert len(hits) == 1 and hits[0]["kind"] in (
        "patient_id",
        "dicom:PatientID",
    )  # manifest and header agree
    assert secrets["PatientID"] not in str(hits)  # reports name the kind and a hash, never the value


def test_patches_in_corner_geometry():
    rows, cols = np.array([0, 0, 249, 751, 0]), np.array([0, 249, 0, 751, 751])
    h = w = np.full(5, 1050)
    np.testing.assert_array_equal(
        patches_in_corner(rows, cols, 299, h, w, "top-left", (0.1, 0.3)), [True, True, False, False, False]
    )
    np.testing.assert_array_equal(
        patches_in_corner(rows, cols, 299, h, w, "bottom-right", (0.1, 0.3)),
        [False, False, False, True, False],
    )
    with pytest.raises(TextCheckError, match="corner"):
        patches_in_corner(rows, cols, 299, h, w, "middle", (0.1, 0.3))


def test_a_list_of_corners_gives_the_union_of_their_boxes():
    """Two corners: exactly the patches overlapping either box, worked out here from the box arithmetic
    (and equal to the union of the two single-corner masks)."""
    rng = np.random.default_rng(3)
    n, patch, (bh, bw) = 400, 64, (0.12, 0.6)
    h, w = rng.integers(300, 1300, n), rng.integers(300, 1300, n)
    rows, cols = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
    bottom, top, right = rows + patch > (1 - bh) * h, rows < bh * h, cols < bw * w
    expected = (top | bottom) & right  # both corners are on the left: x in [0, bw * w)
    assert (top & right).any() and (bottom & right).any() and not expected.all()  # a real union
    union = patches_in_corner(rows, cols, patch, h, w, ["top-left", "bottom-left"], (bh, bw))
    np.testing.assert_array_equal(union, expected)
    singles = [patches_in_corner(rows, cols, patch, h, w, c, (bh, bw)) for c in ("top-left", "bottom-left")]
    np.testing.assert_array_equal(union, singles[0] | singles[1])
    assert union.sum() > max(s.sum() for s in singles)
    # a one-name list is that corner alone
    one = patches_in_corner(rows, cols, patch, h, w, ["top-left"], (bh, bw))
    np.testing.assert_array_equal(one, singles[0])


#: A tiny synthetic collection: 600 px images (the text fills the default box's height there); at seed 5
#: three training patients' institutions stamp bottom-left (_CORNER_BY_INSTITUTION), the others top-left.
_SYNTHETIC = dict(
    train_gastritis=2,
    train_non_gastritis=2,
    test_gastritis=1,
    test_non_gastritis=1,
    images_per_patient=1,
    image_size=600,
)


def test_default_corners_cover_text_the_generator_stamps_bottom_left(tmp_path, compose_cfg):
    """The default ``audit.text.corner`` must cover every corner the synthetic generator stamps text in:
    with the old default (top-left only) a bottom-left text patch was never searched. Every split's mask
    is checked (the audit searches the training split; which split a patient lands in is the splitter's)."""
    from hydra.utils import instantiate

    from gastrodistill.data.synthetic.config import SyntheticConfig
    from gastrodistill.data.synthetic.generator import (
        generate_dataset,
        plan_patients,
        relative_paths,
        render_image,
    )

    seed, patch, size = 5, 120, _SYNTHETIC["image_size"]
    root = generate_dataset(tmp_path / "synthetic", seed=seed, progress=False, **_SYNTHETIC)
    cfg = compose_cfg(
        [
            f"paths.data_root={root}",
            f"data.patch_size={patch}",
            "data.overlap=0",
            "data.storage_size=16",
            "data.progress=false",
        ]
    )
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    synth = SyntheticConfig.from_params(**_SYNTHETIC)
    text_boxes = {  # image -> (y0, x0, y1, x1) of its text, as the generator drew it
        relative_paths(p, 0, "png")[0]: render_image(synth, seed, p, 0).text_box
        for p in plan_patients(synth, seed)
    }
    bottom_text: set[str] = set()  # splits with a bottom-left text patch
    for split in ("train", "val", "test"):
        mask = text_patch_mask(dm, cfg.audit.text.corner, list(cfg.audit.text.box), split=split)
        index = dm.store.split_index(split)
        assert mask is not None and mask.shape == (len(index),)
        rows, cols = index["row"].to_numpy(), index["col"].to_numpy()
        for image, (y0, x0, y1, x1) in text_boxes.items():
            on_text = (index["image"] == image).to_numpy() & (rows < y1) & (rows + patch > y0)
            on_text &= (cols < x1) & (cols + patch > x0)
            assert on_text.any() == (image in set(index["image"]))
            assert mask[on_text].all(), (split, image, (y0, x0, y1, x1))
            if on_text.any() and y0 >= size // 2:
                bottom_text.add(split)
    assert "train" in bottom_text  # the split the audit searches holds text in the bottom-left corner


def _text_patch(p: int, size: int) -> np.ndarray:
    """The top-left corner of an X-ray with this patient's burned-in text, downsampled like a patch store."""
    from gastrodistill.data.synthetic.burn_in import burn_in_text

    canvas = np.full((800, 800), 3000, np.uint16)
    burn_in_text(canvas, [f"NAME{p:03d} PERSON", f"ID P{p:07d}  F", "DOB 1950-01-01"], "top-left")
    crop = canvas[:128, :128].astype(np.float32) / 65535.0
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def test_text_corner_copy_is_flagged_and_noise_is_not():
    rng = np.random.default_rng(0)
    size, splits, pids, masks = 32, {}, {}, {}
    for split, n_pat in (("train", 16), ("val", 2), ("test", 4)):
        xs, ys, ids, mask = [], [], [], []
        for p in range(n_pat):
            for k in range(6):
                text = k == 0
                xs.append(_text_patch(p, size) if text else structured_patch(rng, k % 3, size))
                ys.append(0 if text else k % 3)
                ids.append(f"{split}-{p}")
                mask.append(text)
        splits[split] = (np.asarray(xs, np.float32)[:, None], np.asarray(ys))
        pids[split], masks[split] = np.asarray(ids), np.asarray(mask)
    dm = PatientDM(splits, pids, text_masks=masks, batch_size=32, eval_batch_size=40)
    mask = text_patch_mask(dm, "top-left", (0.1, 0.5))
    assert mask.sum() == 16
    planted = dm.load_split("train", [int(np.flatnonzero(mask)[3])])[0]
    queries = torch.cat([planted, noise_set(dm).images.detach()[:3]])
    rep = text_region_similarity(dm, {"s": queries}, mask, reference_size=64)
    summary = rep.summary("s")
    assert rep.sets["s"][0] == pytest.approx(1.0, abs=1e-4)
    assert (
        rep.sets["s"][0] > summary["text_ordinary_p99"]
        and rep.sets["s"][1:].max() < summary["text_ordinary_p99"]
    )
    assert (
        summary["text_text_median"] > summary["text_ordinary_p99"]
    )  # other patients' text corners look alike
    assert summary["text_frac_above_ordinary_p99"] == pytest.approx(0.25)
    # only the planted copy lies above the other patients' text corners: one query of four
    assert summary["text_frac_above_text_median"] == pytest.approx(0.25)
    assert summary["text_nearest_max"] == pytest.approx(rep.sets["s"][0])
    assert summary["text_nearest_mean"] == pytest.approx(sum(rep.sets["s"]) / 4)


def test_private_strings_of_a_folder_collection_hold_its_file_names(tmp_path):
    """Without a manifest (``data=folder``: class folders of images) only the root path and DICOM headers
    were collected, so an artifact holding a file name such as a patient's was not caught; each file's
    name and path below the root now are, and the class folders' own names (which cards carry) are not."""
    root = tmp_path / "site"
    (root / "pneumonia").mkdir(parents=True)
    (root / "normal").mkdir()
    (root / "pneumonia" / "DOE_JANE_0042.png").write_bytes(b"x")
    (root / "normal" / "SMITH_JOHN_0007.png").write_bytes(b"x")
    values = set(private_strings(None, root).values)
    assert {"DOE_JANE_0042.png", "pneumonia/DOE_JANE_0042.png", "SMITH_JOHN_0007.png"} <= values
    assert "normal/SMITH_JOHN_0007.png" in values and not {"pneumonia", "normal"} & values
