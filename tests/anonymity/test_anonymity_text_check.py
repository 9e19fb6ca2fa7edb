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
    ncc_matrix,
    noise_set,
    rewrite_header,
    structured_patch,
    write_dicom_root,
)

from gastrodistill.anonymity.text_check import (
    PrivateStrings,
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


# ---- gaps a mutation review found: each test fails on one plausible slip in text_check ----------------
#: One header attribute per value representation that carries names, dates, free text or identifiers
#: (PS3.5 6.2), with a distinctive made-up value each.
_ONE_PER_VR = {
    "PN": ("OperatorsName", "Vrrqzt^Onna"),
    "LO": ("StudyDescription", "Qzvx gastric follow-up"),
    "SH": ("StationName", "QZSTATION7"),
    "DA": ("StudyDate", "20230514"),
    "DT": ("AcquisitionDateTime", "20230514142233"),
    "TM": ("StudyTime", "142233"),
    "UI": ("StudyInstanceUID", "1.2.840.113619.2.55.3.6046881.969"),  # a vendor (GE) root under 1.2.840
    "AE": ("RetrieveAETitle", "QZPACS01"),
    "LT": ("AdditionalPatientHistory", "Qzvx smoker since 1970"),
    "ST": ("InstitutionAddress", "12 Qwzx Street, Wqxzvb"),
    "UT": ("TextValue", "Qzvx free text of the report"),
    "AS": ("PatientAge", "067Y"),
}


def test_a_value_of_every_identifying_value_representation_is_collected(tmp_path):
    """Ages, times, date-times, AE titles and long texts name or date a patient as names do; a vendor's UID
    (``1.2.840.113619...``) is no standard UID (``1.2.840.10008...``) and identifies the study."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    write_dicom_root(tmp_path / "src")
    for vr, (keyword, _) in _ONE_PER_VR.items():
        assert dictionary_VR(tag_for_keyword(keyword)) == vr, keyword  # the table holds what it says
    rewrite_header(tmp_path / "src", **{keyword: value for keyword, value in _ONE_PER_VR.values()})
    strings = private_strings(None, tmp_path / "src")
    for vr, (keyword, value) in _ONE_PER_VR.items():
        assert value in strings.values, vr
        assert strings.kinds[strings.values.index(value)] == f"dicom:{keyword}", vr
    assert "1.2.840.10008.5.1.4.1.1.7" not in strings.values  # the SOP class: a standard UID


def test_each_component_of_every_group_of_a_person_name_is_collected(tmp_path):
    """A Japanese site writes names in three component groups (alphabetic=ideographic=phonetic, PS3.5
    6.2.1.2): each group's family and given name is searched for on its own, as for a one-group name."""
    import re

    name = "Kitagawa^Hanako=北川^花子さん=きたがわ^はなこさん"
    write_dicom_root(tmp_path / "src")
    rewrite_header(tmp_path / "src", SpecificCharacterSet="ISO_IR 192", PatientName=name)
    values = set(private_strings(None, tmp_path / "src").values)
    parts = {p for p in re.split(r"[=^]", name) if len(p) >= 4}
    assert {"Kitagawa", "Hanako", "花子さん", "きたがわ", "はなこさん"} == parts
    assert parts | {name} <= values


def test_a_string_of_exactly_min_length_is_searched_and_surrounding_spaces_are_not_part_of_it(tmp_path):
    """``min_length`` is the shortest searched length; a value is searched for without the spaces around
    it (a padded header value, an id typed with a space), which the artifact does not hold."""
    strings = PrivateStrings()
    for value in ("QX12", "  QX-778899 ", "QX1", "   "):
        strings.add(value, "patient_id", 4)
    assert strings.values == ["QX12", "QX-778899"] and strings.too_short == 1
    assert strings.short == {"QX1": "patient_id"}
    (tmp_path / "card.json").write_text('{"note": "QX-778899", "other": "QX12"}')
    hits = scan_for_strings([tmp_path / "card.json"], strings)
    assert sorted(h["kind"] for h in hits) == ["patient_id", "patient_id"]


def test_the_patient_ids_of_every_split_are_private_strings():
    """Validation and test patients are patients too: their ids must not reach an artifact either."""
    dm = make_dm(patients=(2, 2, 3), per_patient=2)
    every = np.unique(np.concatenate([dm.patient_ids(s) for s in ("train", "val", "test")]))
    assert len(every) == 7
    strings = private_strings(dm, None)
    assert sorted(strings.values) == sorted(every) and set(strings.kinds) == {"patient_id"}


def test_a_single_source_files_name_and_path_are_private_strings(tmp_path, monkeypatch):
    """A data set given as one file (``data.path=...npz``): its name may name the site or a patient, and
    its absolute path is searched even when the config gives it relative to the working folder."""
    path = tmp_path / "StMary_Wqxzvb_2023.npz"
    np.savez(path, x=np.zeros(3))
    monkeypatch.chdir(tmp_path)
    values = set(private_strings(None, path.name).values)
    assert {"StMary_Wqxzvb_2023.npz", str(path.resolve())} <= values


def test_max_dicom_files_reads_that_many_headers(tmp_path):
    """``audit.text.max_dicom_files=1`` reads one header (the first file's), not none."""
    secrets = write_dicom_root(tmp_path / "src")
    assert secrets["PatientName"] in private_strings(None, tmp_path / "src", max_dicom_files=1).values
    assert secrets["PatientName"] not in private_strings(None, tmp_path / "src", max_dicom_files=0).values


def test_config_private_strings_read_the_audit_text_settings_and_their_defaults(tmp_path):
    """``config_private_strings`` of a config that sets no ``audit.text`` uses the documented defaults
    (``min_length`` 4, as ``conf/audit/default.yaml``; every DICOM header); ``max_dicom_files`` of the
    config is obeyed."""
    from omegaconf import OmegaConf

    from gastrodistill.anonymity.text_check import config_private_strings

    secrets = write_dicom_root(tmp_path / "src")
    for name in ("abc", "abcd"):
        (tmp_path / "src" / name).write_bytes(b"x")
    (tmp_path / "src" / "manifest.csv").unlink()  # every file below the root is looked at
    data = {"data": {"root": str(tmp_path / "src")}}
    strings = config_private_strings(OmegaConf.create(data), None)
    assert "abcd" in strings.values and "abc" not in strings.values
    assert secrets["PatientName"] in strings.values
    none = config_private_strings(OmegaConf.create({**data, "audit": {"text": {"max_dicom_files": 0}}}), None)
    assert secrets["PatientName"] not in none.values and "abcd" in none.values


def test_only_short_patient_ids_are_reported_as_such():
    """A short header value or path is no patient id: it is neither warned about as one in the names a
    run is shared under nor counted as one in the audit's report."""
    strings = PrivateStrings()
    strings.add("P07", "patient_id", 4)
    strings.add("67Y", "dicom:PatientAge", 4)
    strings.add("a.b", "path", 4)
    assert strings.short_patient_ids() == ["P07"]


def test_embedded_patient_ids_are_those_of_six_characters_or_more_holding_a_digit():
    """``MIN_EMBEDDED_ID_LENGTH`` (6) is the shortest id warned about inside a word; an id with letters
    and digits (``AB1234``) counts, an id without a digit or a header value does not."""
    from gastrodistill.anonymity.text_check import embedded_patient_ids

    strings = PrivateStrings()
    for pid in ("447190", "44719", "ABCDEF", "AB1234"):
        strings.add(pid, "patient_id", 4)
    strings.add("1234567", "dicom:AccessionNumber", 4)
    assert embedded_patient_ids(strings) == ["447190", "AB1234"]


def test_site_words_are_runs_of_letters_from_every_site_attribute():
    """Each of the four site attributes gives its distinctive words (runs of four letters or more, digits
    and ``_`` separate them, lower-cased, generic words left out), each under its own kind."""
    from gastrodistill.anonymity.text_check import name_warning_strings, site_words

    value = "Kitamachi3 Hospital_Tokyo-East"
    letters = "".join(c if c.isalpha() else " " for c in value).lower().split()
    assert letters == ["kitamachi", "hospital", "tokyo", "east"]
    assert site_words(value) == ["kitamachi", "tokyo"]  # hospital and east are generic
    strings = PrivateStrings()
    site = {
        "InstitutionName": "Qorvale General Hospital",
        "InstitutionAddress": "12 Brindlewick Road",
        "InstitutionalDepartmentName": "Zanterbury Radiology",
        "IssuerOfPatientID": "Mossgrave Clinic",
    }
    for keyword, v in site.items():
        strings.add(v, f"dicom:{keyword}", 4)
    strings.add("Plonkit^Vrrm", "dicom:PatientName", 4)  # a person, not the site: refused, not warned
    warned = name_warning_strings(strings)
    assert dict(zip(warned.values, warned.kinds, strict=True)) == {
        "qorvale": "word of dicom:InstitutionName",
        "brindlewick": "word of dicom:InstitutionAddress",
        "zanterbury": "word of dicom:InstitutionalDepartmentName",
        "mossgrave": "word of dicom:IssuerOfPatientID",
    }


def test_files_of_the_same_name_in_two_artifact_folders_are_each_searched_and_named(tmp_path):
    """Two artifacts scanned together both hold ``card.json``: each is searched (the second must not
    stand in for the first) and each row names its folder."""
    for name, note in (("soft", "from QX-778899"), ("hard", "clean")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(f'{{"description": "{note}"}}')
    strings = PrivateStrings()
    strings.add("QX-778899", "patient_id", 4)
    rows = scan_for_strings([tmp_path / "soft", tmp_path / "hard"], strings)
    assert rows == [{"file": "soft/card.json", "kind": "patient_id"}]


def test_text_corners_names_each_corner_once_in_the_order_given():
    """The audit's report names the corners searched from this: a corner listed twice is named once."""
    from gastrodistill.anonymity.text_check import text_corners

    given = ["bottom-left", "top-left", "bottom-left"]
    assert text_corners(given) == ("bottom-left", "top-left")
    assert text_corners("top-right") == ("top-right",)
    with pytest.raises(TextCheckError, match=r"audit.text.corner = \[\]"):
        text_corners([])


def test_a_patch_touching_the_text_box_edge_does_not_overlap_it():
    """Patches and the text box are half-open pixel ranges: a patch that ends where the box begins (or
    begins where it ends) holds no text pixel. The expected mask is counted pixel by pixel here."""
    size, patch, (bh, bw) = 1000, 50, (0.1, 0.2)
    rows = np.array([100, 99, 0, 0, 850, 851, 950, 950])
    cols = np.array([0, 0, 200, 199, 950, 950, 750, 751])
    boxes = {"top-left": (0, 100, 0, 200), "bottom-right": (900, 1000, 800, 1000)}  # y0, y1, x0, x1
    for corner, (y0, y1, x0, x1) in boxes.items():
        expected = [
            any(y0 <= y < y1 for y in range(r, r + patch)) and any(x0 <= x < x1 for x in range(c, c + patch))
            for r, c in zip(rows, cols, strict=True)
        ]
        got = patches_in_corner(rows, cols, patch, np.full(8, size), np.full(8, size), corner, (bh, bw))
        np.testing.assert_array_equal(got, expected, err_msg=corner)
    assert [bool(v) for v in got] == [False, False, False, False, False, True, False, True]


def test_the_text_box_is_two_fractions_in_0_exclusive_to_1_inclusive():
    """A box of the full width (a text line across the image) is allowed; an empty one is refused."""
    rows, cols, size = np.array([0, 500]), np.array([900, 0]), np.full(2, 1000)
    full = patches_in_corner(rows, cols, 50, size, size, "top-left", (0.1, 1.0))
    np.testing.assert_array_equal(full, [True, False])  # every column of the top tenth
    for box in ((0.0, 0.5), (0.1, 0.0), (1.2, 0.5)):
        with pytest.raises(TextCheckError, match=r"audit.text.box must be two fractions in \(0, 1\]"):
            patches_in_corner(rows, cols, 50, size, size, "top-left", box)


def test_the_text_summary_counts_images_strictly_above_the_ordinary_99th_percentile():
    """``text_frac_above_ordinary_p99``: the share of a set's images above (not at) the 99th percentile
    of the ordinary reference; ``text_frac_above_text_median`` likewise above the text reference's
    median. Percentiles worked out here on references whose quantiles are exact."""
    from gastrodistill.anonymity.text_check import TextRegionReport

    ordinary = np.arange(101, dtype=float)  # its 99th percentile is 99 exactly
    rep = TextRegionReport(
        sets={"s": np.array([99.0, 99.5, 50.0])},
        ordinary=ordinary,
        text=np.array([60.0, 70.0, 80.0]),
        n_text_patches=3,
    )
    summary = rep.summary("s")
    assert summary["text_ordinary_p99"] == 99.0 and summary["text_text_median"] == 70.0
    assert summary["text_frac_above_ordinary_p99"] == pytest.approx(1 / 3)  # 99.5 only: 99.0 is at it
    assert summary["text_frac_above_text_median"] == pytest.approx(2 / 3)  # 99.0 and 99.5 above 70
    assert summary["text_nearest_max"] == 99.5 and summary["text_nearest_mean"] == pytest.approx(248.5 / 3)


def test_text_region_similarity_searches_the_text_patches_only_with_references_of_the_size_asked():
    """Each query's similarity is its best NCC with a text-corner patch (an ordinary patch copied scores
    below 1); the references are ``reference_size`` patches of each kind, and a reference patch with no
    text patch of another patient to compare with is left out rather than counted as -inf."""
    dm = make_dm(patients=(4, 1, 1), per_patient=4)
    pids = dm.patient_ids("train")
    x, _ = dm.load_split("train")
    mask = np.zeros(len(pids), bool)
    mask[[0, 4, 8, 12]] = True  # each patient's first patch holds text
    queries = torch.cat([x[[1, 6]], noise_set(dm).images.detach()[:2]])
    rep = text_region_similarity(dm, {"s": queries}, mask, reference_size=6)
    expected = ncc_matrix(queries.numpy(), x[mask].numpy()).max(axis=1)
    np.testing.assert_allclose(rep.sets["s"], expected, atol=1e-5)
    assert expected[:2].max() < 0.999  # the copied patches are ordinary ones: no text patch equals them
    assert (len(rep.ordinary), len(rep.text), rep.n_text_patches) == (6, 4, 4)

    one_patient = np.zeros(len(pids), bool)
    one_patient[:2] = True  # only patient 0 has text patches: its other patches have no one to compare to
    rep = text_region_similarity(dm, {"s": queries}, one_patient, reference_size=64)
    others = int((pids != pids[0]).sum())
    assert len(rep.ordinary) == others and np.isfinite(rep.ordinary).all() and len(rep.text) == 0


def test_a_patch_stores_text_mask_uses_each_images_own_height_and_width(tmp_path):
    """Images are rarely square: the box is a fraction of the image's height down and of its width
    across, read from the image file (400 x 1000 px here)."""
    from types import SimpleNamespace

    import pandas as pd
    from PIL import Image

    h, w, patch, (bh, bw) = 400, 1000, 100, (0.2, 0.5)
    Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "wide.png")
    rows, cols = np.array([0, 150, 0, 0]), np.array([0, 0, 300, 560])
    index = pd.DataFrame({"image": ["wide.png"] * 4, "row": rows, "col": cols})
    dm = SimpleNamespace(
        store=SimpleNamespace(split_index=lambda split: index),
        spec=SimpleNamespace(data_root=tmp_path, geometry=SimpleNamespace(patch_size=patch)),
    )
    expected = (rows < bh * h) & (cols < bw * w)  # top-left: the box is [0, 80) x [0, 500)
    np.testing.assert_array_equal(expected, [True, False, True, False])
    np.testing.assert_array_equal(text_patch_mask(dm, "top-left", (bh, bw)), expected)
