"""Load and validate ``DATA_ROOT/manifest.csv`` before any long work starts.

Every problem is collected (not just the first) and reported in one :class:`ManifestError` with the
manifest line it comes from and what to fix (a file that is not UTF-8 text is refused first, by
:func:`read_csv_text`, naming the line): missing or escaping paths, unknown diagnoses or
splits, a patient with two diagnoses or in two splits, then, in :func:`validate_files`, unreadable
or truncated files, images that are not 2-D grayscale, images smaller than a patch and masks of
another size.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from tqdm.auto import tqdm

from gastrodistill.data.errors import DataInputError, ManifestError, relative_path_hint
from gastrodistill.data.readers import probe_image, transposed_hint
from gastrodistill.data.tiling import Geometry

MANIFEST_NAME = "manifest.csv"
PATCH_LABELS_NAME = "patch_labels.csv"
DIAGNOSES = ("non-gastritis", "gastritis")
MANIFEST_SPLITS = ("train", "test")
REQUIRED_COLUMNS = ("image", "patient_id", "diagnosis")
_MAX_LISTED = 50
#: ``split`` values that mean the validation split, which the manifest does not give (``data/splits.py``).
_VALIDATION_NAMES = ("val", "valid", "validation")
_VALIDATION_SPLIT = (
    "; the validation patients are drawn from the 'train' patients (data.val_fraction of each diagnosis, "
    "seeded by data.split_seed): mark them 'train'"
)


@dataclass(frozen=True)
class ImageRecord:
    """One manifest row. ``line`` is its line in manifest.csv (the header is line 1)."""

    line: int
    image: str
    patient_id: str
    diagnosis: str
    split: str | None
    mask: str | None
    #: The row's image and mask paths as manifest.csv spells them where that differs from ``image`` and
    #: ``mask`` (a ``\`` as the separator, :func:`manifest_path`): the audit searches both spellings.
    written: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """Where the row is, for messages: ``manifest.csv line N (image '...')``."""
        return f"{MANIFEST_NAME} line {self.line} (image {self.image!r})"


@dataclass
class Manifest:
    """A parsed ``manifest.csv``: the data root, one record per image, and whether it gives the splits."""

    root: Path
    records: list[ImageRecord]
    has_split: bool

    @property
    def manifest_path(self) -> Path:
        """``<root>/manifest.csv``."""
        return self.root / MANIFEST_NAME

    @property
    def patch_labels_path(self) -> Path | None:
        """``<root>/patch_labels.csv`` (manual patch labels) when it exists, else ``None``."""
        p = self.root / PATCH_LABELS_NAME
        return p if p.is_file() else None

    def path(self, rel: str) -> Path:
        """The file at ``rel``, a path relative to the data root as the manifest gives it."""
        return self.root / rel

    def patients(self) -> dict[str, str]:
        """Patient id -> diagnosis."""
        return {r.patient_id: r.diagnosis for r in self.records}

    def manifest_splits(self) -> dict[str, str] | None:
        """Patient id -> ``train``/``test`` from the manifest; ``None`` when it has no split column."""
        return {r.patient_id: r.split for r in self.records} if self.has_split else None  # type: ignore[misc]


#: Byte-order marks of encodings a spreadsheet may save a CSV in other than UTF-8 (UTF-32 LE first: its
#: mark begins with UTF-16 LE's).
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS_UTF8 = (
    "save it as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: character set 'Unicode (UTF-8)')"
)


#: How to save a spreadsheet as the comma-separated UTF-8 CSV the project reads.
_SAVE_AS_CSV = (
    "save it as comma-separated CSV UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: field "
    "delimiter ',' and character set 'Unicode (UTF-8)')"
)


def separator_problem(path: Path, columns: list[str]) -> str | None:
    """Why a CSV's header lacks its columns when it is separated by semicolons (Excel's "CSV" where the
    decimal mark is a comma) or tabs (a tab-separated export), naming ``path`` and how to save it; else
    None. ``columns``: the header as read with commas (one column holding them all)."""
    for sep, name in ((";", "semicolons (';')"), ("\t", "tabs")):
        if any(sep in c for c in columns):
            return f"{path}: the header is separated by {name}, not commas; {_SAVE_AS_CSV}"
    return None


def read_csv_text(path: Path, error: type[DataInputError] = ManifestError) -> io.StringIO:
    """The text of the CSV file ``path`` decoded as UTF-8 (a leading BOM dropped), for :mod:`csv`.

    Raises:
        DataInputError: ``error``, naming the file (and the line) and to save it as UTF-8, for a file
            saved as UTF-16 or UTF-32, a byte that is not UTF-8 (e.g. Windows-1252 or Latin-1 text) or a
            NUL byte (no value may hold one; UTF-16 without a byte-order mark has one in every character).
    """
    data = path.read_bytes()
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            raise error(f"{path} is saved as {name}; {_SAVE_AS_UTF8}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(
            f"{path} line {line}: byte 0x{data[e.start]:02x} is not UTF-8 (the file is in another encoding, "
            f"e.g. Windows-1252 or Latin-1); {_SAVE_AS_UTF8}"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise error(
            f"{path} line {line}: holds a NUL byte, which no value may contain (a file saved as UTF-16 has "
            f"one in every character); if so, {_SAVE_AS_UTF8}, else remove the byte"
        )
    return io.StringIO(text, newline="")


def manifest_path(value: str) -> str:
    """A path of a manifest column with ``\\`` read as a separator, like ``/`` (``dicom\\x.dcm`` ->
    ``dicom/x.dcm``): a manifest written on Windows (an Excel export) separates folders so. Every reader of
    manifest paths reads them through this; a file whose own name holds a ``\\`` cannot be listed."""
    return value.replace("\\", "/")


def raise_if(problems: list[str], header: str, error: type[DataInputError] = ManifestError) -> None:
    """Raise ``error`` listing (at most 50 of) ``problems`` when there are any."""
    if not problems:
        return
    shown = problems[:_MAX_LISTED]
    if len(problems) > _MAX_LISTED:
        shown.append(f"... and {len(problems) - _MAX_LISTED} more problem(s)")
    raise error(shown, header=f"{header} ({len(problems)} problem(s)):")


def resolve_inside(root: Path, rel: str, what: str) -> tuple[Path | None, str | None]:
    """``root / rel`` if it stays inside ``root`` (symlinks resolved), else an explanation."""
    if not rel:
        return None, f"empty {what!r} value; give a path relative to DATA_ROOT"
    if os.path.isabs(rel) or Path(rel).is_absolute() or PureWindowsPath(rel).drive:  # C:/x, C:x as well
        return None, f"{what} {rel!r} is an absolute path; write it relative to DATA_ROOT"
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        return None, f"{what} {rel!r} leaves DATA_ROOT; keep every file inside DATA_ROOT"
    return root / rel, None


def _check_file(root: Path, rel: str, kind: str, where: str, fix: str, problems: list[str]) -> None:
    """Record in ``problems`` why a manifest path is unusable (outside DATA_ROOT, or no such file)."""
    path, err = resolve_inside(root, rel, kind)
    if err:
        problems.append(f"{where}: {err}")
    elif not path.is_file():
        problems.append(
            f"{where}: {kind} file {rel!r} not found under DATA_ROOT; {_unicode_hint(root, rel) or fix}"
        )


def _unicode_hint(root: Path, rel: str) -> str | None:
    """When ``rel`` names no file but its other Unicode normalisation form does (a manifest written on
    macOS spells ``ü`` as ``u`` + a combining diaeresis, NFD, where the files are NFC, or the reverse):
    the advice to write the manifest in that form, else None. The two spellings print alike."""
    for form in ("NFC", "NFD"):
        other = unicodedata.normalize(form, rel)
        if other != rel and (root / other).is_file():
            return (
                f"a file of that name exists with its accented letters in Unicode {form} form, which prints "
                f"alike; save the manifest with {form} text (e.g. python: unicodedata.normalize({form!r}, s))"
            )
    return None


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Parse and check manifest.csv (columns, values, paths, files exist, patients consistent).

    Raises :class:`ManifestError` listing every row-level problem.
    """
    manifest, problems = parse_manifest(root)
    raise_if(problems, f"{manifest.manifest_path} is invalid")
    return manifest


def parse_manifest(root: str | os.PathLike) -> tuple[Manifest, list[str]]:
    """manifest.csv and its row-level problems, without raising for them (see :func:`load_manifest`).

    Raises :class:`ManifestError` only when the file cannot be used at all (no folder, no file, missing
    columns, no rows).
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(
            f"DATA_ROOT {root} is not a folder; set data.root (or paths.data_root) to your data's folder, "
            "or write the synthetic collection there first: gastrodistill-generate with this command's "
            "experiment=, synthetic.* and paths.data_root overrides (it writes to paths.data_root, not "
            "data.root)" + relative_path_hint(root, "data.root")
        )
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path} not found; DATA_ROOT needs a manifest.csv with columns "
            "image,patient_id,diagnosis[,split,mask]"
        )
    problems: list[str] = []
    records: list[ImageRecord] = []
    with read_csv_text(path) as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ManifestError(
                separator_problem(path, columns)
                or f"{path}: missing column(s) {missing}; the header must contain image,patient_id,diagnosis "
                f"(optional: split, mask); found {columns}"
            )
        reader.fieldnames = columns
        has_split = "split" in columns
        for row in reader:
            line = reader.line_num
            get = {k: (v or "").strip() for k, v in row.items() if k is not None}
            pid, paths = get.get("patient_id", ""), (get.get("image", ""), get.get("mask", ""))
            image, mask = (manifest_path(p) for p in paths)
            written = tuple(p for p in paths if p != manifest_path(p))
            where = f"{MANIFEST_NAME} line {line}"
            _check_file(root, image, "image", where, "fix the path or add the file", problems)
            if not pid:
                problems.append(f"{where}: empty patient_id; every image needs its patient's id")
            diagnosis = get.get("diagnosis", "").lower()
            if diagnosis not in DIAGNOSES:
                problems.append(
                    f"{where}: unknown diagnosis {get.get('diagnosis', '')!r}; "
                    f"use one of {', '.join(DIAGNOSES)}"
                )
            split = get.get("split", "").lower() if has_split else None
            if has_split and split not in MANIFEST_SPLITS:
                problems.append(
                    f"{where}: split {get.get('split', '')!r} must be 'train' or 'test' "
                    f"(or drop the split column for a seeded split by patient)"
                    + (_VALIDATION_SPLIT if split in _VALIDATION_NAMES else "")
                )
            if mask:
                _check_file(root, mask, "mask", where, "fix the path or leave it empty", problems)
            records.append(ImageRecord(line, image, pid, diagnosis, split, mask or None, written))
    if not records:
        raise ManifestError(f"{path} has a header but no rows; add one row per image")

    problems += _consistency_problems(records, has_split)
    return Manifest(root=root, records=records, has_split=has_split), problems


def _consistency_problems(records: list[ImageRecord], has_split: bool) -> list[str]:
    problems: list[str] = []
    by_image: dict[str, list[int]] = {}
    by_patient: dict[str, list[ImageRecord]] = {}
    for r in records:
        by_image.setdefault(os.path.normpath(r.image), []).append(r.line)
        by_patient.setdefault(r.patient_id, []).append(r)
    for image, lines in by_image.items():
        if len(lines) > 1:
            problems.append(
                f"{MANIFEST_NAME} lines {lines}: image {image!r} listed more than once; keep one row"
            )
    for pid, rows in by_patient.items():
        if not pid:
            continue
        diags = sorted({r.diagnosis for r in rows if r.diagnosis in DIAGNOSES})
        if len(diags) > 1:
            problems.append(
                f"{MANIFEST_NAME} lines {[r.line for r in rows]}: patient {pid!r} has diagnoses {diags}; "
                "a patient has one diagnosis"
            )
        if has_split:
            splits = sorted({r.split for r in rows if r.split in MANIFEST_SPLITS})
            if len(splits) > 1:
                problems.append(
                    f"{MANIFEST_NAME} lines {[r.line for r in rows]}: patient {pid!r} is in splits {splits}; "
                    "put all of a patient's images in one split"
                )
    by_folded: dict[str, list[str]] = {}
    for pid in by_patient:
        if pid:
            by_folded.setdefault(pid.casefold(), []).append(pid)
    for spellings in by_folded.values():
        if len(spellings) > 1:  # most likely one patient: the split by patient would part their images
            lines = sorted(r.line for pid in spellings for r in by_patient[pid])
            problems.append(
                f"{MANIFEST_NAME} lines {lines}: patient ids {', '.join(map(repr, spellings))} differ only "
                "in letter case; give one patient one id (the split is by patient id, so one patient's "
                "images could land in both train and test), or ids that differ otherwise for different "
                "patients"
            )
    if has_split:  # also beside the problems above: every problem is collected
        present = {r.split for r in records}
        for s in MANIFEST_SPLITS:
            if s not in present:
                problems.append(f"{MANIFEST_NAME}: no image has split {s!r}; every split needs patients")
    return problems


def validate_files(
    manifest: Manifest, geometry: Geometry, progress: bool = True
) -> dict[str, tuple[int, int]]:
    """Open every image and mask; return ``image -> (H, W)`` or raise one error listing every bad file."""
    sizes, problems = file_problems(manifest, geometry, progress)
    raise_if(problems, f"{manifest.manifest_path}: some files cannot be used")
    return sizes


def check_all(manifest_root: str | os.PathLike, geometry: Geometry, progress: bool = True) -> Manifest:
    """Row-level and file-level problems of a manifest in one pass; raises one ManifestError with all."""
    manifest, rows = parse_manifest(manifest_root)
    if not rows:
        return manifest
    _, files = file_problems(manifest, geometry, progress)
    raise_if(rows + files, f"{manifest.manifest_path} is invalid")
    return manifest


def _exists_inside(root: Path, rel: str | None) -> bool:
    if not rel:
        return False
    path, err = resolve_inside(root, rel, "file")
    return err is None and path is not None and path.is_file()


def file_problems(
    manifest: Manifest, geometry: Geometry, progress: bool = True
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """``image -> (H, W)`` of the usable images and one line per unusable file (files missing or outside
    DATA_ROOT are skipped here: :func:`parse_manifest` reports them)."""
    problems: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}
    for r in tqdm(manifest.records, desc="checking images", unit="img", disable=not progress, leave=False):
        if not _exists_inside(manifest.root, r.image):
            continue
        try:
            h, w = probe_image(manifest.path(r.image))
        except DataInputError as e:
            problems.append(f"{r.where}: {'; '.join(e.problems)}")
            continue
        try:
            geometry.count(h, w, what=f"image of {h}x{w} px")
        except DataInputError as e:
            problems.append(f"{r.where}: {'; '.join(e.problems)}")
            continue
        sizes[r.image] = (h, w)
        if r.mask and _exists_inside(manifest.root, r.mask):
            try:
                mh, mw = probe_image(manifest.path(r.mask), mask=True)
            except DataInputError as e:
                problems.append(f"{r.where}: mask: {'; '.join(e.problems)}")
                continue
            if (mh, mw) != (h, w):
                hint = transposed_hint((h, w), (mh, mw))
                problems.append(
                    f"{r.where}: mask {r.mask!r} is {mh}x{mw} px but the image is {h}x{w} px; "
                    + (hint or "a mask must have its image's size")
                )
    return sizes, problems
