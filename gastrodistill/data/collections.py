"""Any labelled image collection as an :class:`ImageDataModule`: a folder of class folders or an ``.npz``.

The same distillation, evaluation, audit and artifact code then runs on CT, MRI, dermatology or
MedMNIST data without new code: image size, channels and the number and names of classes are read
from the data, never assumed.

Pixel conventions shared by both layouts (the stored arrays are ``[N, C, H, W]``):

- channels: 1 when every image is grayscale, else 3 (grayscale images are repeated to RGB; an alpha
  channel is dropped; palette, CMYK and other colour modes are converted to RGB);
- depth: uint8 when every image is 8-bit, uint16 when any is 16-bit (8-bit values scaled by 257, so
  the [0, 1] range is preserved), float32 when any is floating point (integers scaled to [0, 1]);
  float images must be finite and lie in [0, 1];
- size: all images must share one size unless ``image_size`` is set (then each is resized with
  OpenCV: area interpolation when shrinking, bilinear when enlarging).

Errors are :class:`CollectionError` (a ``ValueError`` via ``DataInputError``) naming the file
(relative to the data root) or the ``.npz`` key and saying what to fix; nothing is cached or written,
so no half-built state remains.
"""

from __future__ import annotations

import contextlib
import io
import logging
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gastrodistill.data.base import SPLITS, TensorImageDataModule, class_name_list
from gastrodistill.data.errors import DataInputError, ImageReadError, relative_path_hint
from gastrodistill.data.manifest import MANIFEST_NAME
from gastrodistill.data.readers import Decoded, apply_bit_depth, bit_depth_setting, decode, transposed_hint
from gastrodistill.data.sizes import check_fits_in_memory, image_size_hw
from gastrodistill.utils.hashing import sha256_json
from gastrodistill.utils.seeding import numpy_rng

log = logging.getLogger(__name__)

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]

#: Folder names accepted as the validation split in the ``train/ val/ test/`` layout.
VAL_ALIASES = ("val", "valid", "validation")
NPZ_KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
#: First bytes of a zip archive (an ``.npz``; the second is an empty archive) and of a lone ``.npy``.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"


class CollectionError(DataInputError):
    """A labelled image collection that cannot be used as given (a ``ValueError``; says what to fix)."""


# ---- pixels ----------------------------------------------------------------------------------------
def _refuse_empty_sides(hw: Sequence[int], shape: Sequence[int], where: str) -> None:
    """Refuse images with a zero-sized side (``hw`` their height and width; ``shape`` as stored)."""
    if 0 in tuple(hw):
        raise CollectionError(
            f"{where}: images of shape {tuple(shape)} have a zero-sized side ({hw[0]}x{hw[1]} px); "
            "every image needs at least one pixel of height and width, so fix or re-export them"
        )


def _shortest(value: np.floating) -> str:
    """``value`` in the fewest digits that read back as it (1.0005 of a float32 image, not the "1" of four
    figures, which hid why a maximum just above 1 was refused)."""
    return np.format_float_positional(value, trim="-")


def _normalise_pixels(arr: np.ndarray, where: str) -> np.ndarray:
    """``[..., H, W]`` or ``[..., H, W, 1-4]`` -> ``[..., H, W, 1|3]`` uint8, uint16 or float32 in [0, 1]."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim not in (3, 4) or arr.shape[-1] not in (1, 2, 3, 4):
        raise CollectionError(
            f"{where}: unsupported image shape {arr.shape}; expected [H, W] or [H, W, 1|3|4]"
        )
    _refuse_empty_sides(arr.shape[-3:-1], arr.shape, where)
    if arr.shape[-1] == 2:  # gray + alpha
        arr = arr[..., :1]
    elif arr.shape[-1] == 4:  # colour + alpha
        arr = arr[..., :3]
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):
        return np.ascontiguousarray(arr, dtype=np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise CollectionError(f"{where}: float image contains NaN or infinite values; fix or drop it")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise CollectionError(
                f"{where}: float image values lie in [{_shortest(arr.min())}, {_shortest(arr.max())}], "
                "outside [0, 1]; scale them to [0, 1] or store uint8/uint16"
            )
        return arr
    raise CollectionError(
        f"{where}: pixel type {arr.dtype} is not supported (no agreed intensity scale); "
        "convert the images to uint8, uint16 or float in [0, 1]"
    )


def read_image(path: str | Path, where: str | None = None, bit_depth: int | None = None) -> np.ndarray:
    """One image file as ``[H, W, 1|3]`` uint8/uint16/float32, upright (the project's one reader stack).

    Reads through :func:`gastrodistill.data.readers.decode` (PNG/JPEG/TIFF/DICOM/any Pillow format,
    EXIF/TIFF orientation, PNG sBIT and TIFF bit depths, DICOM display pipeline); integers are
    rescaled so their bit depth's maximum becomes the container's (a 12-bit 4095 becomes 65535).
    """
    path = Path(path)
    where = where or path.name
    try:
        arr = decode(path, colour=True, bit_depth=bit_depth, where=where).to_container()
    except ImageReadError as exc:
        raise CollectionError(exc.problems) from exc
    return _normalise_pixels(arr, where)


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    if (h, w) == size:
        return img
    interp = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_LINEAR
    out = cv2.resize(img, (size[1], size[0]), interpolation=interp)
    return out.reshape(size[0], size[1], img.shape[2])


def harmonise(
    batches: Sequence[np.ndarray], names: Sequence[str], image_size: tuple[int, int] | None
) -> np.ndarray:
    """``[N_i, H, W, 1|3]`` batches of any depth -> one ``[N, C, H, W]`` array (conventions: module doc)."""
    total = sum(len(b) for b in batches)
    if total == 0:
        raise CollectionError("no images found")
    channels = 3 if any(b.shape[-1] == 3 for b in batches) else 1
    grey = sum(len(b) for b in batches if b.shape[-1] == 1)
    if channels == 3 and grey:  # counts only: file names stay out of the job's log
        log.warning(
            "%d of %d images are grayscale and the others colour: the grayscale ones are repeated to 3 "
            "channels (RGB); convert the collection to one kind to choose",
            grey,
            total,
        )
    if any(b.dtype == np.float32 for b in batches):
        dtype = np.float32
    elif any(b.dtype == np.uint16 for b in batches):
        dtype = np.uint16
    else:
        dtype = np.uint8
    size = image_size
    if size is None:
        size = batches[0].shape[1:3]
        for b, name in zip(batches, names, strict=True):
            if b.shape[1:3] != size:
                advice = transposed_hint(tuple(size), tuple(b.shape[1:3])) or (
                    "set data.image_size (e.g. data.image_size=64) to resize them"
                )
                raise CollectionError(
                    f"mixed image sizes: {names[0]!r} is {size[0]}x{size[1]} but {name!r} is "
                    f"{b.shape[1]}x{b.shape[2]}; {advice}"
                )
    # before the [N, C, H, W] array and its float32 tensors: at the images' own size too (2048 px X-rays)
    check_fits_in_memory(
        total, channels, tuple(size), "data.image_size", CollectionError, image_size is not None
    )
    try:
        out = np.empty((total, channels, *size), dtype=dtype)
        start = 0
        for b in batches:
            if dtype == np.float32 and b.dtype != np.float32:
                b = b.astype(np.float32) / (255.0 if b.dtype == np.uint8 else 65535.0)
            elif dtype == np.uint16 and b.dtype == np.uint8:
                b = b.astype(np.uint16) * 257
            if b.shape[1:3] != tuple(size):
                b = np.stack([_resize(im, size) for im in b])
            out[start : start + len(b)] = b.transpose(0, 3, 1, 2)  # a single channel broadcasts to RGB
            start += len(b)
    except MemoryError as exc:  # the estimate above passed, but memory ran out all the same
        raise CollectionError(
            f"data.image_size: {total} images of {channels} channel(s) at {size[0]}x{size[1]} px do not fit "
            f"in memory ({exc}); set a smaller data.image_size, or use fewer images"
        ) from exc
    return out


# ---- splits ----------------------------------------------------------------------------------------
def stratified_split(
    labels: np.ndarray, fractions: dict[str, float], seed: int, class_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Seeded per-class split; every class gets at least one sample in each split with a positive fraction."""
    parts: dict[str, list[np.ndarray]] = {"train": [], **{name: [] for name in fractions}}
    for c, name in enumerate(class_names):
        idx = np.flatnonzero(labels == c)
        idx = idx[numpy_rng(seed, "collection-split", c).permutation(len(idx))]
        start = 0
        for split, frac in fractions.items():
            n = max(1, round(len(idx) * frac)) if frac > 0 else 0
            parts[split].append(idx[start : start + n])
            start += n
        if start >= len(idx):
            need = sum(1 for f in fractions.values() if f > 0) + 1
            raise CollectionError(
                f"class {name!r} has {len(idx)} images, too few to split into train and "
                f"{'/'.join(fractions)}; give it at least {need} images or provide train/ val/ test/ folders"
            )
        parts["train"].append(idx[start:])
    return {split: np.sort(np.concatenate(p)) for split, p in parts.items()}


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise CollectionError(f"{name} must be in (0, 1), got {value}")
    return value


# ---- folders ---------------------------------------------------------------------------------------
def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _refuse_broken_links(folder: Path, root: Path, entries: list[Path] | None = None) -> None:
    """Raise CollectionError naming the visible symbolic links among ``entries`` (default: ``folder``'s
    own) whose target is missing: a file or a class folder the collection names but cannot read, which
    skipping would drop without a word (e.g. a folder linked to an unmounted drive)."""
    entries = [p for p in folder.iterdir() if _visible(p)] if entries is None else entries
    broken = [p for p in entries if p.is_symlink() and not p.exists()]
    if broken:
        names = ", ".join(repr(p.relative_to(root).as_posix()) for p in broken[:3])
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise CollectionError(
            f"{names}{more}: symbolic link(s) to a missing file or folder; restore the target (is a drive "
            "unmounted?) or remove the link"
        )


def _class_files(class_dir: Path, root: Path) -> list[Path]:
    """The visible files under ``class_dir``. Raises CollectionError for a class without files and for a
    symbolic link whose target is missing (an image the collection names but cannot read; skipping it
    would drop it silently)."""
    visible = [
        p
        for p in sorted(class_dir.rglob("*"))
        if all(_visible(part) for part in [p, *p.relative_to(root).parents] if part.name)
    ]
    _refuse_broken_links(class_dir, root, visible)
    files = [p for p in visible if p.is_file()]
    if not files:
        raise CollectionError(
            f"class folder {class_dir.relative_to(root).as_posix()!r} holds no images; "
            "add images or remove the folder"
        )
    return files


class FolderDataModule(TensorImageDataModule):
    """Images in class folders: ``root/<class>/*`` (split here) or ``root/{train,val,test}/<class>/*``.

    Class names are the folder names, sorted (or the order given by ``classes``, which may also pick a
    subset). With a flat class tree a seeded stratified split (``split_seed``, separate from the run's
    seed so the test set stays fixed across runs) makes ``val`` and ``test``; with ``train/`` and
    ``test/`` but no ``val/`` (``valid/``, ``validation/``), ``val`` is carved from ``train``.
    Hidden files and folders (names starting with ``.``) and files directly in ``root`` are ignored;
    any other file that is not a readable image is an error, and a ``manifest.csv`` in ``root`` (a
    gastric collection, which ``data=gastric`` reads) is refused.
    """

    def __init__(
        self,
        root: str,
        image_size: int | str | Sequence[int | str] | None = None,
        classes: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        bit_depth: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(source_id="folder", **kwargs)
        self.bit_depth = bit_depth_setting(bit_depth, CollectionError)
        self.root = Path(str(root)).expanduser()
        self.resize_to = image_size_hw(image_size, "data.image_size", CollectionError)
        self.classes = list(classes) if classes is not None else None
        self.val_fraction = _check_fraction("val_fraction", val_fraction)
        self.test_fraction = _check_fraction("test_fraction", test_fraction)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise CollectionError("val_fraction + test_fraction must be below 1 (the rest is train)")
        self.split_seed = int(split_seed)

    def _class_dirs(self, base: Path) -> dict[str, Path]:
        _refuse_broken_links(base, self.root)
        found = {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and _visible(p)}
        where = base.relative_to(self.root).as_posix() if base != self.root else "the data root"
        if self.classes is None:
            if not found:
                raise CollectionError(f"no class folders in {where}; expected one sub-folder per class")
            return found
        missing = [c for c in self.classes if c not in found]
        if missing:
            raise CollectionError(f"classes {missing} have no folder in {where} (found {sorted(found)})")
        return {c: found[c] for c in self.classes}

    def _layout(self) -> dict[str | None, Path]:
        if not self.root.is_dir():
            raise CollectionError(
                "the data root (data.root) is not a directory; point it at the folder of class folders"
                + relative_path_hint(self.root, "data.root")
            )
        _refuse_broken_links(self.root, self.root)  # a class or split folder on an unmounted drive
        if (self.root / MANIFEST_NAME).is_file():  # its images/ and masks/ were read as two classes
            raise CollectionError(
                f"the data root holds {MANIFEST_NAME}: a collection of whole X-rays with patients and "
                "stomach masks (docs/data.md), which data=gastric reads (data=gastric data.root=...); "
                "data=folder reads one sub-folder of images per class"
            )
        subdirs = {p.name for p in self.root.iterdir() if p.is_dir() and _visible(p)}
        split_names = {"train", "test", *VAL_ALIASES}
        if not subdirs & split_names:
            return {None: self.root}
        vals = sorted(subdirs & set(VAL_ALIASES))
        if "train" not in subdirs or "test" not in subdirs or len(vals) > 1 or subdirs - split_names:
            raise CollectionError(
                f"the data root has folders {sorted(subdirs)}: use either one folder per class, "
                "or train/ and test/ (and optionally val/) each holding one folder per class"
            )
        layout: dict[str | None, Path] = {"train": self.root / "train", "test": self.root / "test"}
        if vals:
            layout["val"] = self.root / vals[0]
        return layout

    def load_arrays(self) -> tuple[Arrays, list[str]]:
        """Decode the class folders into ``{split: (images [N, C, H, W], labels [N])}`` and the class names.

        Raises :class:`CollectionError` for fewer than two classes or an unusable layout or file."""
        layout = self._layout()
        class_names = list(self._class_dirs(next(iter(layout.values()))))
        if len(class_names) < 2:
            raise CollectionError(
                f"the data root holds one class folder {class_names}; a classifier needs two or more "
                "classes, so add a folder per class (or list two or more in data.classes)"
            )
        images: list[np.ndarray] = []
        names: list[str] = []
        labels: list[int] = []
        splits: list[str | None] = []
        problems: list[str] = []  # every empty class folder and unreadable file, reported together
        for split, base in layout.items():
            try:
                dirs = self._class_dirs(base)
            except CollectionError as exc:
                problems += exc.problems
                continue
            if list(dirs) != class_names:
                problems.append(
                    f"folder {base.name!r} has classes {sorted(dirs)} but 'train' has "
                    f"{sorted(class_names)}; every split needs the same class folders"
                )
                continue
            for label, class_dir in enumerate(dirs.values()):
                try:
                    files = _class_files(class_dir, self.root)
                except CollectionError as exc:
                    problems += exc.problems
                    continue
                for f in files:
                    rel = f.relative_to(self.root).as_posix()
                    try:
                        images.append(read_image(f, where=rel, bit_depth=self.bit_depth)[None])
                    except CollectionError as exc:
                        problems += exc.problems
                        continue
                    names.append(rel)
                    labels.append(label)
                    splits.append(split)
        if len(problems) == 1:
            raise CollectionError(problems)  # one line, as before
        if problems:
            raise CollectionError(
                problems, header=f"{len(problems)} problems in the image folders; fix them and run again:"
            )
        x = harmonise(images, names, self.resize_to)
        y = np.asarray(labels, dtype=np.int64)
        where = np.asarray([s or "" for s in splits])
        if None in layout:
            idx = stratified_split(
                y, {"val": self.val_fraction, "test": self.test_fraction}, self.split_seed, class_names
            )
        else:
            idx = {s: np.flatnonzero(where == s) for s in layout}
            if "val" not in idx:
                tr = idx["train"]
                sub = stratified_split(y[tr], {"val": self.val_fraction}, self.split_seed, class_names)
                idx["train"], idx["val"] = tr[sub["train"]], tr[sub["val"]]
        return {s: (x[idx[s]], y[idx[s]]) for s in SPLITS}, class_names

    def source_hash(self) -> str:
        """SHA-256 of the arrays' hash and the class names (64 hex characters; no path)."""
        return sha256_json({"pixels": super().source_hash(), "classes": self.class_names})

    @property
    def bytes_per_pixel(self) -> int | None:
        """Bytes of one real pixel as loaded from the files (the compression ratio's denominator)."""
        return self.array_bytes_per_pixel()


# ---- npz -------------------------------------------------------------------------------------------
def _warn_within_12_bits(arr: np.ndarray, key: str) -> None:
    """Warn when 16-bit images ``[N, H, W(, C)]`` hold values within 12 bits: divided by 65535 they fill a
    sixteenth of the grey range or less (a breaker's 12-bit collection loaded that dark silently). The
    warning names the npz ``key`` only (it goes into the job's log: no file name)."""
    if arr.dtype != np.uint16 or not arr.size or int(arr.max()) > 4095:
        return
    top = int(arr.max())
    bits = max(1, top.bit_length())
    log.warning(
        "data.path, key %r: 16-bit values reach at most %d, within %d bits: divided by 65535 they fill "
        "1/%d of the grey range; set data.bit_depth=%d if the data are %d-bit",
        key,
        top,
        bits,
        2 ** (16 - bits),
        max(8, bits),
        max(8, bits),
    )


def _npz_bit_depth(arr: np.ndarray, bit_depth: int | None, where: str, key: str = "") -> np.ndarray:
    """Integer images of ``bit_depth`` significant bits rescaled to their container (see readers.Decoded).
    Without ``bit_depth``, 16-bit images within 12 bits are warned about (:func:`_warn_within_12_bits`)."""
    if bit_depth is None:
        _warn_within_12_bits(arr, key)
    if bit_depth is None or arr.dtype.kind != "u":
        return arr
    try:
        pixels, bits = apply_bit_depth(arr, where, bit_depth, None, False)
    except ImageReadError as exc:
        raise CollectionError(exc.problems) from exc
    return Decoded(pixels, float(2**bits - 1), bits).to_container()


def same_class_name(a: str, b: str) -> bool:
    """Whether two class names name one class: equal but for case and runs of white space."""
    return " ".join(str(a).split()).casefold() == " ".join(str(b).split()).casefold()


def moves_a_class(given: Sequence[str], stored: Sequence[str]) -> bool:
    """Whether ``given`` class names put one of ``stored``'s names (:func:`same_class_name`) at another
    label index: a reorder, which only renames the stored labels (``[Cancer, Normal]`` for a file's
    ``[normal, cancer]``, or ``[cancer, ulcer]``, moves cancer from label 1 to 0; a breaker's finding)."""
    return any(same_class_name(g, t) and i != j for i, g in enumerate(given) for j, t in enumerate(stored))


def _one_based_advice(used: list[int], top: int) -> str | None:
    """The advice for labels ``used`` that run 1..``top`` (counted from 1), else None."""
    return f"the labels run 1..{top}: count from 0 (labels - 1)" if used == list(range(1, top + 1)) else None


def _used_labels(labels: dict[str, np.ndarray]) -> list[int]:
    """The label values used in any split (``{split: labels [N]}``), sorted."""
    return sorted({int(v) for split_labels in labels.values() for v in np.unique(split_labels)})


def _npz_images(arr: np.ndarray, where: str) -> np.ndarray:
    """``[N,H,W]`` / ``[N,H,W,C]`` (or ``[N,C,H,W]``) -> ``[N, H, W, C]`` with C in {1, 3}.

    Raises CollectionError naming ``where`` for another shape, 4 channels (an array has no alpha: they
    would be data, e.g. four MRI sequences, which the image reader's RGBA rule cut to 3 without a word)
    or a zero-sized height or width.
    """
    out = None
    if arr.ndim == 4 and 4 in (arr.shape[1], arr.shape[3]) and not {arr.shape[1], arr.shape[3]} & {1, 3}:
        raise CollectionError(
            f"{where}: images of shape {arr.shape} have 4 channels; the networks read 1 (grey) or 3 (colour) "
            "channels and an array has no alpha to drop: save the channels to use (e.g. images[..., :3])"
        )
    if arr.ndim == 3:
        out = arr[..., None]
    elif arr.ndim == 4 and arr.shape[3] in (1, 3):
        out = arr
    elif arr.ndim == 4 and arr.shape[1] in (1, 3):
        out = arr.transpose(0, 2, 3, 1)
    if out is not None:
        _refuse_empty_sides(out.shape[1:3], arr.shape, where)
        return out
    raise CollectionError(
        f"{where}: images of shape {arr.shape}; expected [N, H, W] or [N, H, W, C] (C = 1 or 3)"
    )


def _npz_labels(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise CollectionError(
            f"{where}: labels of shape {arr.shape}; expected [N] or [N, 1] (one class per image; "
            "multi-label data are not supported)"
        )
    if arr.dtype.kind not in "iub":
        raise CollectionError(f"{where}: labels have dtype {arr.dtype}; store integer class indices")
    if arr.size and arr.min() < 0:
        raise CollectionError(f"{where}: negative label {arr.min()}; labels must be class indices 0..K-1")
    return arr.astype(np.int64)


def _npz_member(npz: np.lib.npyio.NpzFile, key: str, name: str) -> np.ndarray:
    """One array of an open ``.npz`` (read with ``allow_pickle=False``); a damaged member names its key."""
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CollectionError(
                f"npz file {name!r}, key {key!r}: holds Python objects (pickle), which are "
                "refused; store plain numeric arrays (and class_names as a string array)"
            ) from exc
        raise CollectionError(
            f"npz file {name!r}, key {key!r}: damaged array ({exc}); re-save the file with numpy.savez"
        ) from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CollectionError(
            f"npz file {name!r}, key {key!r}: damaged array ({type(exc).__name__}: {exc}); copy the file "
            "again or re-save it with numpy.savez"
        ) from exc
    except MemoryError as exc:  # numpy allocates the array its header declares (a traceback before)
        raise CollectionError(
            f"npz file {name!r}, key {key!r}: the array does not fit in memory ({exc}); use a machine with "
            "more memory, or save a smaller collection (fewer or smaller images)"
        ) from exc


class NpzDataModule(TensorImageDataModule):
    """One ``.npz`` in the MedMNIST layout: ``{train,val,test}_{images,labels}`` (+ optional ``class_names``).

    Images ``[N, H, W]`` or ``[N, H, W, C]`` (uint8, uint16 or float in [0, 1]); labels ``[N]`` or
    ``[N, 1]``. Class names come from ``class_names`` (argument, else the file's key, else "0".."K-1").
    The file is read with ``allow_pickle=False``: object arrays are refused.
    """

    def __init__(
        self,
        path: str,
        class_names: Sequence[str] | None = None,
        image_size: int | str | Sequence[int | str] | None = None,
        bit_depth: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(source_id="npz", **kwargs)
        self.bit_depth = bit_depth_setting(bit_depth, CollectionError)
        self.path = Path(str(path)).expanduser()
        self.given_names = class_name_list(class_names) if class_names is not None else None
        self.resize_to = image_size_hw(image_size, "data.image_size", CollectionError)

    def _read(self) -> dict[str, np.ndarray]:
        name = self.path.name
        if self.path.is_dir():
            raise CollectionError(
                f"npz file {name!r} (data.path) is a folder, not a file; set data.path to an .npz file, "
                "or, for a folder of images in class folders, use data=folder data.root=<that folder>"
            )
        if not self.path.is_file():
            raise CollectionError(
                f"npz file {str(self.path)!r} (data.path) not found; set data.path to an existing .npz file"
                + relative_path_hint(self.path, "data.path")
            )
        data = self.path.read_bytes()
        if data.startswith(NPY_MAGIC):
            raise CollectionError(
                f"npz file {name!r} is a single .npy array, not an .npz archive; save the splits as "
                "numpy.savez(path, train_images=..., train_labels=..., val_images=..., ...)"
            )
        if not data.startswith(ZIP_MAGICS):
            raise CollectionError(
                f"npz file {name!r} is not an .npz archive (it does not start as a zip file does); "
                "re-save it with numpy.savez"
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                keys = list(npz.files)
                missing = [k for k in NPZ_KEYS if k not in keys]
                if missing:
                    raise CollectionError(f"npz file {name!r} lacks keys {missing} (has {sorted(keys)})")
                return {
                    k: _npz_member(npz, k, name)
                    for k in [*NPZ_KEYS, *(["class_names"] if "class_names" in keys else [])]
                }
        except CollectionError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, corrupt
            raise CollectionError(
                f"npz file {name!r} is damaged ({type(exc).__name__}: {exc}); copy it again or re-save "
                "it with numpy.savez"
            ) from exc

    @staticmethod
    def _stored_class_names(arr: np.ndarray, name: str) -> list[str]:
        """The file's ``class_names`` as a list; :class:`CollectionError` naming the key if malformed."""
        if arr.dtype.kind not in "US" or arr.ndim != 1:
            raise CollectionError(f"npz file {name!r}, key 'class_names': expected a 1-D string array")
        try:
            return class_name_list(arr.tolist(), f"npz file {name!r}, key 'class_names'")
        except ValueError as exc:
            raise CollectionError(str(exc)) from exc

    def load_arrays(self) -> tuple[Arrays, list[str]]:
        """Read the file into ``{split: (images [N, C, H, W], labels [N])}`` and the class names.

        Raises :class:`CollectionError` naming the file and key for a missing or malformed array."""
        raw = self._read()
        name = self.path.name
        names = self.given_names
        if names is None and "class_names" in raw:
            names = self._stored_class_names(raw["class_names"], name)
        elif "class_names" in raw:
            stored = None
            with contextlib.suppress(CollectionError):  # given names replace a malformed stored list
                stored = self._stored_class_names(raw["class_names"], name)
            if stored is not None and moves_a_class(names, stored):
                raise CollectionError(  # a newcomer's reorder (to match an artifact) swapped classes silently
                    f"data.class_names {names} are the file's own class_names {stored} in another order; "
                    "data.class_names names the stored labels 0..K-1 and does not reorder them, so this "
                    "would swap the classes: drop data.class_names, or relabel the arrays in the order you "
                    "need"
                )
        images: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
        for split in SPLITS:
            ik, lk = f"{split}_images", f"{split}_labels"
            x = _npz_images(raw[ik], f"npz file {name!r}, key {ik!r}")
            y = _npz_labels(raw[lk], f"npz file {name!r}, key {lk!r}")
            if len(x) != len(y):
                raise CollectionError(
                    f"npz file {name!r}: {ik!r} has {len(x)} images but {lk!r} has {len(y)} labels"
                )
            if len(x) == 0:
                raise CollectionError(f"npz file {name!r}: {ik!r} is empty; every split needs images")
            images[split], labels[split] = x, y
        shapes = {split: images[split].shape[1:3] for split in SPLITS}
        if self.resize_to is None and len(set(shapes.values())) > 1:
            first, *others = (tuple(v) for v in shapes.values())
            hints = {transposed_hint(first, o) for o in others if o != first} - {""}
            raise CollectionError(
                f"npz file {name!r}: image sizes differ between splits {shapes}; "
                + (hints.pop() if hints else "set data.image_size (e.g. data.image_size=64) to resize them")
            )
        k = len(names) if names is not None else int(max(labels[s].max() for s in SPLITS)) + 1
        for split in SPLITS:
            lk = f"{split}_labels"
            if labels[split].max() >= k:
                from_one = _one_based_advice(_used_labels(labels), k)  # with as many class_names
                raise CollectionError(
                    f"npz file {name!r}, key {lk!r}: label {labels[split].max()} out of range for "
                    f"{k} classes {names}; " + (from_one or "fix the labels or class_names")
                )
        if k < 2:
            raise CollectionError(
                f"npz file {name!r}: the labels hold one class only ({names or [0]}); a classifier needs "
                "two or more classes, so add the other class's images"
            )
        for split, role in (("train", "training"), ("val", "validation"), ("test", "test")):
            counts = np.bincount(labels[split], minlength=k)
            if (counts == 0).any():
                empty = [int(c) for c in np.flatnonzero(counts == 0)]
                used = _used_labels(labels)
                advice = (
                    "relabel to consecutive indices or drop those classes"
                    if split == "train"
                    else "balanced accuracy, sensitivity and AUC need every class; move some images there"
                )
                if names is not None and len(used) < k:  # the names, not the labels, set k
                    advice = (
                        f"class_names gives {k} names but the labels use {len(used)} classes {used}; "
                        + advice
                    )
                elif one_based := _one_based_advice(used, k - 1):
                    advice = one_based
                elif len(used) == 2 and used[0] == 0 and used[1] > 1:  # e.g. 0 / 255, not 0 / 1
                    advice = f"the labels take the two values {used}: write them as 0 and 1"
                named = [f"{c} ({names[c]!r})" if names is not None else str(c) for c in empty]  # name too
                shown = ", ".join(named if len(named) <= 8 else [*named[:4], "...", *named[-2:]])
                raise CollectionError(
                    f"npz file {name!r}, key '{split}_labels': classes [{shown}] have no {role} images; "
                    + advice
                )
        class_names = names or [str(i) for i in range(k)]
        # Harmonise all splits together so channels and depth agree (e.g. one float split).
        batches = [
            _npz_bit_depth(
                _normalise_pixels(images[s], f"npz file {name!r}, key '{s}_images'"),
                self.bit_depth,
                f"npz file {name!r}, key '{s}_images'",
                f"{s}_images",
            )
            for s in SPLITS
        ]
        x_all = harmonise(batches, [f"{s}_images" for s in SPLITS], self.resize_to)
        out: Arrays = {}
        start = 0
        for split in SPLITS:
            n = len(labels[split])
            out[split] = (x_all[start : start + n], labels[split])
            start += n
        return out, class_names

    def source_hash(self) -> str:
        """SHA-256 of the arrays' hash and the class names (64 hex characters; no path)."""
        return sha256_json({"pixels": super().source_hash(), "classes": self.class_names})

    @property
    def bytes_per_pixel(self) -> int | None:
        """Bytes of one real pixel as loaded from the files (the compression ratio's denominator)."""
        return self.array_bytes_per_pixel()
