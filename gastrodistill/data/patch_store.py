"""The patch store: every labelled patch of a data set, built once and memory-mapped afterwards.

Layout of ``store_root/p{size}-o{overlap}-s{storage}-{hash}/`` (the hash covers the source files,
the geometry, the storage size, the labelling threshold and the split parameters):

- ``patches.npy``  uint8 ``[N, S, S]`` (``numpy.lib.format``, memory-mapped; not a pickle), ordered
  train | val | test, and within a split by patient, so every split and every patient is a slice;
- ``index.csv``    patch_id, patient, image, row, col, label, split, diagnosis (private: local only);
- ``meta.json``    schema and package version, geometry, storage size, source hashes, counts per
  split and class, split ranges, per-split 256-bin pixel histograms (exact mean/std without
  reading the patches), the content hash. It holds no path and no patient id.

The build streams image by image (patch count from the image sizes first, file preallocated, filled
with positioned writes, so neither the array nor the page cache is charged to the process), runs in
a hidden temporary folder renamed into place at the end, and is skipped when the key is unchanged.
Before anything is written it refuses the same image content in two splits or under two patients
(:func:`check_duplicate_images`, from the source hashes) and a train or test split with no patch of
some class (:func:`check_classes`, from labels computed from the masks first).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import gastrodistill
from gastrodistill.data.errors import BitDepthExceeded, ManifestError, StoreError
from gastrodistill.data.labelling import (
    CLASS_NAMES,
    IRRELEVANT,
    check_coverage,
    image_key,
    label_image,
    load_patch_labels,
)
from gastrodistill.data.manifest import (
    MANIFEST_NAME,
    PATCH_LABELS_NAME,
    ImageRecord,
    Manifest,
    check_all,
    load_manifest,
    raise_if,
    validate_files,
)
from gastrodistill.data.readers import bit_depth_setting, is_dicom, read_image, read_mask
from gastrodistill.data.sizes import available_memory, pixel_size
from gastrodistill.data.splits import SPLIT_ORDER, assign_splits
from gastrodistill.data.tiling import Geometry
from gastrodistill.utils.atomic import atomic_dir, nearest_existing, write_text_atomic
from gastrodistill.utils.hashing import sha256_file, sha256_json
from gastrodistill.utils.images import to_uint8
from gastrodistill.utils.values import human_bytes

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Bumped when reading the same files gives other pixels (2: orientation, sBIT/TIFF bit depths, DICOM LUTs;
#: 3: enhanced images' functional groups, a window with a negative rescale slope).
READER_VERSION = 3
#: Fewer distinct uint8 levels than this in a split's patches earns a warning at build time.
FEW_GREY_LEVELS = 64
PATCHES_FILE = "patches.npy"
INDEX_FILE = "index.csv"
META_FILE = "meta.json"
HASH_CACHE_FILE = ".source_hash_cache.json"
INDEX_COLUMNS = ["patch_id", "patient", "image", "row", "col", "label", "split", "diagnosis"]


@dataclass(frozen=True)
class StoreSpec:
    """Everything that determines a store's content."""

    data_root: Path
    store_root: Path
    geometry: Geometry = field(default_factory=Geometry)
    storage_size: int | None = None
    mask_threshold: float = 0.5
    test_fraction: float = 0.3
    val_fraction: float = 0.2
    split_seed: int = 0
    bit_depth: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bit_depth", bit_depth_setting(self.bit_depth, StoreError))
        size = pixel_size(self.storage_size, "data.storage_size", StoreError, null="keep data.patch_size")
        object.__setattr__(self, "storage_size", size)  # a string of digits becomes its integer
        if not 0.0 <= float(self.mask_threshold) <= 1.0:
            raise StoreError(f"data.mask_threshold={self.mask_threshold} must be in [0, 1]")
        for key in ("test_fraction", "val_fraction"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise StoreError(f"data.{key}={getattr(self, key)} must be in [0, 1)")

    @property
    def size(self) -> int:
        """Side of a stored patch."""
        return int(self.storage_size or self.geometry.patch_size)


# ---- hashing of the sources ----------------------------------------------------------------------
class _HashCache:
    """sha256 of files keyed by (path, size, mtime, ctime): unchanged files are not re-read on every run.

    The change time (``st_ctime_ns``) is in the key because ``cp -p``, ``rsync -t`` or ``os.utime`` put an
    old modification time back on new content: a breaker's image inverted in place with its size and
    mtime kept was taken for the old one and the stale store reused. The system sets the change time on
    every write and no tool can set it back; a file that was only touched (chmod) is re-read once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = False
        try:
            self.data: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def sha(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        hit = self.data.get(key)
        if (
            hit
            and len(hit) == 4
            and hit[0] == st.st_size
            and hit[1] == st.st_mtime_ns
            and hit[3] == st.st_ctime_ns
        ):
            return hit[2]
        digest = sha256_file(file)
        self.data[key] = [st.st_size, st.st_mtime_ns, digest, st.st_ctime_ns]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.changed:
            write_text_atomic(self.path, json.dumps(self.data))


def image_digests(
    manifest: Manifest, store_root: Path, progress: bool = False, save: bool = True
) -> list[tuple[str, str | None]]:
    """sha256 of each manifest row's image and mask (``None``: no mask), in row order, through the hash
    cache under ``store_root`` (``save``: as in :func:`source_hashes`)."""
    cache = _HashCache(Path(store_root) / HASH_CACHE_FILE)
    _PENDING_CACHES[Path(store_root)] = cache
    digests = [
        (cache.sha(manifest.path(r.image)), cache.sha(manifest.path(r.mask)) if r.mask else None)
        for r in tqdm(manifest.records, desc="hashing sources", unit="img", disable=not progress, leave=False)
    ]
    if save and Path(store_root).is_dir():
        cache.save()
    return digests


def source_hashes(
    manifest: Manifest,
    store_root: Path,
    progress: bool = False,
    save: bool = True,
    digests: list[tuple[str, str | None]] | None = None,
) -> dict[str, str | None]:
    """Content hashes of manifest.csv, the images, the masks and patch_labels.csv (no paths inside).

    ``save=False`` leaves the hash cache unwritten (a build saves it once its inputs proved usable, so
    a failed check leaves nothing behind); :func:`save_hash_cache` writes it later. ``digests``: the
    rows' :func:`image_digests`, when the caller has them already.
    """
    if digests is None:
        digests = image_digests(manifest, store_root, progress, save)
    images, masks = [], []
    for r, (image_sha, mask_sha) in zip(manifest.records, digests, strict=True):
        images.append([image_key(r.image), image_sha])
        if mask_sha is not None:
            masks.append([image_key(r.image), mask_sha])
    labels = manifest.patch_labels_path
    return {
        "manifest": sha256_file(manifest.manifest_path),
        "images": sha256_json(sorted(images)),
        "masks": sha256_json(sorted(masks)),
        "patch_labels": sha256_file(labels) if labels else None,
    }


def check_duplicate_images(
    manifest: Manifest, digests: list[tuple[str, str | None]], split_of: dict[str, str]
) -> None:
    """Refuse the same image content (same sha256: a copied file, a link) listed in two splits, or twice
    in one split under two patients; warn when one patient lists it twice. ``digests``: the rows'
    :func:`image_digests`; ``split_of``: :func:`patient_splits`.

    Raises:
        ManifestError: naming the rows of every duplicated image and their splits and patients.
    """
    by_digest: dict[str, list] = {}
    for r, (image_sha, _) in zip(manifest.records, digests, strict=True):
        by_digest.setdefault(image_sha, []).append(r)
    problems: list[str] = []
    for rows in by_digest.values():
        if len(rows) < 2:
            continue
        splits = sorted({split_of[r.patient_id] for r in rows}, key=SPLIT_ORDER.index)
        listed = ", ".join(
            f"line {r.line} {r.image!r} ({split_of[r.patient_id]}, patient {r.patient_id!r})" for r in rows
        )
        what = f"{MANIFEST_NAME} {listed}: the same image content"
        if len(splits) > 1:
            problems.append(
                f"{what} is in splits {splits}, so a model would be evaluated on images it was trained "
                "on; keep one of these rows (or replace the wrong file)"
            )
        elif len({r.patient_id for r in rows}) > 1:
            problems.append(
                f"{what} is listed under two patients; an image belongs to one patient: keep one of these "
                "rows (or replace the wrong file)"
            )
        else:  # a warning goes into the job's log: rows by line number, no path or patient id
            numbers = [str(r.line) for r in rows]
            times = "twice" if len(rows) == 2 else f"{len(rows)} times"
            log.warning(
                "%s lines %s and %s: the same image content is listed %s for one patient; it counts %s (keep "
                "one of these rows)",
                MANIFEST_NAME,
                ", ".join(numbers[:-1]),
                numbers[-1],
                times,
                times,
            )
    raise_if(problems, f"{manifest.manifest_path}: some images are duplicates")


#: A DICOM patient that more manifest patients than this share is taken for a de-identification tool's
#: placeholder (``ANONYMOUS``, ``0000``), not for one person, by :func:`check_dicom_patients`.
MAX_MANIFEST_PATIENTS_PER_PERSON = 5


def check_dicom_patients(manifest: Manifest, split_of: dict[str, str]) -> None:
    """Warn of one person who may be listed under two or more manifest patient ids in different splits:
    DICOM images whose headers name the same patient (:func:`~gastrodistill.data.dicom.dicom_patient`:
    PatientID with its issuer, name and birth date) under manifest ids of two splits, so a model could be
    evaluated on a patient it was trained on (a patient registered again, or given one pseudonym per
    exam). A warning, not a refusal: an id shared by different people (``UNKNOWN`` of unidentified
    patients, site-local numbers of merged collections without an issuer) looks the same. A PatientID more
    than :data:`MAX_MANIFEST_PATIENTS_PER_PERSON` manifest patients share is taken for a placeholder and
    not reported; non-DICOM images name no patient. ``split_of``: :func:`patient_splits`. The warning goes
    into the job's log, so it names manifest lines only, never a patient id or a header value."""
    from gastrodistill.data.dicom import dicom_patient

    people: dict[tuple[str, ...], dict[str, ImageRecord]] = {}
    for r in manifest.records:
        path = manifest.path(r.image)
        person = dicom_patient(path) if is_dicom(path) else None
        if person is not None:
            people.setdefault(person, {}).setdefault(r.patient_id, r)
    for rows in people.values():
        splits = sorted({split_of[pid] for pid in rows}, key=SPLIT_ORDER.index)
        if len(splits) < 2 or len(rows) > MAX_MANIFEST_PATIENTS_PER_PERSON:
            continue
        log.warning(
            "%s lines %s: these images' DICOM headers name one patient (the same PatientID, issuer, name "
            "and birth date) listed under %d patient ids in splits %s; if they are one person, give all of "
            "that person's rows one patient_id, or a model is evaluated on a patient it was trained on",
            MANIFEST_NAME,
            ", ".join(str(r.line) for r in rows.values()),
            len(rows),
            splits,
        )


_PENDING_CACHES: dict[Path, _HashCache] = {}


def save_hash_cache(store_root: Path) -> None:
    """Write the hash cache that :func:`source_hashes` kept back with ``save=False``."""
    cache = _PENDING_CACHES.pop(Path(store_root), None)
    if cache is not None and Path(store_root).is_dir():
        cache.save()


def store_key(spec: StoreSpec, manifest: Manifest, sources: dict) -> str:
    """SHA-256 (64 hex characters) of everything a store's content depends on: schema, source hashes,
    geometry, storage size, mask threshold, split settings, bit depth and reader version."""
    split = {"val_fraction": float(spec.val_fraction), "seed": int(spec.split_seed)}
    if not manifest.has_split:
        split["test_fraction"] = float(spec.test_fraction)
    return sha256_json(
        {
            "schema": SCHEMA_VERSION,
            "sources": sources,
            "geometry": spec.geometry.as_dict(),
            "storage_size": spec.size,
            "mask_threshold": float(spec.mask_threshold),
            "split": split,
            "bit_depth": spec.bit_depth,
            "reader": READER_VERSION,
        }
    )


def store_dir(spec: StoreSpec, key: str) -> Path:
    """The store folder under ``store_root``: ``p<patch px>-o<overlap px>-s<size px>-<key[:16]>``."""
    g = spec.geometry
    return Path(spec.store_root) / f"p{g.patch_size}-o{g.overlap}-s{spec.size}-{key[:16]}"


# ---- reading a store -------------------------------------------------------------------------------
def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_complete(path: Path, key: str | None = None) -> bool:
    """A finished store of this schema (and key, when given) whose array file has the recorded size."""
    meta = _read_meta(path)
    if meta is None or meta.get("schema_version") != SCHEMA_VERSION or (key and meta.get("key") != key):
        return False
    try:
        arr = np.load(path / PATCHES_FILE, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return list(arr.shape) == meta.get("shape") and (path / INDEX_FILE).is_file()


def hist_stats(hist: list[int] | np.ndarray) -> tuple[float, float]:
    """Mean and std (in [0, 1] units) of uint8 pixels from their 256-bin histogram; exact."""
    h = np.asarray(hist, dtype=np.float64)
    v = np.arange(256, dtype=np.float64) / 255.0
    n = max(h.sum(), 1.0)
    mean = float((h * v).sum() / n)
    var = float((h * v * v).sum() / n) - mean**2
    return mean, float(np.sqrt(max(var, 1e-12)))


class ReopensMemmap:
    """Pickles without its memory-mapped array (attribute ``MEMMAP_ATTR``) and reopens it with
    :meth:`_open` when unpickled, so a worker process receives a path, never the pixels."""

    MEMMAP_ATTR = "patches"

    def _open(self) -> np.ndarray:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state[self.MEMMAP_ATTR] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        setattr(self, self.MEMMAP_ATTR, self._open())


class PatchStore(ReopensMemmap):
    """An opened store: memory-mapped patches, the index table and the metadata (pickled without the
    pixels: :class:`ReopensMemmap`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not is_complete(self.path):
            raise StoreError(
                f"{self.path} is not a complete patch store of schema {SCHEMA_VERSION}; "
                "rebuild it with gastrodistill-patches (or DataModule.prepare_data())"
            )
        self.meta: dict = _read_meta(self.path)  # type: ignore[assignment]
        self.patches: np.memmap = self._open()
        self.index = pd.read_csv(
            self.path / INDEX_FILE,
            dtype={"patient": str, "image": str, "split": str, "diagnosis": str},
            keep_default_na=False,
        )
        if (
            len(self.index) != len(self.patches)
            or not (self.index["patch_id"].to_numpy() == np.arange(len(self.index))).all()
        ):
            raise StoreError(
                f"{self.path / INDEX_FILE} does not match {PATCHES_FILE}; delete the store and rebuild"
            )

    def _open(self) -> np.ndarray:
        return np.load(self.path / PATCHES_FILE, mmap_mode="r")

    def split_slice(self, split: str) -> slice:
        """The rows of ``split`` in the store (contiguous); raises ``ValueError`` for an unknown split."""
        if split not in SPLIT_ORDER:
            raise ValueError(f"unknown split {split!r}; use one of {SPLIT_ORDER}")
        start, stop = self.meta["split_ranges"][split]
        return slice(int(start), int(stop))

    def split_index(self, split: str) -> pd.DataFrame:
        """The index rows (patient, label, position, ...) of ``split``'s patches, in store order."""
        return self.index.iloc[self.split_slice(split)]

    @property
    def content_hash(self) -> str:
        """SHA-256 of the store's content, as recorded in its metadata (64 hex characters)."""
        return str(self.meta["content_hash"])


def find_store(spec: StoreSpec, progress: bool = False) -> Path | None:
    """The complete store for the current data and settings, or ``None``."""
    manifest = load_manifest(spec.data_root)
    key = store_key(spec, manifest, source_hashes(manifest, spec.store_root, progress))
    path = store_dir(spec, key)
    return path if is_complete(path, key) else None


# ---- building ----------------------------------------------------------------------------------------
def _to_patches(image: np.ndarray, positions: list[tuple[int, int]], size: int, out_size: int) -> np.ndarray:
    """uint8 ``[k, out_size, out_size]``; area resampling (cv2.INTER_AREA) from float when resizing."""
    out = np.empty((len(positions), out_size, out_size), dtype=np.uint8)
    if out_size == size:
        q = to_uint8(image)
        for i, (r, c) in enumerate(positions):
            out[i] = q[r : r + size, c : c + size]
        return out
    import cv2

    for i, (r, c) in enumerate(positions):
        small = cv2.resize(
            image[r : r + size, c : c + size], (out_size, out_size), interpolation=cv2.INTER_AREA
        )
        out[i] = to_uint8(small)
    return out


#: Pixels per :func:`np.bincount` call in :func:`_histogram` (its int64 copy: 128 MiB).
_HIST_CHUNK = 1 << 24


def _histogram(patches: np.ndarray) -> np.ndarray:
    """The 256-bin int64 histogram of uint8 ``patches`` (any shape), in chunks: ``np.bincount`` copies its
    input as int64, 8 bytes per pixel, which for one image's patches at a large storage size would not fit."""
    flat = patches.reshape(-1)
    hist = np.zeros(256, dtype=np.int64)
    for start in range(0, flat.size, _HIST_CHUNK):
        hist += np.bincount(flat[start : start + _HIST_CHUNK], minlength=256)
    return hist


def check_store_room(
    store_root: Path, n_patches: int, max_per_image: int, size: int, patch_size: int
) -> None:
    """Refuse, before anything is written, a store that the disk under ``store_root`` or the memory cannot
    hold: ``n_patches x size x size`` bytes (uint8) on disk, and one image's ``max_per_image`` patches at
    ``size`` px in memory (with :func:`~gastrodistill.data.sizes.available_memory`; not checked when the
    system does not say). Raises :class:`StoreError` naming ``data.storage_size`` and what to do; a
    ``size`` above ``patch_size`` is named as upsampling, which adds no detail."""
    upsampled = (
        f" (an upsampling of data.patch_size={patch_size} px by {size / patch_size:.3g}x, which adds no "
        f"detail)"
        if size > patch_size
        else ""
    )
    advice = f"choose a smaller data.storage_size{upsampled}, or leave it unset to store at data.patch_size"
    need_disk = int(n_patches) * size * size
    folder = nearest_existing(store_root)
    free = shutil.disk_usage(folder).free
    if need_disk > free:
        raise StoreError(
            f"data.storage_size={size}: {n_patches} patches of {size}x{size} px need "
            f"{human_bytes(need_disk, iec=True)} of disk for the patch store, more than the "
            f"{human_bytes(free, iec=True)} free under {folder}; {advice}"
        )
    need_memory = int(max_per_image) * size * size
    have = available_memory()
    if have is not None and need_memory > have:
        raise StoreError(
            f"data.storage_size={size}: the {max_per_image} patches of one image at {size}x{size} px need "
            f"{human_bytes(need_memory, iec=True)} of memory while the store is built, more than the "
            f"{human_bytes(have, iec=True)} available; {advice}"
        )
    if upsampled:
        log.warning(
            "data.storage_size=%d is above data.patch_size=%d: every patch is upsampled %.3gx, which adds no "
            "detail, and the store takes %s",
            size,
            patch_size,
            size / patch_size,
            human_bytes(need_disk, iec=True),
        )


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def patient_splits(spec: StoreSpec, manifest: Manifest) -> dict[str, str]:
    """Patient id -> ``train``/``val``/``test`` (:func:`~gastrodistill.data.splits.assign_splits` with the
    spec's fractions and seed). Raises :class:`ManifestError` when no patient lands in train or test."""
    split_of = assign_splits(
        manifest.patients(),
        manifest.manifest_splits(),
        spec.test_fraction,
        spec.val_fraction,
        spec.split_seed,
    )
    for s in ("train", "test"):
        if s not in split_of.values():
            raise ManifestError(
                f"{manifest.manifest_path}: no patient in split {s!r}; add patients or change the split"
            )
    return split_of


#: Splits that need a patch of every class: training learns each class; the test metrics (balanced
#: accuracy, sensitivity, AUC) need each. Validation is carved from few training patients, so it only warns.
CLASS_COMPLETE_SPLITS = ("train", "test")


def check_classes(counts: dict[str, list[int]], manifest: Manifest, split_of: dict[str, str]) -> None:
    """Refuse a train or test split with no patch of some class (``counts``: split -> patches per class of
    :data:`CLASS_NAMES`), naming the split, the class and what to fix; warn for such a validation split.

    A diagnosis class is empty when no patient of the split has that diagnosis (the manifest's diagnosis
    or split column) or when their masks put every patch outside the stomach; ``irrelevant`` is empty when
    the masks cover every patch.

    Raises:
        ManifestError: listing every empty (split, class) of :data:`CLASS_COMPLETE_SPLITS`.
    """
    problems: list[str] = []
    warnings: list[str] = []
    labels_file = f" or {PATCH_LABELS_NAME}" if manifest.patch_labels_path else ""
    for split in SPLIT_ORDER:
        per_class = counts.get(split, [])
        if not sum(per_class):
            continue  # an empty split (e.g. data.val_fraction=0) is the evaluation's to refuse
        diagnoses = {r.diagnosis for r in manifest.records if split_of.get(r.patient_id) == split}
        for c, name in enumerate(CLASS_NAMES):
            if c < len(per_class) and per_class[c] > 0:
                continue
            if c == IRRELEVANT:
                fix = (
                    "every patch lies inside the stomach masks; check the masks (nonzero = stomach, so a "
                    f"mask that is nonzero everywhere covers the whole image){labels_file}"
                )
            elif name not in diagnoses and split == "val":
                fix = (
                    f"no val patient has diagnosis {name!r} (validation takes data.val_fraction of the "
                    "training patients of each diagnosis, none of a diagnosis with fewer than two); add "
                    f"{name} training patients"
                )
            elif name not in diagnoses:
                fix = (
                    f"no {split} patient has diagnosis {name!r}; check the manifest's diagnosis column "
                    f"(and its split column), or add {name} patients to {split}"
                )
            else:
                fix = (
                    f"the masks of the {split} patients with diagnosis {name!r} put every patch outside "
                    f"the stomach; check those masks (an all-zero mask marks every patch irrelevant)"
                    f"{labels_file} or lower data.mask_threshold"
                )
            line = f"split {split!r} has no patch of class {name!r}: {fix}"
            if split in CLASS_COMPLETE_SPLITS:
                problems.append(line)
            else:
                warnings.append(f"{line} (the {split} split's metrics leave that class out)")
    raise_if(problems, f"{manifest.manifest_path}: every class needs training and test patches")
    for w in warnings:
        log.warning("%s", w)


def build_store(spec: StoreSpec, progress: bool = True, force: bool = False) -> Path:
    """Build the store for ``spec`` (or reuse the complete one with the same key); returns its folder."""
    store_root = Path(spec.store_root)
    manifest = check_all(spec.data_root, spec.geometry, progress)  # row and file problems, one report
    digests = image_digests(manifest, store_root, progress, save=False)
    split_of = patient_splits(spec, manifest)
    check_duplicate_images(manifest, digests, split_of)
    sources = source_hashes(manifest, store_root, digests=digests)
    key = store_key(spec, manifest, sources)
    target = store_dir(spec, key)
    if not force and is_complete(target, key):
        meta = _read_meta(target) or {}
        stored = {s: [int(n) for n in c.values()] for s, c in meta.get("counts", {}).items()}
        check_classes(stored, manifest, split_of)  # a store built before this check
        save_hash_cache(store_root)
        log.info("patch store up to date: %s under data.store_root", target.name)  # no local path in a log
        return target
    t0 = time.perf_counter()
    check_dicom_patients(manifest, split_of)  # a warning: said when the store is built, not at every reuse

    geometry = spec.geometry
    sizes = validate_files(manifest, geometry, progress)
    manual = load_patch_labels(manifest)
    check_coverage(manifest, sizes, geometry, manual)
    records = sorted(
        manifest.records, key=lambda r: (SPLIT_ORDER.index(split_of[r.patient_id]), r.patient_id, r.line)
    )
    counts_per_image = [geometry.count(*sizes[r.image]) for r in records]
    n_total = int(sum(counts_per_image))
    size, psize = spec.size, geometry.patch_size
    check_store_room(store_root, n_total, max(counts_per_image, default=0), size, psize)
    labels_of: list[np.ndarray] = []  # from the masks alone: a class without patches is refused up front
    counts = {s: [0] * len(CLASS_NAMES) for s in SPLIT_ORDER}
    for r in tqdm(records, desc="labelling patches", unit="img", disable=not progress, leave=False):
        mask = read_mask(manifest.path(r.mask)) if r.mask else None
        labels = label_image(
            geometry.grid(*sizes[r.image]),
            psize,
            r.diagnosis,
            spec.mask_threshold,
            mask,
            manual.get(image_key(r.image)),
        )
        del mask
        labels_of.append(labels.astype(np.int8))
        for c, n in enumerate(np.bincount(labels, minlength=len(CLASS_NAMES))):
            counts[split_of[r.patient_id]][c] += int(n)
    check_classes(counts, manifest, split_of)
    # store_root is made by atomic_dir, and removed again when the build is refused (nothing left behind)
    # atomic_dir first removes what killed builds of this store left (utils.atomic.remove_leftovers)
    with atomic_dir(target) as tmp:
        mm = np.lib.format.open_memmap(
            tmp / PATCHES_FILE, mode="w+", dtype=np.uint8, shape=(n_total, size, size)
        )
        data_offset = int(mm.offset)
        del mm  # preallocated (sparse); filled below with positioned writes, not through the mapping

        content = hashlib.sha256(json.dumps({"geometry": geometry.as_dict(), "size": size}).encode())
        label_hash = hashlib.sha256()
        hists = {s: np.zeros(256, dtype=np.int64) for s in SPLIT_ORDER}
        ranges = {s: [0, 0] for s in SPLIT_ORDER}
        patients = {s: set() for s in SPLIT_ORDER}
        next_id = 0
        few_level_lines: list[int] = []  # manifest lines of images whose patches use few grey levels
        bar = tqdm(total=n_total, desc="building patch store", unit="patch", disable=not progress)
        with open(tmp / PATCHES_FILE, "r+b") as fp, open(tmp / INDEX_FILE, "w", newline="") as fi:
            writer = csv.writer(fi)
            writer.writerow(INDEX_COLUMNS)
            above: list[str] = []  # lines whose pixels exceed data.bit_depth, found as the images are read
            for r, labels in zip(records, labels_of, strict=True):
                split = split_of[r.patient_id]
                try:
                    image = read_image(manifest.path(r.image), bit_depth=spec.bit_depth)
                except BitDepthExceeded as exc:
                    above.append(f"{r.where}: pixel value {exc.top}")
                    continue
                if above:  # the other images are only read for the same problem, all said at once
                    continue
                if image.shape != sizes[r.image]:
                    raise ManifestError(
                        f"{r.where}: the file changed while the store was being built; run again"
                    )
                positions = geometry.grid(*image.shape)
                labels = labels.astype(np.int64)
                if grey_levels_of(image) < FEW_GREY_LEVELS:
                    few_level_lines.append(r.line)
                patches = _to_patches(image, positions, psize, size)
                del image
                _pwrite_all(fp.fileno(), memoryview(patches).cast("B"), data_offset + next_id * size * size)
                content.update(memoryview(patches).cast("B"))
                label_hash.update(labels.astype(np.int8).tobytes() + split.encode())
                hists[split] += _histogram(patches)
                if ranges[split][1] == 0:
                    ranges[split][0] = next_id
                for (row, col), lab in zip(positions, labels, strict=True):
                    writer.writerow([next_id, r.patient_id, r.image, row, col, int(lab), split, r.diagnosis])
                    next_id += 1
                ranges[split][1] = next_id
                patients[split].add(r.patient_id)
                bar.update(len(positions))
            if above:
                bar.close()
                raise_if(
                    above,
                    f"{len(above)} of {len(records)} images hold pixel values above "
                    f"{2**spec.bit_depth - 1}, the largest of data.bit_depth={spec.bit_depth} "
                    "(found as the build reads each image's pixels); raise data.bit_depth or set it to "
                    "null (the files' own)",
                )
            os.fsync(fp.fileno())
        bar.close()
        _fix_empty_ranges(ranges)
        content.update(label_hash.digest())
        meta = {
            "schema_version": SCHEMA_VERSION,
            "package_version": gastrodistill.__version__,
            "key": key,
            "sources": sources,
            "geometry": geometry.as_dict(),
            "storage_size": size,
            "resampling": "cv2.INTER_AREA" if size != psize else "none",
            "dtype": "uint8",
            "shape": [n_total, size, size],
            "bytes": n_total * size * size,
            "mask_threshold": float(spec.mask_threshold),
            "split_params": {
                "from_manifest": manifest.has_split,
                "test_fraction": float(spec.test_fraction),
                "val_fraction": float(spec.val_fraction),
                "seed": int(spec.split_seed),
            },
            "class_names": CLASS_NAMES,
            "n_images": len(records),
            "n_patients": {s: len(patients[s]) for s in SPLIT_ORDER},
            "counts": {s: dict(zip(CLASS_NAMES, counts[s], strict=True)) for s in SPLIT_ORDER},
            "split_ranges": ranges,
            "pixel_histograms": {s: hists[s].tolist() for s in SPLIT_ORDER},
            "content_hash": content.hexdigest(),
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    save_hash_cache(store_root)
    log.info("patch store built: %s under data.store_root (%d patches)", target.name, n_total)
    line, few = grey_level_report(meta)
    log.debug(line)  # gastrodistill-patches and reproduce print it in their table: once is enough
    for w in few:
        log.warning(w)
    if few_level_lines:
        log.warning("%s", few_levels_warning(few_level_lines))
    return target


def grey_levels_of(image: np.ndarray) -> int:
    """Distinct uint8 levels of a float ``[H, W]`` image in [0, 1], quantised as the store does."""
    return int(np.count_nonzero(_histogram(to_uint8(image))))


def few_levels_warning(lines: list[int], listed: int = 10) -> str:
    """The warning for images that use fewer than :data:`FEW_GREY_LEVELS` uint8 levels each, by
    their manifest ``lines`` (at most ``listed`` shown; no path: it goes into the job's log). A split's
    count (:func:`grey_level_report`) misses such images when others of the split fill the range."""
    shown = ", ".join(str(n) for n in lines[:listed]) + (
        f", ... ({len(lines)} images)" if len(lines) > listed else ""
    )
    return (
        f"{MANIFEST_NAME} line(s) {shown}: each image uses fewer than {FEW_GREY_LEVELS} of 256 grey levels, "
        "kept so in its patches for good: their values fill a small part of the range they were scaled by (a "
        "PNG/TIFF's bit depth: set data.bit_depth; a DICOM's BitsStored above the data's own, or a window "
        "far wider than the values: re-export). Check those images, unless they really have so few levels"
    )


def grey_level_report(meta: dict) -> tuple[str, list[str]]:
    """One line with the distinct uint8 grey levels of each split, and a warning per split using few.

    Few levels mean the pixel values fill a small part of the bit depth they were divided by (e.g.
    12-bit values in 16-bit PNGs without ``sBIT``), and the patches keep only those levels for good.
    """
    hists = meta.get("pixel_histograms", {})
    levels = {s: int(np.count_nonzero(hists[s])) for s in SPLIT_ORDER if s in hists and sum(hists[s])}
    line = "grey levels used (of 256): " + ", ".join(f"{s} {n}" for s, n in levels.items())
    warnings = [
        f"split {s!r} uses only {n} of 256 grey levels: the images' values fill a small part of the bit "
        "depth they were scaled by (e.g. 12-bit data in 16-bit PNG/TIFF without sBIT/MaxSampleValue). Set "
        "data.bit_depth to the data's bit depth (e.g. data.bit_depth=12) and rebuild, unless the images "
        "really have so few levels"
        for s, n in levels.items()
        if n < FEW_GREY_LEVELS
    ]
    return line, warnings


def _fix_empty_ranges(ranges: dict[str, list[int]]) -> None:
    """Give an empty split the empty range at its place in the order (train | val | test)."""
    end = 0
    for s in SPLIT_ORDER:
        if ranges[s][1] == 0:
            ranges[s] = [end, end]
        end = ranges[s][1]
