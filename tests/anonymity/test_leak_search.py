"""Private strings are found as tokens of their own, not inside numbers, hashes or longer words; a header
attribute that names no one may be left out of the search; the data folder's name is kept out of the names
a run is shared under."""

from __future__ import annotations

import json
import re

import pytest
from _anon_data import IMAGE_NAME, make_dm, noise_set, rewrite_header, write_dicom_root
from omegaconf import OmegaConf

from gastrodistill.anonymity.config_check import AuditConfigError, check_audit_config
from gastrodistill.anonymity.text_check import (
    TextCheckError,
    check_ignored_attributes,
    private_strings,
    source_name,
)
from gastrodistill.sharing.artifact import ArtifactError, save_artifact
from gastrodistill.sharing.card import CardError, find_strings
from gastrodistill.sharing.publish import check_logged_names_in_data, publish_artifact

TEXT = (
    '{"mean": [0.3252944580610022], "hash": "ae9770b1", "standard": {"lr": 0.1}, "x": 3.120000, '
    '"who": "patient1002", "file": "kowalski_01.png", "site": "site-4455", "n": 2200, "price": 1003.5}'
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
def test_a_string_is_found_only_as_a_token_of_its_own(encoding):
    blob = {"card.json": TEXT.encode(encoding)}
    expected = {  # by reading TEXT: found where no letter, digit or decimal point runs on from its ends
        "2944": False,  # inside a float's digits
        "0610022": False,  # a float's last digits: preceded by a digit
        "9770": False,  # between a hash's letters
        "1003": False,  # a float's integer part
        "120000": False,  # the fraction of 3.120000
        "atient": False,  # inside a word
        "STANDARD": True,  # the card's own key, any case: a whole token
        "1002": False,  # patient1002: the letters run on into the digits
        "patient1002": True,
        "Kowalski": True,  # before '_'
        "4455": True,  # after '-'
        "2200": True,  # a count of the card equal to a numeric id: a whole token (the message says so)
        "0.3252944580610022": True,
    }
    hits = {s for _, i in find_strings(blob, list(expected)) for s in [list(expected)[i]]}
    assert hits == {s for s, found in expected.items() if found}


def test_the_search_agrees_with_a_plain_token_reading_of_json():
    """An independent reading of every 4-digit run of TEXT, by a regex over the decoded text (not the bytes):
    a run is a token when no letter or digit touches it and no decimal point and digit either."""
    runs = {TEXT[i : i + 4] for i in range(len(TEXT) - 3) if TEXT[i : i + 4].isdigit()}
    found = {list(runs)[i] for _, i in find_strings({"c": TEXT.encode()}, list(runs))}
    token = {
        r for r in runs if re.search(rf"(?<![0-9A-Za-z])(?<![0-9]\.){r}(?![0-9A-Za-z])(?!\.[0-9])", TEXT)
    }
    assert found == token == {"2200", "4455"}


def _with_kernel(root, kernel="STANDARD"):
    secrets = write_dicom_root(root)
    rewrite_header(root, ConvolutionKernel=kernel)
    return secrets


def test_ignore_attributes_leaves_out_a_technical_header_value_and_nothing_else(tmp_path):
    secrets = _with_kernel(tmp_path / "src")
    full = private_strings(None, tmp_path / "src")
    assert (
        "STANDARD" in full.values and full.kinds[full.values.index("STANDARD")] == "dicom:ConvolutionKernel"
    )
    less = private_strings(
        None, tmp_path / "src", ignore_attributes=check_ignored_attributes(["ConvolutionKernel"])
    )
    assert set(full.values) - set(less.values) == {"STANDARD"}
    assert secrets["PatientName"] in less.values
    for keyword, why in [
        ("PatientName", "may not be left out of the search"),  # a person name
        ("StudyInstanceUID", "may not be left out of the search"),  # a UID
        ("InstitutionName", "may not be left out of the search"),  # the site
        ("PatientTelephoneNumbers", "may not be left out of the search"),  # a breaker's list
        ("StudyDate", "may not be left out of the search"),
        ("PatientComments", "may not be left out of the search"),
        ("ConvKernel", "is no DICOM keyword"),
    ]:
        with pytest.raises(TextCheckError, match=why):
            check_ignored_attributes([keyword])
    with pytest.raises(AuditConfigError, match="must be a list of DICOM keywords"):
        check_audit_config({"text": {"ignore_attributes": "ConvolutionKernel"}})
    with pytest.raises(AuditConfigError, match="'ConvKernel' is no DICOM keyword"):
        check_audit_config({"text": {"ignore_attributes": ["ConvKernel"]}})


def test_a_kernel_named_like_a_card_word_is_named_with_the_way_out(tmp_path, compose_cfg):
    """A GE kernel ``STANDARD`` matched the card's ``"standard"`` and refused every artifact; the refusal now
    names the attribute and the setting, and with it the artifact is written, holding no other string."""
    _with_kernel(tmp_path / "src")
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    cfg = compose_cfg([f"paths.data_root={tmp_path / 'src'}", "model=lenet"])
    with pytest.raises(ArtifactError) as info:
        publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / "a", archive=False)
    text = str(info.value)
    assert text.startswith(
        "1 private string(s) (dicom:ConvolutionKernel) found in ['card.json']; nothing was"
    )
    assert "audit.text.ignore_attributes=[ConvolutionKernel]" in text and "STANDARD" in text  # the example
    assert not (tmp_path / "a").exists()
    cfg = compose_cfg(
        [
            f"paths.data_root={tmp_path / 'src'}",
            "model=lenet",
            "audit.text.ignore_attributes=[ConvolutionKernel]",
        ]
    )
    out = publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / "a", archive=False)
    assert '"standard"' in (out / "card.json").read_text().lower()


def test_a_numeric_patient_id_inside_the_cards_numbers_is_no_leak(tmp_path):
    """Numeric ids (1000-1007 at a site) matched the digits of the card's floats: every 4-digit run inside
    the card's numbers and hashes is now passed as a private string, and the artifact is still written."""
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    fields = {
        "architecture": {"_target_": "gastrodistill.models.LeNet"},
        "training_recipe": {},
        "source_hash": dm.source_hash(),
    }
    first = save_artifact(tmp_path / "a", noise_set(dm), fields)
    card = (first / "card.json").read_text()
    inside = sorted({m.group(1) for m in re.finditer(r"(?=[0-9a-f.](\d{4})[0-9a-f.])", card)})
    assert len(inside) > 50  # the card's floats and hashes hold many
    save_artifact(tmp_path / "b", noise_set(dm), fields, forbidden_strings=inside)
    assert json.loads((tmp_path / "b" / "card.json").read_text()) == json.loads(card)
    with pytest.raises(
        ArtifactError, match=r"\(patient_id\).*replace the manifest's patient ids with pseudonyms"
    ):
        save_artifact(
            tmp_path / "c",
            noise_set(dm),
            {**fields, "description": "site 1002"},
            forbidden_strings=["1002"],
            forbidden_kinds=["patient_id"],
        )


def test_the_data_folders_own_name_is_refused_as_experiment_name(tmp_path, compose_cfg):
    root = tmp_path / "StMaryHospital_gastric"
    write_dicom_root(root)
    assert source_name(root) == "StMaryHospital_gastric"
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"x")
    assert source_name(tmp_path / "pneumoniamnist.npz") is None  # a file: public data sets come as files
    assert source_name(tmp_path / "nothing_here") is None  # a config's default root, data held in memory
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    for name in ("StMaryHospital_gastric", "stmaryhospital_gastric_v2"):
        cfg = compose_cfg([f"paths.data_root={root}", f"experiment_name={name}"])
        with pytest.raises(
            CardError, match=r"experiment_name holds a private string of the data \(data folder name\)"
        ):
            check_logged_names_in_data(cfg, dm)
    check_logged_names_in_data(compose_cfg([f"paths.data_root={root}", "experiment_name=site_a"]), dm)
    (root / "synthetic_info.json").write_text("{}")  # a generated collection is named after its preset
    assert source_name(root) is None
    check_logged_names_in_data(
        compose_cfg([f"paths.data_root={root}", "experiment_name=StMaryHospital_gastric"]), dm
    )


@pytest.mark.parametrize(
    ("text", "value", "found"),
    [
        ("caseP6934814", "P6934814", True),  # a long mixed id glued to letters is no chance match
        ("P6934814b", "P6934814", True),
        ("name MÜLLER", "MÜLLER", True),  # bytes.lower() leaves non-ASCII capitals as they are
        ("name müller", "MÜLLER", True),
        ('{"who": "M\\u00fcller"}', "Müller", True),  # as json.dumps writes the card
        ("zürich_klinik_v1", "ZÜRICH_Klinik", True),
        ('{"patient": 1002.0}', "1002", True),  # an id a table read as a float
        ("1002.05", "1002", False),
        ("ae1002b", "1002", False),  # digits of a hash
        ("channels", "Chan", False),  # a short name part inside a word
    ],
)
def test_spellings_and_glued_ids(text, value, found):
    import unicodedata

    for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
        assert bool(find_strings({"f": text.encode(encoding)}, [value])) is found, encoding
    if not value.isascii():  # decomposed accents and Latin-1 bytes too
        assert find_strings({"f": unicodedata.normalize("NFD", text).encode()}, [value])
        assert find_strings({"f": text.encode("latin-1", "ignore")}, [value]) or "\\u" in text


@pytest.mark.parametrize("key", ["audit.sets", "eval.distilled_dirs"])
def test_a_set_name_holding_a_private_string_is_refused_without_spelling_it(tmp_path, compose_cfg, key):
    """A set's name goes into every logged metric (``audit/<name>/...``), the results table and its card: a
    patient id or the data folder's name as a set name reached the W&B run, and the artifact's own check
    exempts the folder's name. The refusal names the key and the kind, never the string."""
    from omegaconf import open_dict

    root = tmp_path / "StMaryHospital_gastric"
    secrets = write_dicom_root(root)
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    for name, kind in [
        (secrets["PatientID"], "patient_id"),
        (secrets["AccessionNumber"], "dicom:AccessionNumber"),  # the attribute is named: no value
        ("StMaryHospital_gastric", "data folder name"),
        ("stmaryhospital_gastric_2", "data folder name"),
    ]:
        cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=site_a"])
        with open_dict(cfg):
            cfg[key.split(".")[0]][key.split(".")[1]] = {"soft": "a", name: "b"}
        with pytest.raises(CardError) as info:
            check_logged_names_in_data(cfg, dm)
        text = str(info.value)
        assert text.startswith(f"{key}: set name 2 holds a private string of the data ({kind})"), text
        assert name.lower() not in text.lower()
        assert f"{key}={{soft: ...}}" in text
    cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=site_a"])
    with open_dict(cfg):
        cfg[key.split(".")[0]][key.split(".")[1]] = {"soft": "a", "hard_v2": "b"}
    check_logged_names_in_data(cfg, dm)  # ordinary set names pass


def test_a_multi_word_value_is_found_with_its_words_joined_as_names_join_them():
    """``Kitamachi General Hospital`` in a header reached a card as ``KITAMACHI_GENERAL_HOSPITAL`` (an
    experiment name) unseen: its words are searched joined by a space, ``_``, ``-``, ``.`` or nothing."""
    from gastrodistill.sharing.card import word_joins

    value = "Kitamachi General Hospital"
    for text in (
        "soft set (KITAMACHI_GENERAL_HOSPITAL)",
        "kitamachi-general-hospital_v2",
        "KitamachiGeneralHospital",
        "kitamachi.general.hospital",
        "kitamachi general hospital",
    ):
        assert find_strings({"c": text.encode()}, [value]) == [("c", 0)], text
    assert not find_strings({"c": b"general_hospital kitamachi"}, [value])  # the words, not the name
    assert word_joins("1.2.840.10008.99") == {"1.2.840.10008.99"}  # a UID: one form
    assert word_joins("19420817") == {"19420817"}
    assert word_joins("images/P1_scan-01.png") == {"images/P1_scan-01.png"}  # no space: a path, one form
    # a path written on Windows, as json.dumps writes it into a card (its backslashes doubled)
    card = json.dumps({"x": "images\\P2882376\\scan_01.png"}).encode()
    assert find_strings({"card.json": card}, ["images\\P2882376\\scan_01.png"]) == [("card.json", 0)]
    assert word_joins("Zyxwvut Qwerty-Lee") == {
        "Zyxwvut Qwerty-Lee",
        "Zyxwvut Qwerty Lee",
        "Zyxwvut_Qwerty_Lee",
        "Zyxwvut-Qwerty-Lee",
        "Zyxwvut.Qwerty.Lee",
        "ZyxwvutQwertyLee",
    }


def _name_warnings(compose_cfg, root, dm, name, caplog) -> list[str]:
    """The name check's warnings for ``experiment_name=name`` on the data in ``root`` (it must pass)."""
    caplog.clear()
    with caplog.at_level("WARNING", logger="gastrodistill.sharing.publish"):
        check_logged_names_in_data(compose_cfg([f"paths.data_root={root}", f"experiment_name={name}"]), dm)
    return [r.getMessage() for r in caplog.records if "of the data; it goes into what" in r.getMessage()]


def test_a_sites_distinctive_word_in_a_name_is_warned_about_and_its_whole_name_refused(
    tmp_path, compose_cfg, caplog
):
    """``experiment_name=kitamachi`` names the Kitamachi General Hospital: a name holding a distinctive word
    of the InstitutionName (``Hospital Wqxzvb`` here) is warned about, naming the key and the attribute,
    never the word (not refused: such words are often ordinary, ``cross`` of a Red Cross hospital); the
    whole value with its words joined is refused; generic words (``hospital``) are not even said."""
    from gastrodistill.anonymity.text_check import site_words

    assert site_words("Kitamachi General Hospital") == ["kitamachi"]
    assert site_words("St. Mary's Hospital, Dept. of Radiology 2") == ["mary"]
    root = tmp_path / "export_2024"
    write_dicom_root(root)
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=HOSPITAL_WQXZVB"])
    with pytest.raises(CardError, match=r"experiment_name holds a private string of the data \(dicom:Inst"):
        check_logged_names_in_data(cfg, dm)
    for name in ("wqxzvb", "WQXZVB_gastric_2024"):
        assert _name_warnings(compose_cfg, root, dm, name, caplog) == [
            "experiment_name holds word of dicom:InstitutionName of the data; it goes into what this run "
            "logs and shares (for experiment_name and set names, every artifact's card): if it names the "
            "site or a patient, choose another"
        ], name
    for name in ("hospital_study", "site_a", "wqxzvbz"):  # a generic word; another word containing it
        assert _name_warnings(compose_cfg, root, dm, name, caplog) == [], name


def _two_patients(root, first: str, second: str):
    """DATA_ROOT of :func:`write_dicom_root` with its DICOM copied, the two images of patients ``first`` and
    ``second`` in the manifest."""
    import shutil

    write_dicom_root(root)
    shutil.copy(root / IMAGE_NAME, root / "images" / "second.dcm")
    rows = [f"{IMAGE_NAME},{first},gastritis", f"images/second.dcm,{second},gastritis"]
    (root / "manifest.csv").write_text("image,patient_id,diagnosis\n" + "\n".join(rows) + "\n")
    return root


def test_short_patient_ids_in_names_are_warned_about_and_counted_in_the_report(tmp_path, compose_cfg, caplog):
    """Ids ``001``..: too short for the artifact search (``min_length`` 4), they were dropped silently, and
    ``experiment_name=patient_012`` reached the card unsaid. A name holding such an id of 3 characters or
    more as a token of its own is warned about (not refused: ``steps_100`` holds one too); the report
    counts the distinct ids it could not search and says what to do."""
    from gastrodistill.anonymity.report import private_string_lines
    from gastrodistill.anonymity.text_check import config_private_strings

    root = _two_patients(tmp_path / "export_2024", "012", "07")
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    (said,) = _name_warnings(compose_cfg, root, dm, "patient_012", caplog)
    cfg = compose_cfg([f"paths.data_root={root}"])
    assert said.startswith("experiment_name holds short patient_id of the data;") and "012" not in said
    for name in ("run_12", "v0120", "site_a", "run_07"):  # not the id as a token; a 2-character id
        assert _name_warnings(compose_cfg, root, dm, name, caplog) == [], name

    strings = config_private_strings(cfg, dm)
    assert "012" not in strings.values and strings.short_patient_ids() == ["012", "07"]
    lines = private_string_lines(strings, 4, {"soft": []}, ["soft"])
    assert lines[1].startswith("**Among them, 2 distinct patient id(s) were not searched**")
    assert "012" not in "\n".join(lines) and "07" not in "\n".join(lines)
    assert lines[2] == "- soft: no private string found"
    long_ids = config_private_strings(compose_cfg([f"paths.data_root={tmp_path / 'other'}"]), dm)
    assert long_ids.short_patient_ids() == []
    assert len(private_string_lines(long_ids, 4, {"soft": []}, ["soft"])) == 2  # no such line


def test_a_config_value_the_loggers_get_is_searched_for_the_datas_private_strings(tmp_path, compose_cfg):
    """Every text value of the config goes to the loggers (W&B's run config, ``hparams.yaml``): a patient id
    in a key of the user's (``+eval.comment=...``) or a DICOM person name in W&B's ``notes`` reached the W&B
    run unchecked, while the same id in ``experiment_name`` was refused (a breaker's finding). Such a value
    is refused naming the key and the kind, never the string. The data folder's own name is not searched
    there (an ordinary value, such as a data set's name, may equal it), and ordinary values pass."""
    from omegaconf import open_dict

    from gastrodistill.sharing.publish import logged_config_values

    root = tmp_path / "gastric"
    secrets = write_dicom_root(root)
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    for key, value, kind in [
        ("eval.comment", f"pilot run for {secrets['PatientID']}", "patient_id"),
        ("logger.wandb.notes", secrets["PatientName"].replace("^", " "), "dicom:PatientName"),
        ("distill.note", secrets["AccessionNumber"], "dicom:AccessionNumber"),
    ]:
        cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=site_a", "logger=wandb"])
        with open_dict(cfg):
            OmegaConf.update(cfg, key, value, force_add=True)
        assert logged_config_values(cfg)[key] == value  # what the loggers would be given
        with pytest.raises(CardError) as info:
            check_logged_names_in_data(cfg, dm)
        text = str(info.value)
        assert text.startswith(f"{key} holds a private string of the data ({kind})"), text
        assert value.lower() not in text.lower()
    cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=site_a", "logger=wandb"])
    with open_dict(cfg):
        cfg.eval.comment = "gastric"  # the data folder's name, as a data set's name would be
        cfg.logger.wandb.notes = "lr sweep, second try"
    check_logged_names_in_data(cfg, dm)


def test_a_private_config_value_right_after_another_value_is_found_and_lists_are_searched(
    tmp_path, compose_cfg
):
    """The config's values are searched together first: a name part (found only as a word of its own)
    that follows a value ending in a letter is still a word (the values are not glued together), and a
    value inside a list (``+eval.notes=[...]``) is searched too."""
    from omegaconf import open_dict

    root = tmp_path / "gastric"
    secrets = write_dicom_root(root)
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    family = secrets["PatientName"].split("^")[0]  # letters only: a word of its own, never inside one
    for values, key, kind in (
        ({"note_a": "abc", "note_b": family}, "eval.note_b", "dicom:PatientName"),
        ({"notes": ["fine", f"for {secrets['PatientID']}"]}, "eval.notes[1]", "patient_id"),
    ):
        cfg = compose_cfg([f"paths.data_root={root}", "experiment_name=site_a"])
        with open_dict(cfg):
            for k, v in values.items():
                cfg.eval[k] = v
        with pytest.raises(CardError, match=rf"^{re.escape(key)} holds a private string of the data") as info:
            check_logged_names_in_data(cfg, dm)
        assert kind in str(info.value).split("(")[1], str(info.value)


def test_a_long_patient_id_inside_a_word_of_a_name_is_warned_about(tmp_path, compose_cfg, caplog):
    """The search finds an id only as a token of its own (``1002`` is no match in ``ae1002b``), so
    ``experiment_name=pt4471902`` reached the cards unsaid with the id ``4471902`` (a breaker's finding).
    An id of 6 characters or more holding a digit is now warned about inside a word of a name (key and
    kind, never the id); shorter ids, which sit inside ordinary numbers, are not; as a token of its own
    the id is refused, as before."""
    root = _two_patients(tmp_path / "export_2024", "4471902", "12345")
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    for name in ("pt4471902", "ward4471902b_v2", "PT4471902"):
        (said,) = _name_warnings(compose_cfg, root, dm, name, caplog)
        assert said.startswith("experiment_name holds a patient_id inside a word of the data;"), said
        assert "4471902" not in said
    for name in ("pt12345", "run_447190", "site_a"):  # a 5-character id; a part of the long one
        assert _name_warnings(compose_cfg, root, dm, name, caplog) == [], name
    with pytest.raises(CardError, match=r"experiment_name holds a private string of the data \(patient_id\)"):
        check_logged_names_in_data(compose_cfg([f"paths.data_root={root}", "experiment_name=pt_4471902"]), dm)


def test_logged_names_are_every_name_a_run_is_logged_and_shared_under(compose_cfg):
    """experiment_name, each set name of both set keys, and the project, group and each tag of every W&B
    logger (whatever its class is spelt like); the CSV logger names nothing on a server."""
    from omegaconf import open_dict

    from gastrodistill.sharing.publish import logged_names

    cfg = compose_cfg(
        [
            "logger=default",
            "experiment_name=site_a",
            "logger.wandb._target_=pytorch_lightning.loggers.WandbLogger",
            "logger.wandb.project=proj",
            "logger.wandb.group=grp",
            "logger.wandb.tags=[t1,t2]",
        ]
    )
    with open_dict(cfg):
        cfg.audit.sets = {"soft": "a", "hard": "b"}
        cfg.eval.distilled_dirs = {"mean": "c"}
    assert logged_names(cfg) == {
        "experiment_name": "site_a",
        "eval.distilled_dirs: set name 1": "mean",
        "audit.sets: set name 1": "soft",
        "audit.sets: set name 2": "hard",
        "logger.wandb.project": "proj",
        "logger.wandb.group": "grp",
        "logger.wandb.tags[0]": "t1",
        "logger.wandb.tags[1]": "t2",
    }


def test_a_wandb_tag_of_64_characters_is_taken_and_a_longer_tag_or_a_path_as_project_refused(compose_cfg):
    """W&B takes tags of at most 64 characters; a W&B project is checked like experiment_name (a path is
    refused) though neither holds a private string."""
    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    base = ["logger=default", "experiment_name=site_a"]
    check_logged_names_in_data(compose_cfg([*base, f"logger.wandb.tags=[{'t' * 64}]"]), dm)
    for override, message in (
        (f"logger.wandb.tags=[{'t' * 65}]", r"logger.wandb.tags\[0\] is 65 characters long; W&B takes tags"),
        ("logger.wandb.project=/home/jane/x", "logger.wandb.project: the value contains a path separator"),
    ):
        with pytest.raises(CardError, match=message):
            check_logged_names_in_data(compose_cfg([*base, override]), dm)


def test_the_data_modules_own_patient_ids_are_refused_in_names_and_redacted_values_are_not_searched(
    compose_cfg,
):
    """Patient ids the data module holds (an ``.npz`` has no manifest to read them from) are private
    strings of the names check too; the config values the loggers get leave out what they redact."""
    from gastrodistill.sharing.publish import logged_config_values
    from gastrodistill.utils.privacy import REDACTED

    dm = make_dm(patients=(2, 1, 1), per_patient=2)
    pid = str(dm.patient_ids("test")[0])
    with pytest.raises(CardError, match=r"experiment_name holds a private string of the data \(patient_id\)"):
        check_logged_names_in_data(compose_cfg([f"experiment_name={pid}"]), dm)
    cfg = compose_cfg(["+eval.comment=/data/StMary/notes", "+eval.label=pilot"])
    values = logged_config_values(cfg)
    assert values["eval.label"] == "pilot" and "eval.comment" not in values
    assert REDACTED not in values.values()
