"""Seeded synthetic gastric X-ray collections in the user's layout: ``generate_dataset(root, **params)``.

Each image depends only on (seed, patient index, image index), through streams derived with
``derive_seed``, so the output is byte-identical for the same seed whatever the number of workers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gastrodistill.data.errors import DataInputError
from gastrodistill.data.synthetic.acquisition import acquire, sample_exposure
from gastrodistill.data.synthetic.anatomy import (
    background_attenuation,
    sample_anatomy,
    sample_view,
    stomach_layers,
    stomach_mask,
)
from gastrodistill.data.synthetic.burn_in import burn_in_text
from gastrodistill.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from gastrodistill.data.synthetic.identities import INSTITUTIONS, Identity, make_identities
from gastrodistill.data.synthetic.mucosa import mucosal_texture, sample_mucosa
from gastrodistill.data.synthetic.writer import (
    INFO_FILE,
    MANIFEST_FILE,
    is_current,
    read_info,
    staged_root,
    write_dicom,
    write_info,
    write_manifest,
    write_mask_png,
    write_png16,
)
from gastrodistill.utils.seeding import numpy_rng
from gastrodistill.utils.worker_pool import spawn_pool

log = logging.getLogger(__name__)


class SyntheticCollectionMismatch(DataInputError):
    """The synthetic collection on disk is not the one this run's ``synthetic`` settings describe."""


DIAGNOSES = ("gastritis", "non-gastritis")
SPLITS = ("train", "test")
#: Where each institution's modality stamps its text.
_CORNER_BY_INSTITUTION = ("top-left", "top-left", "bottom-left", "top-left")


@dataclass(frozen=True)
class PatientPlan:
    """One patient of the collection (index = its position in the plan, which seeds its streams)."""

    index: int
    split: str
    diagnosis: str
    identity: Identity


@dataclass(frozen=True)
class RenderedImage:
    """One rendered radiograph: 16-bit pixels ``[H, W]``, its 0/1 stomach mask, text box and severity."""

    image: np.ndarray  # uint16
    mask: np.ndarray  # uint8, 0/1
    text_box: tuple[int, int, int, int] | None  # (y0, x0, y1, x1) of the burned-in text
    severity: float


def plan_patients(cfg: SyntheticConfig, seed: int) -> list[PatientPlan]:
    """Every patient with split, diagnosis and identity; identities are shuffled against diagnoses."""
    slots = [
        (split, diag) for split in SPLITS for diag in DIAGNOSES for _ in range(cfg.patients[(split, diag)])
    ]
    identities = make_identities(numpy_rng(seed, "synthetic/identities"), len(slots))
    return [PatientPlan(i, s, d, identities[i]) for i, (s, d) in enumerate(slots)]


def render_image(
    cfg: SyntheticConfig, seed: int, patient: PatientPlan, image_index: int, burn_in: bool | None = None
) -> RenderedImage:
    """Render one whole X-ray and its stomach mask (pure function of the arguments)."""
    size = cfg.image_size
    anatomy = sample_anatomy(numpy_rng(seed, "synthetic/anatomy", patient.index), cfg.stomach_scale)
    sev_range = cfg.gastritis_severity if patient.diagnosis == "gastritis" else cfg.non_gastritis_severity
    mucosa = sample_mucosa(
        numpy_rng(seed, "synthetic/mucosa", patient.index), sev_range, cfg.fine_cell_px, cfg.coarse_cell_px
    )
    view_rng = numpy_rng(seed, "synthetic/view", patient.index, image_index)
    view = sample_view(view_rng, anatomy, cfg.pool_fraction)
    mask = stomach_mask(view, anatomy, size)
    attenuation = background_attenuation(anatomy, view, view_rng, size)
    layers = stomach_layers(mask, view, view_rng)
    attenuation += layers.attenuation
    ys, xs = np.nonzero(layers.mucosa_weight > 1e-3)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        tex_rng = numpy_rng(seed, "synthetic/texture", patient.index, image_index)
        texture = mucosal_texture(tex_rng, (int(y1 - y0), int(x1 - x0)), mucosa, cfg.patchiness)
        contrast = tex_rng.uniform(*cfg.mucosa_contrast)
        attenuation[y0:y1, x0:x1] += contrast * texture * layers.mucosa_weight[y0:y1, x0:x1]
    acq_rng = numpy_rng(seed, "synthetic/acquisition", patient.index, image_index)
    image = acquire(attenuation, sample_exposure(acq_rng, cfg.dose, cfg.blur_px), acq_rng)
    text_box = None
    if cfg.burn_in_text if burn_in is None else burn_in:
        corner = _CORNER_BY_INSTITUTION[INSTITUTIONS.index(patient.identity.institution)]
        text_box = burn_in_text(image, patient.identity.burn_in_lines(), corner)
    return RenderedImage(image=image, mask=mask, text_box=text_box, severity=mucosa.severity)


def relative_paths(patient: PatientPlan, image_index: int, fmt: str) -> tuple[str, str]:
    """Image and mask paths relative to DATA_ROOT (one folder per patient, as exported from a PACS)."""
    pid = patient.identity.patient_id
    ext = "dcm" if fmt == "dicom" else "png"
    stem = f"{pid}_{image_index + 1:02d}"
    return f"images/{pid}/{stem}.{ext}", f"masks/{pid}/{stem}.png"


def _render_and_write(args: tuple[SyntheticConfig, int, PatientPlan, int, str]) -> dict[str, Any]:
    cfg, seed, patient, k, tmp_root = args
    out = render_image(cfg, seed, patient, k)
    image_rel, mask_rel = relative_paths(patient, k, cfg.format)
    image_path, mask_path = Path(tmp_root) / image_rel, Path(tmp_root) / mask_rel
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.format == "dicom":
        write_dicom(image_path, out.image, patient.identity, k + 1, uid_seed=f"{seed}/{GENERATOR_VERSION}")
    else:
        write_png16(image_path, out.image)
    write_mask_png(mask_path, out.mask)
    return {"stomach_fraction": float(out.mask.mean())}


def generate_dataset(
    root: str | os.PathLike,
    seed: int = 0,
    num_workers: int = 1,
    progress: bool = True,
    **params: Any,
) -> Path:
    """Write a synthetic collection to ``root`` (skipped when an identical one is already there).

    ``params`` are the fields of :class:`SyntheticConfig` (``name``, patient counts, ``image_size``,
    ``format`` ...). Returns ``root``. ``num_workers`` > 1 renders in parallel processes; the bytes
    written do not depend on it.
    """
    cfg = SyntheticConfig.from_params(**params)
    root = Path(root)
    config_hash = cfg.content_hash(seed)
    if is_current(root, config_hash):
        return root
    old = read_info(root)
    if old is not None and old.get("config_hash") == config_hash:
        # the same settings and seed with an image, a mask or a manifest row missing: written again, the
        # same bytes, so the sets distilled from it still match
        log.warning(
            "the synthetic collection in synthetic.root (seed %s) is incomplete (an image, a mask or a "
            "manifest row is missing): writing it again with the same settings and seed",
            seed,
        )
    elif old is not None:  # a collection of this generator, written with another seed or other settings
        old_seed = _seed_if_same_settings(old, cfg)
        same_settings = old_seed is not None
        keep = f"pass synthetic.seed={old_seed} (seed=N synthetic.seed={old_seed})" if same_settings else ""
        log.warning(  # by its key: a job log names no local folder (a folder's name may name the site)
            "replacing the synthetic collection in synthetic.root (%s) by seed %s: sets distilled from it no "
            "longer match the new data. To keep it, %sgive the new collection another synthetic.root.",
            f"seed {old_seed}" if same_settings else "written with other settings",
            seed,
            f"{keep}, or " if keep else "",
        )
    patients = plan_patients(cfg, seed)
    jobs = [(p, k) for p in patients for k in range(cfg.images_per_patient)]
    with staged_root(root) as tmp:
        args = [(cfg, int(seed), p, k, str(tmp)) for p, k in jobs]
        bar = tqdm(total=len(args), desc=f"synthetic[{cfg.name}]", unit="img", disable=not progress)
        if num_workers > 1:
            # spawned workers, terminated at once on an error or an interrupt (then staged_root removes all)
            with spawn_pool(num_workers) as pool:
                stats = []
                for s in pool.map(_render_and_write, args):
                    stats.append(s)
                    bar.update()
        else:
            stats = []
            for a in args:
                stats.append(_render_and_write(a))
                bar.update()
        bar.close()
        rows = []
        for p, k in jobs:
            image_rel, mask_rel = relative_paths(p, k, cfg.format)
            rows.append(
                {
                    "image": image_rel,
                    "patient_id": p.identity.patient_id,
                    "diagnosis": p.diagnosis,
                    "split": p.split,
                    "mask": mask_rel,
                }
            )
        write_manifest(tmp / MANIFEST_FILE, rows)
        write_info(tmp / INFO_FILE, _info(cfg, seed, config_hash, patients, stats))
    return root


def _seed_if_same_settings(info: dict[str, Any], cfg: SyntheticConfig) -> int | None:
    """The seed of the collection that ``info`` (its ``synthetic_info.json``) describes when ``cfg``'s
    settings with that seed wrote it, i.e. it differs from ``cfg``'s collection in the seed alone; else
    None."""
    seed = info.get("seed")
    same = isinstance(seed, int) and info.get("config_hash") == cfg.content_hash(seed)
    return seed if same else None


def _info(
    cfg: SyntheticConfig,
    seed: int,
    config_hash: str,
    patients: list[PatientPlan],
    stats: list[dict[str, Any]],
) -> dict[str, Any]:
    counts: dict[str, Any] = {"images": len(stats), "patients": len(patients)}
    for split in SPLITS:
        for diag in DIAGNOSES:
            n = sum(1 for p in patients if p.split == split and p.diagnosis == diag)
            counts[f"{split}/{diag}"] = {"patients": n, "images": n * cfg.images_per_patient}
    fractions = [s["stomach_fraction"] for s in stats]
    return {
        "generator": "gastrodistill.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": cfg.to_dict(),
        "seed": int(seed),
        "config_hash": config_hash,
        "counts": counts,
        "mean_stomach_fraction": round(float(np.mean(fractions)), 4) if fractions else 0.0,
    }


#: Keys of the ``synthetic`` config node that say where and how to write, not what is written.
_WRITE_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "root", "seed", "num_workers", "progress")


def collection_mismatch(root: str | os.PathLike, seed: int, **params: Any) -> str | None:
    """Why the synthetic collection in ``root`` is not the one ``seed`` and ``params`` (the fields of
    :class:`SyntheticConfig`) would write, as one sentence naming what to do; None when it is, and when
    ``root`` holds no collection of this generator (the user's own data, or nothing yet: the data stage
    reports that)."""
    root = Path(root)
    old = read_info(root)
    if old is None:
        return None
    cfg = SyntheticConfig.from_params(**params)
    if old.get("config_hash") == cfg.content_hash(seed):
        return None
    old_seed = old.get("seed")
    if _seed_if_same_settings(old, cfg) is not None:
        return (
            f"{root} holds the synthetic collection of synthetic.seed={old_seed}, but this run's "
            f"synthetic.seed is {seed} (it follows seed unless set), so its config would not describe its "
            f"data: add synthetic.seed={old_seed} to use that collection, or run gastrodistill-generate with "
            f"synthetic.seed={seed} first (it replaces the collection)"
        )
    saved = old.get("config") if isinstance(old.get("config"), dict) else {}
    ours = cfg.to_dict()
    differ = [
        f"synthetic.{k} is {saved.get(k, 'unset')} there but {ours.get(k, 'unset')} here"
        for k in sorted(set(saved) | set(ours))
        if saved.get(k) != ours.get(k)
    ]
    if old.get("generator_version") != GENERATOR_VERSION:
        differ.append(f"generator version {old.get('generator_version')} there but {GENERATOR_VERSION} here")
    if isinstance(old_seed, int) and old_seed != int(seed):
        differ.append(f"synthetic.seed is {old_seed} there but {seed} here")
    said = "; ".join(differ) if differ else "its settings differ"
    return (
        f"{root} holds a synthetic collection written with other settings than this run's ({said}): run "
        f"gastrodistill-generate with this run's settings first (it replaces the collection), or set them "
        f"to the collection's values"
    )


def check_synthetic_collection(cfg: Any) -> None:
    """Refuse a run whose data are the synthetic collection of ``cfg.synthetic`` (``data.root`` is
    ``synthetic.root``) when the collection on disk was written with another seed or other settings: the
    run's saved config would name data it did not read (:func:`collection_mismatch`). Nothing is checked
    for other data. Raises :class:`SyntheticCollectionMismatch`."""
    syn, data = cfg.get("synthetic"), cfg.get("data")
    if syn is None or data is None or data.get("root") is None or syn.get("root") is None:
        return
    if Path(str(data.root)).resolve() != Path(str(syn.root)).resolve():
        return
    root, seed, params = _planned(syn)
    text = collection_mismatch(root, seed, **params)
    if text is not None:
        raise SyntheticCollectionMismatch(text)


def _planned(syn: Any) -> tuple[str, int, dict[str, Any]]:
    """The root, seed and :class:`SyntheticConfig` fields of the config node ``syn`` (``cfg.synthetic``),
    resolved."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(syn, resolve=True)
    return str(node["root"]), int(node["seed"]), {k: v for k, v in node.items() if k not in _WRITE_KEYS}


def planned_collection(syn: Any) -> tuple[Path, int, str]:
    """Where the config node ``syn`` (``cfg.synthetic``) writes its collection (the absolute folder), its
    seed, and the content hash of what it writes (seed and settings; :meth:`SyntheticConfig.content_hash`):
    two configs with one folder and two hashes write collections that replace each other. Raises
    OmegaConf's errors for a value that does not resolve, and ``ValueError`` for an unusable setting."""
    root, seed, params = _planned(syn)
    return Path(root).resolve(), seed, SyntheticConfig.from_params(**params).content_hash(seed)
