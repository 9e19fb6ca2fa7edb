"""The shareable artifact: a distilled set another hospital can load safely and train from.

Layout (a folder, optionally also a ``.zip`` of the same three files)::

    distilled.safetensors   images, targets (soft labels), label_logits, lrs, raw_lrs
    card.json               schema version, shapes, classes, normalisation, recipe, metrics, hashes
    grid.png                the distilled images with their soft labels

Nothing in it can execute code on load (no pickles), and loading checks everything it can: the
schema version, the sha256 and size of every file (truncation, tampering), the tensors' names,
dtypes and shapes against the card, and that the soft labels and learning rates agree with the
stored logits and raw rates.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import gastrodistill
from gastrodistill.sharing.card import (
    CALLER_FIELDS,
    COMPUTED_FIELDS,
    FORMAT,
    PUBLIC_RECORDS,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    CardError,
    check_caller_fields,
    check_public,
    find_strings,
    seal,
    seal_ok,
)
from gastrodistill.sharing.grid import save_grid
from gastrodistill.sharing.text_parts import safetensors_header, text_parts
from gastrodistill.utils.atomic import atomic_dir, atomic_path
from gastrodistill.utils.hashing import sha256_bytes
from gastrodistill.utils.run_info import package_versions
from gastrodistill.utils.safe_config import UnsafeNodeError, check_received_node
from gastrodistill.utils.values import is_count, is_finite_number

if TYPE_CHECKING:
    from gastrodistill.distillation.distilled_set import DistilledSet

TENSORS_FILE = "distilled.safetensors"
CARD_FILE = "card.json"
GRID_FILE = "grid.png"
ARTIFACT_FILES = (TENSORS_FILE, CARD_FILE, GRID_FILE)
TENSOR_NAMES = ("images", "targets", "label_logits", "lrs", "raw_lrs")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
#: numpy array files: not pickles as the project reads them (``allow_pickle=False``), but not artifacts.
NUMPY_SUFFIXES = (".npy", ".npz")
#: What an artifact is, for the messages that refuse something else.
ARTIFACT_IS = (
    "an artifact is the folder, or its .zip, that gastrodistill-audit writes for each set it audits, or the "
    "artifact stage of gastrodistill-reproduce (stages=[...,artifact]), into <output>/artifacts/<name>, "
    "holding only " + ", ".join(ARTIFACT_FILES)
)
#: Refuse archive members larger than this (guards against zip bombs).
MAX_MEMBER_BYTES = 4 << 30  # all three files together
MAX_CARD_BYTES = 16 << 20
#: More entries than this in a zip or folder are refused at once, unnamed but for a few (an artifact holds
#: three; a zip of 30,000 empty members took seconds to check and gave a 289 KB message).
MAX_ENTRIES = 64
#: The zip compression methods Python's ``zipfile`` reads (stored, deflate, bzip2, lzma); 7-Zip's and
#: WinZip's AES encryption (method 99) and others it cannot.
_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
#: The longest set name a received card may carry in ``name`` (a set's name is a folder name: 255 bytes).
MAX_NAME_CHARS = 255
#: The smallest ``normalization.std`` a received card may give: a tenth of the floor the data modules put
#: under a channel's std (1e-6 of the [0, 1] pixel range: ``data.base.channel_stats``,
#: ``data.patch_store.hist_stats``), so every card the project writes passes even after float32 rounding,
#: and far above float32's smallest normal (~1.2e-38): a site divides by it in float32 (``SiteAdapter``),
#: where ``1e-300`` is 0 and ``x / std`` infinite.
MIN_CARD_STD = 1e-7
#: How far outside the [0, 1] pixel range a received image may lie once the card's normalisation is undone
#: (``x * std + mean``), in pixel ranges on either side. Distilled images are optimised freely and leave
#: the range a little (the sets written so far stay within about 0.3 of it); a hundred ranges is far beyond
#: that and still refuses images no distillation writes (values x1e30 made the replay's loss NaN).
IMAGE_RANGE_MARGIN = 100.0
#: The largest float32: a card value beyond it is infinite once a site computes with it.
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
#: The figures a receiving site compares with a card's published ones (``evaluation.<figure>_mean`` and
#: ``_std``): all fractions in [0, 1], which :func:`check_card_evaluation` holds a received card to.
REPORTED = (
    "patch_accuracy",
    "patch_balanced_accuracy",
    "patch_macro_f1",
    "patch_auc",  # the headline figure of data without patients (npz, folder): a site compares it too
    "patient_sensitivity",
    "patient_specificity",
    "patient_hm",
    "patient_auc",
)
#: Only the project's own networks are built from a received card (a ``_target_`` is code to run): the
#: exact class names, never a prefix (Hydra follows a dotted name through attributes, so
#: ``gastrodistill.models.init.torch.hub.load`` starts like a model and is not one) ...
MODEL_PACKAGE = "gastrodistill.models"
#: ... and only the project's own augmentation.
ALLOWED_AUGMENT_TARGET = "gastrodistill.distillation.augment.DSA"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ArtifactError(ValueError):
    """An artifact that must not be loaded (pickle, unknown schema, truncated or tampered file, ...)."""


# ---- writing --------------------------------------------------------------------------------------
def _tensors(distilled: DistilledSet) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = {
            "images": distilled.images,
            "targets": distilled.soft_targets(),
            "label_logits": distilled.label_logits,
            "lrs": distilled.lrs(),
            "raw_lrs": distilled.raw_lrs,
        }
        return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


def _distilled_info(distilled: DistilledSet) -> dict[str, Any]:
    c, h, w = distilled.images.shape[1:]
    return {
        "mode": str(distilled.mode),
        "num_classes": int(distilled.num_classes),
        "ipc": int(distilled.ipc),
        "steps": int(distilled.steps),
        "epochs": int(distilled.epochs),
        "temperature": float(distilled.temperature),
        # the inner SGD momentum the learned lrs were optimised for: replay needs it (0 for older sets)
        "inner_momentum": float(getattr(distilled, "inner_momentum", 0.0)),
        "n_images": int(distilled.images.shape[0]),
        "image_shape": [int(c), int(h), int(w)],
    }


def _defaults(distilled: DistilledSet) -> dict[str, Any]:
    """Class names and normalisation the set carries itself (the caller's card_fields win)."""
    out: dict[str, Any] = {}
    for key in ("class_names", "mean", "std"):
        value = getattr(distilled, key, None)
        if value is not None:
            out[key] = list(value)
    return out


def build_card(
    distilled: DistilledSet,
    card_fields: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    files: Mapping[str, bytes],
) -> dict[str, Any]:
    """The full card: the caller's allow-listed fields plus shapes, versions and file hashes; sealed."""
    fields = check_caller_fields(card_fields)
    missing = [
        k
        for k in ("class_names", "mean", "std", "architecture", "training_recipe", "source_hash")
        if k not in fields
    ]
    if missing:
        raise CardError(
            f"card_fields is missing {missing}; pass them to save_artifact (see docs/anonymity.md)"
        )
    info = _distilled_info(distilled)
    if len(fields["class_names"]) != info["num_classes"]:
        raise CardError(
            f"card.class_names has {len(fields['class_names'])} names for {info['num_classes']} classes"
        )
    for key in ("mean", "std"):
        if len(fields[key]) != info["image_shape"][0]:
            raise CardError(f"card.{key} has {len(fields[key])} values for {info['image_shape'][0]} channels")
    versions = package_versions()
    card = {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        **{k: v for k, v in fields.items() if k not in ("mean", "std")},
        "distilled": info,
        "normalization": {
            "mean": [float(v) for v in fields["mean"]],
            "std": [float(v) for v in fields["std"]],
            "space": "x_normalised = (x_unit - mean) / std, x_unit in [0, 1]",
        },
        "package": {
            "name": "gastrodistill",
            "version": gastrodistill.__version__,
            "torch": versions.get("torch"),
            "safetensors": versions.get("safetensors"),
        },
        "tensors": {
            k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
            for k, v in tensors.items()
        },
        "files": {name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in files.items()},
    }
    check_public({k: card[k] for k in PUBLIC_RECORDS})
    return seal(card)


def save_artifact(
    out_dir: str | os.PathLike,
    distilled: DistilledSet,
    card_fields: Mapping[str, Any],
    forbidden_strings: Iterable[str] = (),
    archive: bool = False,
    forbidden_kinds: Sequence[str] | None = None,
    grid_max: int = 120,
) -> Path:
    """Write the artifact folder atomically (and ``<out_dir>.zip`` when ``archive``); returns the folder.

    ``card_fields`` holds the allow-listed card keys (see :data:`gastrodistill.sharing.card.CALLER_FIELDS`).
    ``forbidden_strings`` (patient ids, header values, paths of the source data) are searched in all the
    text written: the card, the safetensors header, the PNG's chunks but its compressed pixels
    (:func:`~gastrodistill.sharing.card.find_strings`); finding one aborts the write with
    nothing left behind, naming the file and, with ``forbidden_kinds`` (one per string: ``patient_id``,
    ``path``, ``dicom:<Keyword>``), what each string is, never its value.
    """
    out_dir = Path(out_dir)
    card_fields = {**_defaults(distilled), **dict(card_fields)}
    tensors = _tensors(distilled)
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise ArtifactError(
                f"distilled tensor {name!r} has non-finite values; refusing to share a broken set"
            )
    # One metadata key only: safetensors writes its metadata map in random order.
    blob = st_save(tensors, metadata=tensors_metadata(SCHEMA_VERSION))
    fields = check_caller_fields(card_fields)
    info = _distilled_info(distilled)
    with atomic_dir(out_dir) as tmp:
        save_grid(
            tmp / GRID_FILE,
            tensors["images"],
            tensors["targets"],
            fields.get("class_names") or [str(i) for i in range(info["num_classes"])],
            fields.get("mean", [0.0]),
            fields.get("std", [1.0]),
            per_row=info["num_classes"] * info["ipc"],
            max_images=grid_max,
            title=f"{fields.get('name', 'distilled set')} ({info['mode']} labels)",
        )
        files = {TENSORS_FILE: blob, GRID_FILE: (tmp / GRID_FILE).read_bytes()}
        card = build_card(distilled, fields, tensors, files)
        card_bytes = (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()
        (tmp / TENSORS_FILE).write_bytes(blob)
        (tmp / CARD_FILE).write_bytes(card_bytes)
        forbidden = list(forbidden_strings)
        texts = {name: text_parts(data) for name, data in {**files, CARD_FILE: card_bytes}.items()}
        hits = find_strings(texts, forbidden)
        if hits:
            raise ArtifactError(leak_message(hits, forbidden_kinds))
        # an earlier set's zip never stands beside this folder: a stop before the new zip is written leaves
        # the folder without one (written again by a re-run), not with the other set's
        Path(f"{out_dir}.zip").unlink(missing_ok=True)
    if archive:
        write_zip(out_dir, Path(f"{out_dir}.zip"))
    return out_dir


def leak_message(hits: Sequence[tuple[str, int]], kinds: Sequence[str] | None = None) -> str:
    """The refusal of an artifact in which :func:`~gastrodistill.sharing.card.find_strings` found private
    strings (``hits``: file, index into the strings): the files, each string's kind when ``kinds`` names
    them (never the value), and what to do (:func:`leak_advice`)."""
    where = sorted({name for name, _ in hits})
    found = sorted({kinds[i] for _, i in hits}) if kinds is not None else []
    what = ", ".join(found) if found else "patient ids / header values / paths"
    return (
        f"{len(hits)} private string(s) ({what}) found in {where}; nothing was written. {leak_advice(found)}"
    )


def leak_advice(kinds: Iterable[str]) -> str:
    """What to do about private strings of these ``kinds`` found in an artifact (``patient_id``, ``path``,
    ``dicom:<Keyword>``, ``unsearchable: ...``; none known: all three): a header value of an attribute that
    names neither the patient nor the site (:data:`~gastrodistill.anonymity.text_check.IGNORABLE_ATTRIBUTES`)
    may be left out of the search; a file the search could not read in full cannot be declared clean;
    anything else is a leak to remove."""
    from gastrodistill.anonymity.text_check import IGNORABLE_ATTRIBUTES, UNSEARCHABLE

    kinds = sorted(set(kinds))
    unread = [k for k in kinds if k.startswith(UNSEARCHABLE)]
    kinds = [k for k in kinds if k not in unread]
    headers = [k.removeprefix("dicom:") for k in kinds if k.removeprefix("dicom:") in IGNORABLE_ATTRIBUTES]
    leaks = [k for k in kinds if k.removeprefix("dicom:") not in headers]
    advice = []
    if unread:
        advice.append(
            "A file holds more text than the search reads (compressed PNG text chunks over 16 MB), so it "
            "cannot be declared free of private strings: remove that text (a received artifact: ask its "
            "sender for one without it)"
        )
    if headers:
        advice.append(
            "A header value that identifies no one and is also a word of the card (a kernel called "
            "STANDARD, say) is left out of the search with "
            f"audit.text.ignore_attributes=[{','.join(headers)}]"
        )
    if leaks or not (kinds or unread):
        advice.append(
            "A patient id, path or identifying header value of the data found in these files is a leak: "
            "check experiment_name and the other values the card repeats. A numeric id can also equal one "
            "of the card's counts by chance: replace the manifest's patient ids with pseudonyms of 8 or "
            "more characters (the data stage only groups by them)"
        )
    return "; ".join(advice) + "."


def write_zip(folder: Path, target: Path) -> Path:
    """A deterministic zip (fixed timestamps and order) of the artifact's files, written atomically."""
    with atomic_path(target, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ARTIFACT_FILES:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (folder / name).read_bytes())
    return target


# ---- reading --------------------------------------------------------------------------------------
def _read_blobs(path: Path) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The three files of an artifact folder or zip, read with bounded memory, none of them a pickle,
    and the card parsed and checked once (:func:`_parse_card`).

    Refused before anything large is read: a symbolic link or a non-regular entry in a folder (it could
    point at any file of the receiving machine), duplicate zip members, a ``card.json`` over
    :data:`MAX_CARD_BYTES`, and members whose sizes add up to more than :data:`MAX_MEMBER_BYTES`. In a zip
    the card is read and checked first, and each other member must declare the size the card gives it
    before it is inflated (a small zip can otherwise inflate to gigabytes)."""
    if not path.exists():
        raise ArtifactError(f"no artifact at {path}; pass the artifact folder or its .zip")
    if not path.is_dir() and not path.is_file():  # /dev/zero, a pipe: zipfile would read it without end
        raise ArtifactError(
            f"{path} is neither a folder nor a regular file (a device, pipe or socket); pass the artifact "
            "folder or its .zip"
        )
    if path.is_dir():
        blobs = _read_folder(path)
        for name, data in blobs.items():
            _refuse_pickle_bytes(name, data)
        return blobs, _parse_card(blobs[CARD_FILE])
    if path.suffix.lower() in NUMPY_SUFFIXES:
        raise ArtifactError(
            f"{path.name} is a numpy array file, not an artifact; {ARTIFACT_IS}: pass that folder or .zip "
            "(an .npz of images is data, read with data=npz data.path=...)"
        )
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ArtifactError(
            f"{path.name} is a pickle-capable file; artifacts are safetensors + JSON only. "
            f"Pickles can run code when loaded: refusing{_renamed_zip_advice(path)}."
        )
    if not zipfile.is_zipfile(path):
        raise ArtifactError(
            f"{path} is neither an artifact folder nor a zip archive (a truncated download?); {ARTIFACT_IS}: "
            "pass that folder or .zip"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if _is_distilled_set(i.filename for i in infos):  # a distilled set's folder, zipped
                raise ArtifactError(_distilled_set_message(path.name, "<its folder, unzipped>", path.stem))
            _refuse_names([i.filename for i in infos], path.name)
            _refuse_unreadable_members(infos, path.name)
            by_name = {i.filename: i for i in infos}
            _refuse_sizes({n: i.file_size for n, i in by_name.items()}, path.name)
            blobs = {CARD_FILE: zf.read(by_name[CARD_FILE])}
            _refuse_pickle_bytes(CARD_FILE, blobs[CARD_FILE])
            card = _parse_card(blobs[CARD_FILE])
            for name in (TENSORS_FILE, GRID_FILE):
                want = card["files"][name]["bytes"]  # its type checked with the card (_parse_card)
                if by_name[name].file_size != want:
                    raise ArtifactError(
                        f"{path.name}: member {name!r} holds {by_name[name].file_size} bytes, the card says "
                        f"{want}: it was modified or truncated; download it again"
                    )
                blobs[name] = zf.read(by_name[name])  # inflating past the declared size fails (zipfile)
                _refuse_pickle_bytes(name, blobs[name])
            return blobs, card
    # a damaged compressed stream: zlib's and lzma's own errors (deflate, lzma), OSError (bzip2), EOFError
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise ArtifactError(f"{path.name} is a damaged zip archive ({exc}); download it again") from exc


def _renamed_zip_advice(path: Path) -> str:
    """For a file refused by its suffix (``soft.bin``): when it is a zip of an artifact's three files (a
    mail gateway renames attachments), the advice to give it its ``.zip`` name back; else nothing. Reads
    the zip's list of members only, none of them."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist() if len(zf.infolist()) <= MAX_ENTRIES else []
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError):
        return ""
    if sorted(names) != sorted(ARTIFACT_FILES):
        return ""
    return (
        f" It is a zip of an artifact's three files: if it is an artifact's .zip renamed on its way (a mail "
        f"gateway), name it {path.stem}.zip and pass it again"
    )


def _refuse_unreadable_members(infos: Sequence[zipfile.ZipInfo], where: str) -> None:
    """Refuse members that Python's ``zipfile`` cannot inflate: encrypted ones (a password-protected zip,
    often made for sending by e-mail) and compression methods other than :data:`_ZIP_METHODS` (it raised
    ``RuntimeError`` or ``NotImplementedError`` from deep inside, shown as a traceback)."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise ArtifactError(
                f"{where}: member {info.filename!r} is encrypted (a password-protected zip); unzip it with "
                "its password and pass the folder, or ask the sending site for the zip without a password "
                "(the artifact holds no patient data to protect)"
            )
        if info.compress_type not in _ZIP_METHODS:
            raise ArtifactError(
                f"{where}: member {info.filename!r} uses zip compression method {info.compress_type}, which "
                f"this reader cannot inflate (it reads {', '.join(_ZIP_METHODS.values())}; 99 is 7-Zip's or "
                "WinZip's AES encryption); unzip it with that tool and pass the folder, or zip the three "
                "files again with plain zip"
            )


def _distilled_set_message(where: str, folder: str, name: str) -> str:
    """What to do with a distilled set (``DistilledSet.save``'s folder: the distill stage's output) given as
    an artifact: which commands write its artifact. ``folder``: the set's folder as the command line names
    it; ``name``: the set's name."""
    from gastrodistill.distillation.distilled_set import META_FILE

    return (
        f"{where} is a distilled set (the distill stage's output, with {META_FILE}), not an artifact; write "
        f"its artifact with gastrodistill-audit experiment=<its experiment> +audit.sets.{name}={folder} "
        f"(into <output>/artifacts/{name}, and its .zip), or with 'stages=[...,artifact]' in the "
        "gastrodistill-reproduce run that distilled it, and pass that artifact"
    )


def _is_distilled_set(names: Iterable[str]) -> bool:
    """Whether ``names`` (a folder's entries, a zip's members) hold a saved DistilledSet's metadata file."""
    from gastrodistill.distillation.distilled_set import META_FILE

    return any(n.rsplit("/", 1)[-1] == META_FILE for n in names)


def _read_folder(path: Path) -> dict[str, bytes]:
    names = sorted(p.name for p in path.iterdir())
    if _is_distilled_set(names):
        raise ArtifactError(_distilled_set_message(str(path), str(path), path.name))
    held = (  # <run>/artifacts, the folder above the artifacts (no stat of every entry of a large folder)
        [n for n in names if n.lower().endswith(".zip") or (path / n / CARD_FILE).is_file()]
        if CARD_FILE not in names and len(names) <= MAX_ENTRIES
        else []
    )
    if held:
        raise ArtifactError(
            f"{path} holds artifacts ({', '.join(held[:6])}), not the files of one; pass one of them "
            f"({path / held[0]})"
        )
    _refuse_names(names, path.name)
    sizes = {}
    for name in names:
        st = os.lstat(path / name)
        if stat.S_ISLNK(st.st_mode):
            raise ArtifactError(
                f"{path.name}/{name} is a symbolic link; an artifact folder holds three plain files "
                "(a link could make the loader read any file of this machine): refusing"
            )
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{path.name}/{name} is not a regular file; refusing")
        sizes[name] = st.st_size
    _refuse_sizes(sizes, path.name)
    return {name: (path / name).read_bytes() for name in names}


def _refuse_sizes(sizes: Mapping[str, int], where: str) -> None:
    if sizes.get(CARD_FILE, 0) > MAX_CARD_BYTES:
        raise ArtifactError(
            f"{where}: {CARD_FILE} claims {sizes[CARD_FILE]} bytes (at most {MAX_CARD_BYTES}); refusing"
        )
    if sum(sizes.values()) > MAX_MEMBER_BYTES:
        raise ArtifactError(
            f"{where}: its files claim {sum(sizes.values())} bytes in all (at most {MAX_MEMBER_BYTES}); "
            "refusing"
        )


#: Files a file manager leaves in folders and zips by itself (macOS Finder, Windows Explorer).
_FILE_MANAGER_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")


def _unexpected_advice(names: list[str], unexpected: list[str]) -> str:
    """What to do about ``unexpected`` entries: the usual two causes get their fix, else nothing."""
    inner = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(inner) == 1 and sorted(
        n.split("/", 1)[1] for n in names if "/" in n and not n.endswith("/")
    ) == sorted(ARTIFACT_FILES):
        folder = inner.pop()
        files = " ".join(sorted(ARTIFACT_FILES))
        return (
            f": they sit in a folder {folder!r} inside the zip. Zip the three files without their folder "
            f"(cd {folder} && zip ../{folder}.zip {files}), or unzip it and pass the folder"
        )
    junk = [n for n in unexpected if n.rsplit("/", 1)[-1] in _FILE_MANAGER_FILES or n.startswith("__MACOSX/")]
    if junk and len(junk) == len(unexpected):
        return f"; {junk} are written by the file manager (Finder, Explorer): delete them and pass it again"
    return ""


def _refuse_names(names: list[str], where: str) -> None:
    if len(names) > MAX_ENTRIES:
        raise ArtifactError(
            f"{where} holds {len(names)} entries (the first: {sorted(names)[:5]}); an artifact holds exactly "
            f"{list(ARTIFACT_FILES)}"
        )
    for n in names:
        if n.lower().endswith(PICKLE_SUFFIXES):
            raise ArtifactError(
                f"{where} contains {n!r}, a pickle-capable file; artifacts are safetensors + JSON "
                "only. Pickles can run code when loaded: refusing."
            )
        if n.lower().endswith(NUMPY_SUFFIXES):
            raise ArtifactError(
                f"{where} contains {n!r}, a numpy array file, so it is not an artifact; {ARTIFACT_IS}"
            )
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:  # zip readers differ on which copy they show: the card a person reads may not be the one loaded
        raise ArtifactError(f"{where} holds {twice} more than once; an artifact holds each file once")
    unexpected = sorted(set(names) - set(ARTIFACT_FILES))
    missing = sorted(set(ARTIFACT_FILES) - set(names))
    if unexpected:
        advice = _unexpected_advice(names, unexpected)
        if not advice and missing and all("/" not in n for n in unexpected):  # a file renamed, most likely
            advice = f"; it lacks {missing} (a renamed file? give it its name back)"
        raise ArtifactError(
            f"{where} contains unexpected file(s) {unexpected}; an artifact holds exactly "
            f"{list(ARTIFACT_FILES)}{advice}"
        )
    if missing:
        raise ArtifactError(f"{where} lacks {missing}; an artifact holds exactly {list(ARTIFACT_FILES)}")


def _refuse_pickle_bytes(name: str, data: bytes) -> None:
    """Pickle protocol 2+ starts with 0x80 <proto>; torch.save writes a zip holding ``data.pkl``."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        raise ArtifactError(f"{name} holds pickle data (magic bytes 0x80 0x0{data[1]}); refusing to load it")
    if data[:4] == b"PK\x03\x04" and name != GRID_FILE:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if any(n.endswith(".pkl") for n in zf.namelist()):
                    raise ArtifactError(f"{name} is a torch.save pickle archive; refusing to load it")
        except zipfile.BadZipFile:
            pass
        raise ArtifactError(f"{name} is a zip archive, not {'JSON' if name == CARD_FILE else 'safetensors'}")


def _parse_card(data: bytes) -> dict[str, Any]:
    try:
        card = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ArtifactError(f"{CARD_FILE} is not valid UTF-8 JSON ({exc}); the file is damaged") from exc
    if not isinstance(card, dict):
        raise ArtifactError(f"{CARD_FILE} must hold a JSON object")
    version = card.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:  # true == 1.0 == 1 in Python
        raise ArtifactError(
            f"{CARD_FILE} has schema_version {version!r}, which this gastrodistill "
            f"({gastrodistill.__version__}) does not know (supported: {list(SUPPORTED_SCHEMA_VERSIONS)}); "
            "upgrade gastrodistill or ask the sender for a supported version"
        )
    if card.get("format") != FORMAT:
        raise ArtifactError(f"{CARD_FILE} format is {card.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED_FIELDS if k not in card]
    if missing:
        raise ArtifactError(f"{CARD_FILE} lacks required field(s) {missing}")
    if not seal_ok(card):
        raise ArtifactError(
            f"{CARD_FILE} was edited after it was written (card_sha256 does not match its content)"
        )
    check_card_structure(card)
    check_card_code(card)  # first: it names a received `_target_` as code, not as a path-like string
    check_card_fields(card)
    return card


def _malformed(field: str, what: str) -> ArtifactError:
    """The error for a card field of the wrong type or range: ``card.json field <field> must be <what>``."""
    return ArtifactError(f"{CARD_FILE} field {field} must be {what}; the card is malformed")


def check_card_structure(card: Mapping[str, Any]) -> None:
    """Refuse a card whose fields have the wrong type or range before anything reads them.

    A resealed card with ``steps: "two"``, ``files: []`` or ``std: [0]`` used to end in a ``KeyError``,
    ``TypeError`` or ``AttributeError`` traceback, a count silently truncated (``steps: 2.7``), or a site
    adapter dividing by zero. Raises :class:`ArtifactError` naming the field."""

    info = card.get("distilled")
    if not isinstance(info, Mapping):
        raise _malformed("distilled", "a mapping")
    for key in ("num_classes", "ipc", "steps", "epochs", "n_images"):
        if not is_count(info.get(key)):
            raise _malformed(f"distilled.{key}", f"an integer >= 1 (got {info.get(key)!r})")
    shape = info.get("image_shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(is_count(v) for v in shape):
        raise _malformed("distilled.image_shape", f"three integers >= 1 [C, H, W] (got {shape!r})")
    if info.get("mode") not in ("soft", "hard"):  # else DistilledSet's own error, not the loader's
        raise _malformed("distilled.mode", f"'soft' or 'hard' (got {type(info.get('mode')).__name__})")
    if not (is_finite_number(info.get("temperature")) and info["temperature"] > 0):
        raise _malformed("distilled.temperature", "a number > 0")
    if "inner_momentum" in info and not (
        is_finite_number(info["inner_momentum"]) and 0 <= info["inner_momentum"] < 1
    ):
        raise _malformed("distilled.inner_momentum", "a number in [0, 1)")
    names = card.get("class_names")
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
        or len(names) != info["num_classes"]
    ):
        raise _malformed("class_names", f"a list of {info['num_classes']} strings")
    if len(set(names)) != len(names) or not all(n.strip() for n in names):  # as data.base.class_name_list
        raise _malformed(
            "class_names", "distinct, non-empty names (a site's classes are matched to them by name)"
        )
    if card.get("positive_class") is not None and card["positive_class"] not in names:
        raise _malformed("positive_class", f"one of class_names {names} or null")
    norm = card.get("normalization")
    if not isinstance(norm, Mapping):
        raise _malformed("normalization", "a mapping with mean and std")
    for key in ("mean", "std"):
        values = norm.get(key)
        if (
            not isinstance(values, list)
            or len(values) != shape[0]
            or not all(is_finite_number(v) for v in values)
        ):
            raise _malformed(f"normalization.{key}", f"a list of {shape[0]} numbers (one per channel)")
        for i, v in enumerate(values):
            if abs(v) > _FLOAT32_MAX:
                raise _malformed(
                    f"normalization.{key}[{i}]", f"a number float32 can hold, |value| <= 3.4e38 (got {v!r})"
                )
    if not all(v > 0 for v in norm["std"]):
        raise _malformed("normalization.std", "positive (a site divides by it)")
    for i, v in enumerate(norm["std"]):
        if v < MIN_CARD_STD:
            raise _malformed(
                f"normalization.std[{i}]",
                f"at least {MIN_CARD_STD:g} of the [0, 1] pixel range (got {v!r}; the data modules never "
                "write a std below 1e-6, and a site divides by it in float32, where a smaller one makes "
                "every network's input infinite)",
            )
    check_card_evaluation(card)
    for key in ("files", "tensors"):
        if not isinstance(card.get(key), Mapping):
            raise _malformed(key, "a mapping")
    for name in TENSOR_NAMES:
        entry = card["tensors"].get(name)
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and all(is_count(v, 0) for v in entry["shape"])
        ):
            raise _malformed(
                f"tensors.{name}", "a mapping with a shape (a list of integers) and a dtype string"
            )
    recipe = card.get("training_recipe", {})
    if not isinstance(recipe, Mapping):
        raise _malformed("training_recipe", f"a mapping (got {type(recipe).__name__})")
    if recipe.get("standard") is not None and not isinstance(recipe["standard"], Mapping):
        raise _malformed("training_recipe.standard", f"a mapping (got {type(recipe['standard']).__name__})")
    for name in (TENSORS_FILE, GRID_FILE):
        entry = card["files"].get(name)
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("sha256"), str)
            and is_count(entry.get("bytes"), 0)
        ):
            raise _malformed(f"files.{name}", "a mapping with a sha256 string and a bytes count")


def _check_card_name(name: object) -> None:
    """Refuse a card ``name`` the writer would not write: it writes a set's name (``check_set_name``:
    letters, digits, '.', '_' and '-'), and a site prints it at the top of its report. A resealed name with
    line breaks put a forged "verified" line and table row above the real table, and terminal escapes
    reached the screen."""
    from gastrodistill.evaluation.jobs import SET_NAME

    if name is None:
        return
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not SET_NAME.fullmatch(name):
        got = f"{len(name)} characters" if isinstance(name, str) else type(name).__name__  # never the value
        raise _malformed(
            "name",
            f"a set name of letters, digits, '.', '_' and '-' (at most {MAX_NAME_CHARS} characters), as the "
            f"writer gives it (got {got})",
        )


def check_card_fields(card: Mapping[str, Any]) -> None:
    """Refuse a received card that the writer would not have written: a top-level field outside its
    allow-list (:data:`~gastrodistill.sharing.card.CALLER_FIELDS` and the fields it computes), or a path,
    file name or header field in what the writer checks (:func:`~gastrodistill.sharing.card.check_public`
    on the caller's fields and the ``distilled``, ``package`` and ``tensors`` records). A resealed card
    with ``hospital: /data/secret/x.dcm`` or a patient's name in ``description`` loaded, and the name was
    echoed into the site's report. Raises :class:`ArtifactError` naming the field, never the value."""
    unknown = sorted(set(card) - set(CALLER_FIELDS) - set(COMPUTED_FIELDS))
    if unknown:
        raise ArtifactError(
            f"{CARD_FILE} has field(s) {unknown} that gastrodistill never writes on a card; the card was "
            "edited after it was written: ask the sending site for the artifact again"
        )
    checked = {k: card[k] for k in (*CALLER_FIELDS, *PUBLIC_RECORDS) if k in card}  # as build_card checks
    try:
        check_public(checked, "card")
    except CardError as exc:
        raise ArtifactError(
            f"{CARD_FILE}: {exc} (the writer refuses such values: the card was edited after it was written)"
        ) from None
    _check_card_name(card.get("name"))


def check_card_evaluation(card: Mapping[str, Any]) -> None:
    """Refuse a card whose published figures (``evaluation``) are not a mapping of finite numbers.

    A receiving site compares its means with them (``train_from_artifact.compare_published``): a resealed
    ``"abc"`` ended there in a ``ValueError`` traceback after every network had trained, and a ``NaN``
    (which Python's JSON reader accepts) in a comparison reading "+nan". The project writes only finite
    numbers there (``publish._numbers``). The means and stds of the figures a site compares
    (:data:`REPORTED` and the per-class ``recall_<class>``: fractions) must lie in [0, 1] and [0, 0.5]: a
    resealed ``patient_hm_std: 1e6`` made every site's comparison read "within noise". Raises
    :class:`ArtifactError` naming the key."""
    evaluation = card.get("evaluation")
    if evaluation is None:
        return
    if not isinstance(evaluation, Mapping):
        raise _malformed(
            "evaluation", f"a mapping of metric names to numbers (got {type(evaluation).__name__})"
        )
    for key, value in evaluation.items():
        if not is_finite_number(value):
            raise _malformed(f"evaluation.{key}", f"a finite number (got {value!r})")
        metric, _, stat = str(key).rpartition("_")
        compared = metric in REPORTED or metric.startswith("recall_")  # per-class recall: compared too
        if compared and stat == "mean" and not -1e-9 <= value <= 1 + 1e-9:
            raise _malformed(
                f"evaluation.{key}", f"a fraction in [0, 1], as every {metric} is (got {value!r})"
            )
        if compared and stat == "std" and not 0 <= value <= 0.5 + 1e-9:
            raise _malformed(
                f"evaluation.{key}",
                f"in [0, 0.5], the range of a population std of fractions (got {value!r}; a site's 'within "
                "noise' verdict widens with it)",
            )


def allowed_model_targets() -> tuple[str, ...]:
    """``gastrodistill.models.<Name>`` for each network class the package exports (``nn.Module``
    subclasses in ``gastrodistill.models.__all__``): the only targets a received architecture may name."""
    import gastrodistill.models as models

    return tuple(
        f"{MODEL_PACKAGE}.{name}"
        for name in models.__all__
        if isinstance(getattr(models, name), type) and issubclass(getattr(models, name), torch.nn.Module)
    )


def check_card_code(card: Mapping[str, Any]) -> None:
    """Refuse a card whose instantiated nodes name other code than the project's own.

    The seal is a checksum, not a signature: anyone can edit a card and seal it again. So the nodes that
    a receiver builds are checked before anything reads them: ``architecture`` names one of the
    project's network classes exactly (:func:`allowed_model_targets`), ``training_recipe.replay_augment``
    and ``.standard.augment`` the project's DSA, the rest of ``training_recipe.standard`` no code at all,
    and nothing below their top
    level names code or holds an interpolation (:mod:`gastrodistill.utils.safe_config`). Raises
    :class:`ArtifactError` naming the card field."""
    recipe = card.get("training_recipe") or {}
    if not isinstance(recipe, Mapping):
        raise ArtifactError(f"{CARD_FILE} training_recipe must be a mapping, got {type(recipe).__name__}")
    standard = recipe.get("standard") or {}
    augments = [("training_recipe.replay_augment", recipe.get("replay_augment"))]
    if isinstance(standard, Mapping):
        standard = dict(standard)
        augments.append(("training_recipe.standard.augment", standard.pop("augment", None)))
    networks = allowed_model_targets()
    model = f"one of the project's networks ({', '.join(networks)})"
    try:
        check_received_node(card["architecture"], "architecture", lambda t: t in networks, model)
        for where, node in augments:
            if node is not None:
                check_received_node(
                    node, where, lambda t: t == ALLOWED_AUGMENT_TARGET, ALLOWED_AUGMENT_TARGET
                )
        check_received_node(standard, "training_recipe.standard", None)
    except UnsafeNodeError as exc:
        raise ArtifactError(
            f"{CARD_FILE} {exc} (only {model} and {ALLOWED_AUGMENT_TARGET} are built from a received card)"
        ) from None


def _check_files(card: Mapping[str, Any], blobs: Mapping[str, bytes]) -> None:
    for name in (TENSORS_FILE, GRID_FILE):
        entry = card["files"][name]  # a sha256 string and a bytes count (check_card_structure)
        size, want = len(blobs[name]), entry["bytes"]
        if size < want:
            raise ArtifactError(f"{name} is truncated: {size} bytes, the card says {want}; download it again")
        if size > want:
            raise ArtifactError(
                f"{name} has {size} bytes, the card says {want}: it was modified or appended to"
            )
        if sha256_bytes(blobs[name]) != entry["sha256"]:
            raise ArtifactError(
                f"{name} was modified: its sha256 does not match the card (tampered or corrupted)"
            )


def tensors_metadata(schema_version: object) -> dict[str, str]:
    """The safetensors ``__metadata__`` an artifact of ``schema_version`` carries: its format, alone."""
    return {"format": f"{FORMAT}/{schema_version}"}


def _check_tensors_metadata(blob: bytes, card: Mapping[str, Any]) -> None:
    """Refuse a safetensors header whose ``__metadata__`` is not :func:`tensors_metadata` of the card's
    schema version: nothing reads it, so anything else there (text of any kind, a pickle's bytes as hex)
    came from another writer or an edit. ``blob`` has been read by safetensors already."""
    header = safetensors_header(blob)
    metadata = json.loads(header[8:]).get("__metadata__") if header is not None else None
    expected = tensors_metadata(card.get("schema_version"))
    if metadata == expected:
        return
    if isinstance(metadata, dict) and set(metadata) == {"format"}:
        what = f"the format {str(metadata['format'])[:80]!r}, not {expected['format']!r}"
    else:
        keys = sorted(metadata)[:10] if isinstance(metadata, dict) else "none"
        what = f"metadata keys {keys}, where gastrodistill writes one, 'format'"
    raise ArtifactError(
        f"{TENSORS_FILE}'s header holds {what}: the file was written by another program or edited"
    )


def _check_tensors(card: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    if set(tensors) != set(TENSOR_NAMES):
        raise ArtifactError(f"{TENSORS_FILE} holds {sorted(tensors)}, expected {sorted(TENSOR_NAMES)}")
    info = card["distilled"]
    n, k, t = int(info["n_images"]), int(info["num_classes"]), int(info["steps"]) * int(info["epochs"])
    expected = {
        "images": [n, *info["image_shape"]],
        "targets": [n, k],
        "label_logits": [n, k],
        "lrs": [t],
        "raw_lrs": [t],
    }
    if n != int(info["steps"]) * k * int(info["ipc"]):
        raise ArtifactError(f"card: n_images {n} != steps x classes x ipc")
    for name, tensor in tensors.items():
        spec = card["tensors"].get(name, {})
        if list(tensor.shape) != spec.get("shape"):
            raise ArtifactError(
                f"tensor {name!r} has shape {list(tensor.shape)}; the card's tensors list says "
                f"{spec.get('shape')}: the tensors or the card were altered"
            )
        if list(tensor.shape) != expected[name]:
            raise ArtifactError(
                f"tensor {name!r} has shape {list(tensor.shape)}, but the card's distilled section "
                f"(n_images, num_classes, image_shape, steps x epochs) implies {expected[name]}: the card "
                "contradicts itself"
            )
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype != spec.get("dtype"):
            raise ArtifactError(f"tensor {name!r} has dtype {dtype}; the card says {spec.get('dtype')}")
        if tensor.dtype != torch.float32:
            raise ArtifactError(
                f"tensor {name!r} has dtype {dtype}; artifacts hold float32 tensors only (a distilled set "
                "saves them so): this file was not written by gastrodistill"
            )
        if not torch.isfinite(tensor).all():
            raise ArtifactError(f"tensor {name!r} has non-finite values")
    _check_image_range(card, tensors["images"])
    if not torch.allclose(F.softplus(tensors["raw_lrs"]), tensors["lrs"], rtol=1e-5, atol=1e-7):
        raise ArtifactError("tensor 'lrs' disagrees with softplus(raw_lrs): the tensors were altered")
    if (
        not torch.allclose(tensors["targets"].sum(1), torch.ones(n), atol=1e-4)
        or (tensors["targets"] < 0).any()
    ):
        raise ArtifactError("tensor 'targets' rows are not probability distributions")


def _check_image_range(card: Mapping[str, Any], images: torch.Tensor) -> None:
    """Refuse images beyond what the card's normalisation can give, with :data:`IMAGE_RANGE_MARGIN`.

    The card says ``x_normalised = (x_unit - mean) / std`` with ``x_unit`` in [0, 1]; undone per channel
    (``x * std + mean``, in float64), a received image must lie in ``[-margin, 1 + margin]``."""
    norm = card["normalization"]
    view = lambda v: torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1)  # noqa: E731
    unit = images.double() * view(norm["std"]) + view(norm["mean"])
    low, high = float(unit.min()), float(unit.max())
    if low < -IMAGE_RANGE_MARGIN or high > 1 + IMAGE_RANGE_MARGIN:
        raise ArtifactError(
            f"tensor 'images' spans [{low:.3g}, {high:.3g}] in pixel units (x * std + mean with the card's "
            f"normalization), beyond [0, 1] by more than {IMAGE_RANGE_MARGIN:g} pixel ranges, which no "
            "distilled set comes near: the images or the card's normalization were altered"
        )


def load_artifact(path: str | os.PathLike) -> tuple[DistilledSet, dict[str, Any]]:
    """Validate and load an artifact folder or ``.zip``; returns ``(DistilledSet, card)``.

    Raises :class:`ArtifactError` naming the problem: pickles, unexpected or missing files, an unknown
    schema version, an edited card, truncated or tampered files, tensors that disagree with the card.
    """
    path = Path(path)
    blobs, card = _read_blobs(path)
    _check_files(card, blobs)
    try:
        tensors = st_load(blobs[TENSORS_FILE])
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{TENSORS_FILE} is not a readable safetensors file ({exc})") from exc
    _check_tensors_metadata(blobs[TENSORS_FILE], card)
    _check_tensors(card, tensors)
    distilled = build_distilled(card, tensors)
    if not torch.allclose(distilled.soft_targets().detach(), tensors["targets"], atol=1e-5):
        raise ArtifactError(
            "tensor 'targets' disagrees with the soft labels of label_logits at the card's "
            "temperature: the tensors were altered"
        )
    return distilled, card


def build_distilled(card: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> DistilledSet:
    """A :class:`DistilledSet` holding the artifact's tensors (trainers take it as is)."""
    from gastrodistill.distillation.distilled_set import DistilledSet

    info = card["distilled"]
    norm = card["normalization"]
    ds = DistilledSet(
        int(info["num_classes"]),
        int(info["ipc"]),
        int(info["steps"]),
        int(info["epochs"]),
        info["image_shape"],
        mode=str(info["mode"]),
        temperature=float(info["temperature"]),
        inner_momentum=float(info.get("inner_momentum", 0.0)),
        class_names=card["class_names"],
        mean=norm["mean"],
        std=norm["std"],
        model_config=card.get("architecture") if isinstance(card.get("architecture"), dict) else None,
    )
    with torch.no_grad():
        for name in ("images", "label_logits", "raw_lrs"):
            getattr(ds, name).copy_(tensors[name])
    return ds
