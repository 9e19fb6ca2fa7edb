"""Burned-in text and header data: show that neither reaches the distilled artifact.

Two checks. (1) Bytes: every string that identifies a patient at the source (patient ids, DICOM
header values such as names, birth dates, accession numbers, institution, UIDs, and the images' file
names and paths) is searched, case-insensitively in UTF-8 and UTF-16, in every byte of the artifact
(zip members decompressed). (2) Pixels: patient text stamped into a corner of the X-ray must not be
reproduced. Training patches that overlap the text corners (``audit.text.corner``: one corner or a
list, as modalities differ in where they stamp) are located from the patch store's grid positions, and
each distilled image's similarity to them is compared with how similar ordinary real patches (of other
patients) are to them; a distilled image above that reference's 99th percentile would be drawing text.

The strings themselves never leave this module's callers' memory: reports name the kind of string
and the file, never the value (nor a hash of it).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gastrodistill.data.base import ImageDataModule
from gastrodistill.data.manifest import MANIFEST_NAME, parse_manifest
from gastrodistill.data.readers import is_dicom

if TYPE_CHECKING:
    from omegaconf import DictConfig

#: DICOM value representations that carry free text, names, dates or identifiers.
IDENTIFYING_VRS = {"PN", "LO", "SH", "DA", "DT", "TM", "UI", "AE", "LT", "ST", "UT", "AS"}
#: Generic UIDs defined by the DICOM standard (transfer syntaxes, SOP classes): not identifying.
_STANDARD_UID_ROOT = "1.2.840.10008."
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def data_root(cfg: DictConfig) -> str | None:
    """The source data of a run config (a folder with header strings and file names, or one file), if set.

    Lives here, not in the audit, so that ``sharing.publish`` and ``anonymity.audit`` both import it
    without importing each other.
    """
    data = cfg.get("data") if hasattr(cfg, "get") else None
    for key in ("root", "path"):
        value = data.get(key) if data is not None else None
        if value not in (None, "???"):
            return str(value)
    return None


class TextCheckError(ValueError):
    """A text/header check that cannot run as configured; the message names the setting to change."""


@dataclass
class PrivateStrings:
    """Strings that must never appear in shared output, and what each is (``patient_id``, ``dicom:...``)."""

    values: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    too_short: int = 0
    #: The values shorter than ``min_length`` (value -> kind): not searched in artifacts, where 1 to 3
    #: characters match the numbers every card holds, but kept for the names a run is shared under
    #: (:func:`name_warning_strings`) and counted in the audit's report.
    short: dict[str, str] = field(default_factory=dict)

    def add(self, value: object, kind: str, min_length: int) -> None:
        """Record ``str(value)`` (stripped) as a string of ``kind``; blanks are skipped, shorter than
        ``min_length`` characters counted in ``too_short`` and kept in ``short`` only."""
        s = str(value).strip()
        if not s:
            return
        if len(s) < min_length:
            self.too_short += 1
            self.short.setdefault(s, kind)
            return
        self.values.append(s)
        self.kinds.append(kind)

    def dedupe(self) -> PrivateStrings:
        """A copy with each value once, under the kind it was first recorded with."""
        seen: dict[str, str] = {}
        for v, k in zip(self.values, self.kinds, strict=True):
            seen.setdefault(v, k)
        return PrivateStrings(list(seen), list(seen.values()), self.too_short, dict(self.short))

    def short_patient_ids(self) -> list[str]:
        """The patient ids shorter than ``min_length``, which the artifact search cannot look for."""
        return sorted(v for v, k in self.short.items() if k == "patient_id")

    def counts(self) -> dict[str, int]:
        """Number of strings per kind, ``dicom:...`` kinds counted together under ``dicom``."""
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k.split(":")[0]] = out.get(k.split(":")[0], 0) + 1
        return out


#: The header attributes ``audit.text.ignore_attributes`` may leave out of the search: technical settings
#: of the acquisition and display that name neither the patient nor the site and are often common words
#: (a GE convolution kernel ``STANDARD`` matched the card's own ``"standard"``). Anything else (a person
#: name, a UID, a date, an id, an address, a description a person typed) is always searched.
IGNORABLE_ATTRIBUTES = (
    "AcquisitionDeviceProcessingDescription",
    "CollimatorGridName",
    "ContrastBolusAgent",
    "ConvolutionKernel",
    "ExposureControlModeDescription",
    "FilterType",
    "Manufacturer",
    "ManufacturerModelName",
    "RescaleType",
    "SoftwareVersions",
    "WindowCenterWidthExplanation",
)


def check_ignored_attributes(keywords: Iterable[object]) -> tuple[str, ...]:
    """``audit.text.ignore_attributes`` as a tuple of DICOM keywords whose header values are not searched.
    Raises :class:`TextCheckError` naming the entry for anything that is not a DICOM keyword or not one of
    :data:`IGNORABLE_ATTRIBUTES`."""
    from pydicom.datadict import tag_for_keyword

    out = []
    for keyword in keywords:
        if not isinstance(keyword, str) or tag_for_keyword(keyword) is None:
            raise TextCheckError(
                f"audit.text.ignore_attributes entry {keyword!r} is no DICOM keyword; use the keywords the "
                "audit's leak kinds name (dicom:<Keyword>), e.g. "
                "audit.text.ignore_attributes=[ConvolutionKernel]"
            )
        if keyword not in IGNORABLE_ATTRIBUTES:
            raise TextCheckError(
                f"audit.text.ignore_attributes entry {keyword!r} may not be left out of the search: only "
                f"technical attributes that name neither the patient nor the site may "
                f"({', '.join(IGNORABLE_ATTRIBUTES)}); a {keyword} value found in an artifact is a leak"
            )
        out.append(keyword)
    return tuple(dict.fromkeys(out))


def dicom_strings(
    path: str | os.PathLike, out: PrivateStrings, min_length: int = 4, ignore: Iterable[str] = ()
) -> None:
    """Every identifying header value of one DICOM file (PN split into its name components too), but for
    the attributes whose keywords ``ignore`` lists (:func:`check_ignored_attributes`)."""
    import pydicom

    ignored = set(ignore)
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    # The file meta group (0002) names the writing software and transfer syntax, not the patient; its
    # instance UID repeats the dataset's SOP Instance UID, which is collected below.
    for elem in ds.iterall():
        if elem.VR not in IDENTIFYING_VRS or elem.value in (None, "") or elem.keyword in ignored:
            continue
        values = elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
        for v in values:
            s = str(v)
            if elem.VR == "UI" and s.startswith(_STANDARD_UID_ROOT):
                continue
            kind = f"dicom:{elem.keyword or elem.tag}"
            out.add(s, kind, min_length)
            if elem.VR == "PN":
                for part in s.replace("=", "^").split("^"):
                    out.add(part, kind, min_length)


def private_strings(
    datamodule: ImageDataModule | None = None,
    data_root: str | os.PathLike | None = None,
    min_length: int = 4,
    max_dicom_files: int | None = None,
    ignore_attributes: Iterable[str] = (),
) -> PrivateStrings:
    """Collect patient ids (data module, ``manifest.csv``), DICOM header values and paths of ``data_root``.

    ``data_root`` is the source folder (its manifest's images, or without one every file's name and path
    below it; the DICOMs among them found as the readers find them: by name or by the ``DICM`` marker,
    so extension-less files count)
    or a single source file such as an ``.npz`` (its path and name). The manifest is read by
    :func:`~gastrodistill.data.manifest.parse_manifest`, the data stage's parser, so the audit sees the
    rows and columns the data stage sees; a manifest it cannot use raises its ``ManifestError``.
    ``ignore_attributes``: DICOM keywords whose values are not collected (:func:`check_ignored_attributes`).
    """
    out = PrivateStrings()
    if datamodule is not None:
        for split in ("train", "val", "test"):
            pids = datamodule.patient_ids(split)
            if pids is not None:
                for pid in np.unique(np.asarray(pids, dtype=str)):
                    out.add(pid, "patient_id", min_length)
    if data_root is not None and Path(data_root).is_file():  # a single source file (.npz): its path and name
        out.add(str(Path(data_root).resolve()), "path", min_length)
        out.add(Path(data_root).name, "path", min_length)
    elif data_root is not None and Path(data_root).is_dir():
        root = Path(data_root)
        out.add(str(root.resolve()), "path", min_length)
        files: list[Path] = []
        if (root / MANIFEST_NAME).is_file():
            # The data stage's own parser (BOM, spaces after commas, encoding): the same rows and columns.
            manifest, _ = parse_manifest(root)
            for r in manifest.records:
                out.add(r.patient_id, "patient_id", min_length)
                for rel in (r.image, r.mask):
                    if rel:
                        out.add(rel, "path", min_length)
                        out.add(Path(rel).name, "path", min_length)
                        files.append(root / rel)
                for written in r.written:  # the manifest's own spelling too (a \ for each /)
                    out.add(written, "path", min_length)
        else:  # a folder collection: its file names (which may name patients) and paths, as for a manifest
            files = sorted(root.rglob("*"))
            for p in files:
                if p.is_file():
                    out.add(p.relative_to(root).as_posix(), "path", min_length)
                    out.add(p.name, "path", min_length)
        dicoms = [p for p in files if p.is_file() and is_dicom(p)]  # named .dcm, or DICM at byte 128
        for p in dicoms[:max_dicom_files]:
            dicom_strings(p, out, min_length, ignore_attributes)
    return out.dedupe()


def source_name(root: str | os.PathLike | None) -> str | None:
    """The own name of a run's data folder (:func:`data_root`), which often names the site
    (``StMaryHospital_gastric``). None when the data is not a folder (nothing there, or a data file: public
    data sets come as files, ``pneumoniamnist.npz``, and their names are no site's), and for a collection
    written by ``gastrodistill-generate`` (its ``synthetic_info.json``: the folder is named after the
    preset). Not searched in artifacts (a folder called ``data`` or ``images`` would match the card's own
    words), only in the names a run is logged and shared under
    (:func:`gastrodistill.sharing.publish.check_logged_names_in_data`). A part of it (``stmary``) is not
    found."""
    from gastrodistill.data.synthetic.writer import INFO_FILE

    if root is None or not Path(root).is_dir() or (Path(root) / INFO_FILE).is_file():
        return None
    return Path(root).resolve().name or None


#: The kind of :func:`source_name` among a run's private strings.
SOURCE_NAME_KIND = "data folder name"


def config_private_strings(
    cfg: DictConfig, datamodule: ImageDataModule | None, with_source_name: bool = False
) -> PrivateStrings:
    """:func:`private_strings` of a run config: its data (:func:`data_root`) and ``audit.text``'s
    ``min_length``, ``max_dicom_files`` and ``ignore_attributes`` (defaults 4, all, none); with
    ``with_source_name``, the data's own name too (:func:`source_name`, kind ``data folder name``). The one
    reading of those settings for the audit, the artifact writer and the check of logged names. Raises
    :class:`TextCheckError` for a bad ``ignore_attributes`` entry."""
    text = cfg.audit.text if "audit" in cfg and "text" in cfg.audit else {}
    min_length, root = int(text.get("min_length", 4)), data_root(cfg)
    strings = private_strings(
        datamodule,
        root,
        min_length=min_length,
        max_dicom_files=text.get("max_dicom_files"),
        ignore_attributes=check_ignored_attributes(text.get("ignore_attributes") or ()),
    )
    if with_source_name:
        strings.add(source_name(root) or "", SOURCE_NAME_KIND, min_length)
    return strings


#: Header attributes that name the site rather than the patient: besides each whole value (refused), each
#: of their distinctive words (:func:`site_words`) in a name a run is shared under is warned about, where
#: ``experiment_name=kitamachi`` names the Kitamachi General Hospital as well as its full name would (a
#: warning, not a refusal: such words are often ordinary ones, ``cross`` of a Red Cross hospital).
SITE_ATTRIBUTES = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "IssuerOfPatientID",
)
#: Words of site names that name no site (English, and the romanised Japanese of the paper's hospitals).
GENERIC_SITE_WORDS = frozenset(
    """hospital hospitals general medical medicine center centre centers university clinic clinics clinical
    institute department dept radiology radiological imaging national regional municipal memorial health
    healthcare care saint city county community children childrens women womens district royal college
    school foundation trust group unit infirmary street road avenue building floor north south east west
    central upper lower main gastroenterology gastrointestinal endoscopy internal surgery cancer research
    diagnostic diagnostics services service japan byoin iryo daigaku shiritsu kenritsu kokuritsu sogo
    gakuen""".split()  # noqa: SIM905 - a word list reads better as text
)
#: Patient ids this long or longer, though shorter than ``audit.text.min_length``, are warned about as tokens
#: of their own in the names a run is shared under (``patient_012``; a warning: ``steps_100`` holds one
#: too); one or two characters name no one there.
MIN_NAME_ID_LENGTH = 3


#: Patient ids this long or longer that hold a digit are also warned about inside a longer word of a name a
#: run is shared under (``pt4471902`` holds the id ``4471902``), where the search for private strings, which
#: finds them only as tokens of their own, passes them; shorter ones sit inside ordinary numbers.
MIN_EMBEDDED_ID_LENGTH = 6


def embedded_patient_ids(strings: PrivateStrings) -> list[str]:
    """The patient ids of ``strings`` that :data:`MIN_EMBEDDED_ID_LENGTH` makes worth a warning when found
    inside a word of a name (:func:`~gastrodistill.sharing.publish.check_logged_names_in_data`)."""
    return sorted(
        {
            v
            for v, k in zip(strings.values, strings.kinds, strict=True)
            if k == "patient_id" and len(v) >= MIN_EMBEDDED_ID_LENGTH and any(c.isdigit() for c in v)
        }
    )


def site_words(value: str) -> list[str]:
    """The distinctive words of a site's header value: runs of letters of at least 4, lower-cased, that are
    not in :data:`GENERIC_SITE_WORDS` (``Kitamachi General Hospital`` -> ``["kitamachi"]``)."""
    words = (w.lower() for w in re.findall(r"[^\W\d_]+", value))
    return list(dict.fromkeys(w for w in words if len(w) >= 4 and w not in GENERIC_SITE_WORDS))


def name_warning_strings(strings: PrivateStrings) -> PrivateStrings:
    """What the names a run is shared under (``experiment_name``, set names, W&B project, group and tags)
    are warned about holding, beside the refusals of ``strings`` themselves: each :func:`site_words` word
    of a :data:`SITE_ATTRIBUTES` value (kind ``word of dicom:<Keyword>``) and each patient id of
    :data:`MIN_NAME_ID_LENGTH` characters or more that was too short for the artifact search (kind
    ``short patient_id``). Both match ordinary names too (``cross_arch``, ``steps_100``), so they are said,
    not refused (:func:`~gastrodistill.sharing.publish.check_logged_names_in_data`)."""
    out = PrivateStrings()
    for value, kind in zip(strings.values, strings.kinds, strict=True):
        if kind.removeprefix("dicom:") in SITE_ATTRIBUTES:
            for word in site_words(value):
                out.values.append(word)
                out.kinds.append(f"word of {kind}")
    for pid in strings.short_patient_ids():
        if len(pid) >= MIN_NAME_ID_LENGTH:
            out.values.append(pid)
            out.kinds.append("short patient_id")
    return out.dedupe()


#: Zips inside zips opened by :func:`artifact_texts` (an archive of archives), at most this deep; a zip
#: deeper than that is searched whole.
MAX_ZIP_DEPTH = 3
#: The kind of a :func:`scan_for_strings` row for a file the search could not read in full.
UNSEARCHABLE = "unsearchable"


def artifact_texts(path: str | os.PathLike) -> tuple[dict[str, bytes], dict[str, str]]:
    """The text of every file of an artifact folder or archive, for the private-string search: each file's
    :func:`~gastrodistill.sharing.text_parts.text_parts`, zip members decompressed and read the same way,
    :data:`MAX_ZIP_DEPTH` zips deep. A zip deeper than that, or one with a member that cannot be read
    (a damaged entry, more than ``sharing.artifact.MAX_MEMBER_BYTES`` declared in all), is searched whole,
    so no byte goes unsearched. Returns (name -> text, name -> why a file could not be searched)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    texts: dict[str, bytes] = {}
    unsearchable: dict[str, str] = {}
    for f in files:
        name = f.relative_to(path).as_posix() if path.is_dir() else f.name
        _add_text(texts, unsearchable, name, f.read_bytes(), MAX_ZIP_DEPTH)
    return texts, unsearchable


def _add_text(
    texts: dict[str, bytes], unsearchable: dict[str, str], name: str, data: bytes, depth: int
) -> None:
    from gastrodistill.sharing.artifact import MAX_MEMBER_BYTES
    from gastrodistill.sharing.text_parts import UnsearchableError, text_parts

    members: dict[str, bytes] = {}
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if depth <= 0 or sum(i.file_size for i in zf.infolist()) > MAX_MEMBER_BYTES:
                    raise zipfile.BadZipFile("searched whole")
                members = {info.filename: zf.read(info) for info in zf.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, zlib.error):
            texts[name] = data  # its members cannot be read one by one: every byte is searched
            return
    try:
        texts[name] = text_parts(data)
    except UnsearchableError as e:
        unsearchable[name] = str(e)
        texts[name] = data
    for member, content in members.items():
        _add_text(texts, unsearchable, f"{name}!{member}", content, depth - 1)


def scan_for_strings(paths: Iterable[str | os.PathLike], strings: PrivateStrings) -> list[dict[str, str]]:
    """Leaks: one row per (file, private string) found in the files' text (:func:`artifact_texts`),
    naming its kind, never the value; and one row of kind :data:`UNSEARCHABLE` per file whose text could
    not be read in full (what was not read is not declared clean)."""
    from gastrodistill.sharing.card import find_strings

    texts: dict[str, bytes] = {}
    unsearchable: dict[str, str] = {}
    for p in paths:
        prefix = f"{Path(p).name}/" if Path(p).is_dir() else ""
        found, bad = artifact_texts(p)
        texts.update({prefix + k: v for k, v in found.items()})
        unsearchable.update({prefix + k: v for k, v in bad.items()})
    # No hash of the value either: patient ids have so little entropy that a hash gives them away.
    rows = [{"file": name, "kind": strings.kinds[i]} for name, i in find_strings(texts, strings.values)]
    return rows + [{"file": name, "kind": f"{UNSEARCHABLE}: {why}"} for name, why in unsearchable.items()]


# ---- the burned-in text region -----------------------------------------------------------------
def text_corners(corner: object) -> tuple[str, ...]:
    """``audit.text.corner`` as a tuple of corner names, each once, in the order given.

    ``corner`` is one name of :data:`CORNERS` or a non-empty list (any non-string sequence, such as an
    OmegaConf ``ListConfig``) of them. Raises :class:`TextCheckError`, one line naming the key, the value
    and the allowed names, for anything else: an empty list, an unknown name, a number, a mapping, null.
    """
    allowed = f"use one of {', '.join(CORNERS)}, or a list of them such as [top-left, bottom-left]"
    if isinstance(corner, str):
        names = [corner]
    elif isinstance(corner, Sequence) and not isinstance(corner, bytes):
        names = list(corner)
        if not names:
            raise TextCheckError(f"audit.text.corner = []; name at least one corner: {allowed}")
    else:
        raise TextCheckError(f"audit.text.corner = {corner!r}; {allowed}")
    unknown = [c for c in names if not isinstance(c, str) or c not in CORNERS]
    if isinstance(corner, str) and unknown:
        raise TextCheckError(f"audit.text.corner = {corner!r}; {allowed}")
    if unknown:
        raise TextCheckError(f"audit.text.corner = {names!r}; {unknown[0]!r} is not a corner, {allowed}")
    return tuple(dict.fromkeys(names))


def patches_in_corner(
    rows: np.ndarray,
    cols: np.ndarray,
    patch_size: int,
    image_h: np.ndarray,
    image_w: np.ndarray,
    corner: str | Sequence[str],
    box: Sequence[float],
) -> np.ndarray:
    """Which patches (top-left ``rows``/``cols`` in source pixels) overlap a text box of their image.

    ``rows``, ``cols``, ``image_h`` and ``image_w`` are per patch, shape ``(n,)``, in source pixels;
    ``patch_size`` is the patch side in source pixels. ``box`` is the text block's (height, width) as
    fractions of the image side, anchored at each corner of ``corner`` (one name of :data:`CORNERS` or
    a list of them). Returns a boolean array of shape ``(n,)``: the union over the corners. Raises
    :class:`TextCheckError` for a bad corner (see :func:`text_corners`) or a box outside (0, 1].
    """
    corners = text_corners(corner)
    bh, bw = float(box[0]), float(box[1])
    if not (0 < bh <= 1 and 0 < bw <= 1):
        raise TextCheckError(f"audit.text.box must be two fractions in (0, 1], got {list(box)}")
    rows, cols = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    h, w = np.asarray(image_h, dtype=np.float64), np.asarray(image_w, dtype=np.float64)
    inside = np.zeros(np.broadcast(rows, cols, h, w).shape, dtype=bool)
    for c in corners:
        y0, y1 = (np.zeros_like(h), bh * h) if c.startswith("top") else ((1 - bh) * h, h)
        x0, x1 = (np.zeros_like(w), bw * w) if c.endswith("left") else ((1 - bw) * w, w)
        inside |= (rows < y1) & (rows + patch_size > y0) & (cols < x1) & (cols + patch_size > x0)
    return inside


def text_patch_mask(
    datamodule: ImageDataModule, corner: str | Sequence[str], box: Sequence[float], split: str = "train"
) -> np.ndarray | None:
    """Per-sample "overlaps a burned-in text corner" of a patch-store data module (``None``: no positions).

    ``corner`` is one corner name or a list of them (the mask is the union, as in
    :func:`patches_in_corner`); the result has one boolean per sample of ``split``, in its order.
    A data module may provide ``text_patch_mask(split)`` itself (then ``corner`` and ``box`` are not
    used); the gastric one is read from its store index (row, col per patch) and the source images'
    sizes (read from their headers only). Raises :class:`TextCheckError` for a bad corner or box.
    """
    own = getattr(datamodule, "text_patch_mask", None)
    if callable(own):
        mask = own(split)
        return None if mask is None else np.asarray(mask, dtype=bool)
    store = getattr(datamodule, "store", None)
    spec = getattr(datamodule, "spec", None)
    if store is None or spec is None or not hasattr(store, "split_index"):
        return None
    from gastrodistill.data.readers import probe_image

    index = store.split_index(split)
    sizes = {img: probe_image(Path(spec.data_root) / img) for img in index["image"].unique()}
    hw = np.array([sizes[i] for i in index["image"]], dtype=np.int64).reshape(-1, 2)
    return patches_in_corner(
        index["row"].to_numpy(),
        index["col"].to_numpy(),
        int(spec.geometry.patch_size),
        hw[:, 0],
        hw[:, 1],
        corner,
        box,
    )


@dataclass
class TextRegionReport:
    """Each distilled image's highest NCC with the text-corner patches, and two references for scale.

    ``ordinary``: real patches outside the corner against text patches of other patients (what an
    image that draws no text reaches); ``text``: text patches against other patients' text patches
    (what a reproduced text corner would reach).
    """

    sets: dict[str, np.ndarray]
    ordinary: np.ndarray
    text: np.ndarray
    n_text_patches: int

    def summary(self, name: str) -> dict[str, float]:
        """Set ``name``'s text-corner similarity: mean, max and how it compares with the ordinary and
        text references (99th percentile, median)."""
        sims = self.sets[name]
        p99 = float(np.percentile(self.ordinary, 99))
        text_median = float(np.median(self.text)) if len(self.text) else float("nan")
        return {
            "text_nearest_mean": float(np.mean(sims)),
            "text_nearest_max": float(np.max(sims)),
            "text_ordinary_p99": p99,
            "text_text_median": text_median,
            "text_frac_above_ordinary_p99": float(np.mean(sims > p99)),
            "text_frac_above_text_median": float(np.mean(sims > text_median))
            if len(self.text)
            else float("nan"),
        }


def text_region_similarity(
    datamodule: ImageDataModule, queries: dict, mask: np.ndarray, reference_size: int = 256, seed: int = 0
) -> TextRegionReport:
    """Search only the text-corner training patches (``mask``) for every query and two reference samples."""
    from gastrodistill.anonymity.nearest import nearest_real
    from gastrodistill.utils.seeding import numpy_rng

    mask = np.asarray(mask, dtype=bool)
    text_idx, other_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
    if len(text_idx) == 0 or len(other_idx) == 0:
        raise TextCheckError("the text-corner check needs patches both inside and outside the text corner")
    rng = numpy_rng(seed, "audit", "text")
    ref_other = rng.choice(other_idx, size=min(reference_size, len(other_idx)), replace=False)
    ref_text = rng.choice(text_idx, size=min(reference_size, len(text_idx)), replace=False)
    ref = np.unique(np.concatenate([ref_other, ref_text]))
    rep = nearest_real(
        datamodule, queries, real_indices=text_idx, reference_indices=ref, seed=seed, ssim=False, top_k=1
    )
    is_text = mask[rep.reference_indices]
    finite = np.isfinite(rep.reference["ncc"])
    return TextRegionReport(
        sets={name: s["ncc"] for name, s in rep.sets.items()},
        ordinary=rep.reference["ncc"][~is_text & finite],
        text=rep.reference["ncc"][is_text & finite],
        n_text_patches=int(len(text_idx)),
    )
