"""The anonymity audit stage: nearest real patches, membership inference and text/header leaks, in one report.

``run_audit(cfg, datamodule, distilled_sets, output_dir)`` trains one reference network on the real
patches (the evaluation's upper-bound recipe), then for every distilled set measures

* its nearest *informative* real training patch (relevant classes, enough fine texture) in pixel
  space (NCC, SSIM) and in that network's feature space, against informative real patches' nearest
  patch of another patient (cross-patient duplicates counted and left out); an image at or above the
  reference quantile is flagged;
* calibrated membership attacks (difficulty calibration, LiRA; shadow networks on random halves of
  the patients) on fresh networks trained from the set, at the patch and the patient level, beside
  the same attacks on the real-data network;
* that its artifact bytes hold no patient id, header value or path, and that its images are no
  closer to the burned-in text corner than ordinary real patches are.

Every audit also runs its positive controls: real training patches of the distilled set's size and
the same with small noise (they must be flagged), and a network overfitted on the patches of half the
pool's training patients (the attack must detect it). Without them the audit cannot certify anonymity,
and the verdict of every set says so (:mod:`gastrodistill.anonymity.verdict`).

It writes ``audit.md`` (with figures), ``audit.json``, ``audit_per_image.csv``
(:mod:`gastrodistill.anonymity.report`), all together (a staging folder renamed onto the output folder
once complete: a stopped audit leaves none, or the earlier finished one as it was) and returns
``{row name: {metric: float}}`` (rows: each set, ``real``, ``control_copy``, ``control_noisy`` and
``control_overfit``) for the results table and W&B.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn

from gastrodistill.anonymity.config_check import (
    AuditConfigError,
    check_audit_config,
    null_permutations,
    shows_progress,
)
from gastrodistill.anonymity.membership import (
    DEFAULT_FPRS,
    TargetAttack,
    attack_target,
    build_pool,
    summarise_targets,
    train_shadows_and,
)
from gastrodistill.anonymity.nearest import (
    InformativeSelection,
    NearestReport,
    nearest_real,
    select_informative,
)
from gastrodistill.anonymity.report import write_outputs
from gastrodistill.anonymity.text_check import (
    PrivateStrings,
    config_private_strings,
    data_root,
    scan_for_strings,
    text_corners,
    text_patch_mask,
    text_region_similarity,
)
from gastrodistill.evaluation.jobs import AUDIT_ROWS, check_set_names
from gastrodistill.evaluation.record_settings import set_digest, state_digest
from gastrodistill.sharing.artifact import save_artifact
from gastrodistill.sharing.publish import card_fields_from_config
from gastrodistill.utils.atomic import atomic_dir, write_text_atomic
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import numpy_rng, torch_generator
from gastrodistill.utils.values import listed

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.fresh_training import NetSpec

__all__ = ["AuditConfigError", "data_root", "run_audit", "train_reference_network"]

log = logging.getLogger(__name__)


# ---- networks -------------------------------------------------------------------------------------
def train_reference_network(
    cfg: DictConfig, datamodule: ImageDataModule
) -> tuple[nn.Module, dict[str, float]]:
    """A network trained on every real training patch with the evaluation's ``baselines.real`` recipe.

    It is the membership attack's reference and defines the audit's feature space. Trained under
    Lightning's progress bar unless ``audit.progress`` is false.
    """
    from gastrodistill.evaluation.run import train_full_network

    epochs = int(cfg.audit.real_epochs) if cfg.audit.get("real_epochs") else None
    progress = shows_progress(cfg.audit)
    return train_full_network(cfg, datamodule, ("audit", "real-network"), epochs=epochs, progress=progress)


def distilled_networks(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled: DistilledSet,
    name: str,
    n: int,
    schedule: str,
) -> list[nn.Module]:
    """``n`` fresh networks trained on ``distilled`` by the evaluation's trainer (seeded per index):
    :func:`distilled_network` for ``index`` 0 .. n - 1."""
    return [distilled_network(cfg, datamodule, distilled, name, schedule, i) for i in range(n)]


def distilled_network(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled: DistilledSet,
    name: str,
    schedule: str,
    index: int,
) -> nn.Module:
    """Fresh network ``index`` trained on ``distilled`` by the evaluation's trainer, seeded by
    ``(seed, 'audit', 'mia', name, schedule, index)``, in eval mode: the architecture the set records
    (``model.*`` when it records none), as the evaluation's ``same`` row trains it.

    The replay draws its batches through ``eval.replay_augment`` as the evaluation's replays do, so the
    attacked networks are trained as the reported ones are."""
    from gastrodistill.evaluation.fresh_training import StandardSchedule, train_on_distilled

    standard = StandardSchedule(**OmegaConf.to_container(cfg.eval.standard, resolve=True))
    return train_on_distilled(
        distilled,
        set_network_spec(cfg, datamodule, distilled),
        schedule,
        torch_generator(int(cfg.seed), "audit", "mia", name, schedule, index),
        standard,
        cfg.eval.get("replay_augment"),
    ).eval()


def set_network_spec(
    cfg: DictConfig, datamodule: ImageDataModule, distilled: DistilledSet, name: str | None = None
) -> NetSpec:
    """How the audit builds networks trained on ``distilled``: the architecture the set records behind its
    own ZCA filter (or none), as the evaluation's ``same`` networks and a receiving site's are built;
    ``model.*`` for a set that records no model. With ``name``, a recorded model that cannot be built for
    these data raises :class:`AuditConfigError` naming the set (else ``ModelConfigError``)."""
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.evaluation.study import recorded_model
    from gastrodistill.models.layers import ModelConfigError

    recorded = recorded_model(distilled)
    try:
        return net_spec(cfg, "same", datamodule, recorded, zca_of=recorded or {})
    except ModelConfigError as exc:
        if name is None or not recorded:
            raise
        raise AuditConfigError(
            f"audited set {name!r}: the model it records (its distilled.json or artifact card) cannot be "
            f"built for these data: {exc}"
        ) from None


def architecture_notes(cfg: DictConfig, distilled_sets: Mapping[str, DistilledSet]) -> list[str]:
    """One line per set whose recorded model (its ZCA filter aside) is not ``model.*``: its attacked networks
    are of its own architecture, while the shadows that calibrate the attacks and the overfitted control
    are ``model.*`` networks, so its membership numbers rest on another architecture's calibration."""
    from gastrodistill.evaluation.networks import architecture_name
    from gastrodistill.evaluation.study import other_architecture

    notes = []
    for name, ds in distilled_sets.items():
        architecture = other_architecture(cfg, ds)
        if architecture:
            options = ", ".join(
                f"{k} {v}" for k, v in architecture.items() if k not in ("_target_", "_partial_")
            )
            own = architecture_name(cfg.model)
            notes.append(
                f"set {name!r} was distilled on {architecture_name(architecture)} ({options}), not on "
                f"model.* ({own}): its attacked networks are of its own architecture, the "
                "shadows that calibrate the attacks and the overfitted control are model.* networks; "
                "give model.* its architecture for a calibration of its own"
            )
    return notes


def _seeded_fit(fit: RealFit, x: torch.Tensor, y: torch.Tensor, seed_parts: tuple) -> nn.Module:
    """``fit(x, y, generator)`` with the generator of ``seed_parts`` made here (so a worker can run it)."""
    return fit(x, y, torch_generator(*seed_parts))


class RealFit:
    """``fit(x, y, generator) -> network``: the real-data recipe (``eval.baselines.real``) for a fixed
    number of epochs on in-memory patches ``x`` ``[N, C, H, W]`` (normalised), labels ``y`` ``[N]``, without
    model selection (shadow networks, overfit control), in the recipe's precision (``RealRecipe.autocast``).
    ``lr``, ``optimizer`` and ``batch_size`` override the recipe's. Picklable (the resolved config and
    the data module), so worker processes can train shadow networks
    (:func:`~gastrodistill.anonymity.membership.train_shadows`)."""

    def __init__(
        self,
        cfg: DictConfig,
        datamodule: ImageDataModule,
        epochs: int,
        lr: float | None = None,
        optimizer: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.cfg = OmegaConf.to_container(cfg, resolve=True)
        self.datamodule, self.epochs = datamodule, int(epochs)
        self.lr, self.optimizer, self.batch_size = lr, optimizer, batch_size

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> nn.Module:
        import torch.nn.functional as F

        from gastrodistill.evaluation.fresh_training import in_memory_batches, make_optimizer
        from gastrodistill.evaluation.full_data import RealRecipe
        from gastrodistill.evaluation.networks import net_spec

        cfg = OmegaConf.create(self.cfg)
        recipe = RealRecipe(**dict(OmegaConf.to_container(cfg.eval.baselines.real, resolve=True)))
        net = net_spec(cfg, "same", self.datamodule).build(g)
        dev = next(net.parameters()).device
        opt = make_optimizer(
            net.parameters(),
            self.optimizer or recipe.optimizer,
            float(self.lr if self.lr is not None else recipe.lr),
            recipe.momentum,
            recipe.weight_decay,
        )
        net.train()
        for _ in range(self.epochs):
            for xb, yb in in_memory_batches(x, y, int(self.batch_size or recipe.batch_size), g):
                opt.zero_grad(set_to_none=True)
                with recipe.autocast(dev):  # the precision of the networks the shadows stand for
                    loss = F.cross_entropy(net(xb.to(dev)), yb.to(dev))
                loss.backward()
                opt.step()
        return net.eval()


# ---- positive controls ----------------------------------------------------------------------------
def control_images(
    datamodule: ImageDataModule, searched: np.ndarray, size: int, noise_std: float, seed: int
) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Real training patches (``size`` of the searched ones) and the same plus Gaussian noise.

    ``noise_std`` is in [0, 1] intensity units (added before normalisation). Returns the two image
    sets ``[size, C, H, W]`` (normalised like the data) and the training indices used.
    """
    rng = numpy_rng(seed, "audit", "controls")
    idx = np.sort(rng.choice(searched, size=min(int(size), len(searched)), replace=False))
    x, _ = datamodule.load_split("train", idx.tolist())
    std = torch.as_tensor(datamodule.std, dtype=x.dtype).view(1, -1, 1, 1)
    g = torch_generator(seed, "audit", "controls", "noise")
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype) * float(noise_std) / std
    return {"control_copy": x, "control_noisy": x + noise}, idx


def control_patients(patients: float, available: int) -> int:
    """How many of the pool's ``available`` training patients the overfitted control trains on:
    ``patients`` (``audit.membership.overfit_control.patients``) is a count (an integer >= 1, at most
    ``available``) or a fraction in (0, 1) of ``available``, rounded half to even, at least 1. The default
    0.5 gives the control as many patients as each shadow network has (a complementary half), so its
    members are many enough for the attack's AUC to stand out from chance (3 patients: a null sd of
    0.17 on the CPU preset; half of its 44: 0.06; ``docs/anonymity.md``)."""
    if isinstance(patients, float) and 0.0 < patients < 1.0:
        return max(1, round(patients * available))
    return min(int(patients), available)


def excluded_classes(cfg: DictConfig, dm: ImageDataModule) -> list[str]:
    """The classes of ``dm`` that ``audit.nearest.informative.exclude_classes`` leaves out of the nearest
    search. A name that is not a class of the data but close to one (a misspelling, which would silently
    keep that class in the search) raises :class:`AuditConfigError` with the name meant; another absent
    name excludes nothing (the default names the evaluation's irrelevant class, which other data may lack)."""
    icfg = cfg.audit.nearest.get("informative") or {}
    names, classes = (
        [str(c) for c in (icfg.get("exclude_classes") or []) if c is not None],
        list(dm.class_names),
    )
    for name in names:
        close = difflib.get_close_matches(name, classes, n=1, cutoff=0.8) if name not in classes else []
        if close:
            raise AuditConfigError(
                f"audit.nearest.informative.exclude_classes names {name!r}, not a class of the data "
                f"{classes}; did you mean {close[0]!r}? (or "
                "'audit.nearest.informative.exclude_classes=[]' to exclude none)"
            )
    return [name for name in names if name in classes]


def informative_selection(cfg: DictConfig, dm: ImageDataModule, split: str = "train") -> InformativeSelection:
    """The informative patches of ``split`` under ``audit.nearest.informative`` (classes, min texture)."""
    icfg = cfg.audit.nearest.get("informative") or {}
    exclude = excluded_classes(cfg, dm)
    classes = [c for c in dm.class_names if c not in exclude] if exclude else None
    if classes is not None and len(classes) == len(dm.class_names):
        classes = None
    return select_informative(dm, classes, float(icfg.get("min_texture") or 0.0), split=split)


def _flag_spaces(cfg: DictConfig, nearest: NearestReport) -> list[str]:
    spaces = [str(s) for s in listed(cfg.audit.nearest.get("flag_spaces") or ["ncc"], str)]
    bad = [s for s in spaces if s not in nearest.spaces]
    if bad:
        raise AuditConfigError(
            f"audit.nearest.flag_spaces {bad} were not measured (measured: {list(nearest.spaces)}); "
            "set audit.nearest.feature_space=true for 'feature'"
        )
    return spaces


def flagged_any(nearest: NearestReport, name: str, spaces: list[str]) -> np.ndarray:
    """Bool per image of ``name``: flagged in at least one of ``spaces``."""
    return np.any([nearest.flagged(name, s) for s in spaces], axis=0)


# ---- the stage ------------------------------------------------------------------------------------
def run_audit(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    real_model: nn.Module | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    loggers: list[Logger] | None = None,
) -> dict[str, dict[str, float]]:
    """Audit every distilled set; write the report and return ``{set name | "real": {metric: value}}``.

    ``real_model`` reuses a network already trained on the real patches (else one is trained);
    ``artifacts`` maps set names to artifact folders/archives to scan (else a probe artifact of each
    set is written to a temporary folder and scanned).
    """
    if not distilled_sets:
        raise AuditConfigError("run_audit needs at least one distilled set (name -> DistilledSet)")
    check_set_names(distilled_sets, "audited set")  # e.g. not one of the audit's own rows (AUDIT_ROWS)
    acfg = cfg.audit
    check_audit_config(acfg)  # every audit.* value, before any network trains
    out = Path(output_dir)
    # The folder itself appears only when the audit is complete (``atomic_dir`` below): a stopped audit leaves
    # none, or an earlier finished one as it was.
    out.parent.mkdir(parents=True, exist_ok=True)
    dm = datamodule
    if not hasattr(dm, "num_classes") or not hasattr(dm, "mean"):
        dm.prepare_data()
        dm.setup()
    for name, ds in distilled_sets.items():  # each set's networks can be built, before any network trains
        set_network_spec(cfg, dm, ds, name)
    excluded_classes(cfg, dm)  # a misspelt class, before any network trains
    notes = architecture_notes(cfg, distilled_sets)
    for note in notes:
        log.warning("audit: %s", note)
    seed = int(cfg.seed)
    own_loggers = loggers is None
    loggers = stage_loggers(cfg, "audit") if own_loggers else loggers
    failed = True
    try:
        log_public_hyperparams(loggers, cfg)

        results: dict[str, dict[str, float]] = {name: {} for name in distilled_sets}
        real_info: dict[str, float] = {}
        if real_model is None:
            real_model, real_info = train_reference_network(cfg, dm)
        real_model.eval()
        identity = audit_identity(dm, distilled_sets, real_model)  # before the network is used

        # 1. nearest informative real patch, pixel and feature space, with the positive controls
        ncfg, ccfg = acfg.nearest, acfg.controls
        informative = informative_selection(cfg, dm)
        searched = informative.indices
        if ncfg.get("max_real") and int(ncfg.max_real) < len(searched):
            searched = np.sort(
                numpy_rng(seed, "audit", "max-real").choice(searched, int(ncfg.max_real), False)
            )
        queries = {name: ds.images.detach() for name, ds in distilled_sets.items()}
        control_size = int(ccfg.get("size") or max(len(q) for q in queries.values()))
        controls, _ = control_images(dm, searched, control_size, float(ccfg.noise_std), seed)
        nearest = nearest_real(
            dm,
            {**queries, **controls},
            feature_model=real_model if ncfg.feature_space else None,
            reference_size=int(ncfg.reference_size),
            top_k=int(ncfg.top_k),
            seed=seed,
            real_indices=searched,
            flag_quantile=float(ncfg.flag_quantile),
            duplicate_ncc=float(ncfg.duplicate_ncc),
        )
        spaces = _flag_spaces(cfg, nearest)
        sizes = {**informative.counts(), **nearest.sample_sizes()}
        for name in [*distilled_sets, *controls]:
            results.setdefault(name, {}).update(nearest.summary(name))
            results[name]["frac_flagged"] = float(np.mean(flagged_any(nearest, name, spaces)))
        copy_ok = results["control_copy"]["frac_flagged"] >= float(ccfg.required_copy)
        noisy_ok = results["control_noisy"]["frac_flagged"] >= float(ccfg.required_noisy)
        certified = float(copy_ok and noisy_ok)

        # 2. the burned-in text corner
        tcfg = acfg.text
        corners = text_corners(tcfg.corner)
        mask = text_patch_mask(dm, corners, list(tcfg.box)) if tcfg.region_check else None
        text_report = None
        if mask is not None and mask.any() and (~mask).any():
            text_report = text_region_similarity(
                dm, queries, mask, reference_size=int(tcfg.reference_size), seed=seed
            )
            for name in distilled_sets:
                results[name].update(text_report.summary(name))

        # 3. artifact bytes: no patient id, header value or path
        strings = config_private_strings(cfg, dm)
        leaks = _scan_artifacts(cfg, dm, distilled_sets, artifacts, strings)
        for name in distilled_sets:
            results[name]["artifact_leaks"] = float(len(leaks[name]))

        # 4. membership inference: shadows on random halves of the patients, then every target
        mia, mia_summary = _membership(cfg, dm, distilled_sets, real_model, real_info, seed, informative)
        primary = str(acfg.membership.primary)
        results["real"] = {**mia_summary["real"], **{f"real_{k}": v for k, v in real_info.items()}}
        results["control_overfit"] = dict(mia_summary["control_overfit"])
        oc = acfg.membership.overfit_control
        ctl = mia_summary["control_overfit"]
        detected = ctl[f"mia_patch_{primary}_auc"] >= float(oc.detect_auc) or (
            math.isfinite(ctl[f"mia_patch_{primary}_tpr_at_1pct"])
            and ctl[f"mia_patch_{primary}_tpr_at_1pct"] >= float(oc.detect_tpr_at_1pct)
        )
        for name in distilled_sets:
            r = results[name]
            r.update(mia_summary[name])
            auc, n_in, n_out = (r[f"mia_patch_{k}"] for k in (f"{primary}_auc", "n_members", "n_nonmembers"))
            # Flag only an AUC that is both large and beyond chance for this pool (3 null sd): with few
            # patches the best of several attacks reaches 0.6 by luck. Chance is the larger of the
            # Mann-Whitney null of independent patches and the null with membership redrawn over the
            # patients (membership belongs to patients, whose patches resemble each other; the patches alone
            # understate chance: docs/anonymity.md, "Chance for a pool of patients").
            independent_sd = math.sqrt((n_in + n_out + 1) / (12.0 * n_in * n_out))
            patient_sd = r.get(f"mia_patch_{primary}_null_sd", float("nan"))
            null_sd = max(independent_sd, patient_sd) if math.isfinite(patient_sd) else independent_sd
            r["mia_auc_null_sd_patches"] = independent_sd
            r["mia_auc_null_sd"] = null_sd
            r["membership_flagged"] = float(
                auc >= float(acfg.membership.flag_auc) and auc - 0.5 > 3 * null_sd
            )
            r["controls_certified"] = certified
            r["mia_control_detected"] = float(detected)
            r.update({k: v for k, v in sizes.items()})
        for row in AUDIT_ROWS:
            results[row]["controls_certified"] = certified
            results[row]["mia_control_detected"] = float(detected)

        # 5. files, figures, report, loggers. Every file goes into a staging folder beside ``out`` that
        # replaces it once complete: a stopped audit leaves no partial folder, and a re-run stopped midway
        # leaves the earlier audit (its audit.json, which later stages join, and its record) as it was.
        with atomic_dir(out) as staging:
            paths, payload = write_outputs(
                staging,
                cfg,
                dm,
                distilled_sets,
                nearest,
                text_report,
                mia,
                results,
                leaks,
                strings,
                informative,
                spaces,
                notes,
            )
            write_text_atomic(
                staging / "audit.json", json.dumps({**payload, **identity}, indent=2, sort_keys=True)
            )
            save_run_info(staging, cfg, extra={"stage": "audit"})  # the record of the audit.json beside it
        paths = {key: out / Path(path).relative_to(staging) for key, path in paths.items()}
        for i, (row, metrics) in enumerate(results.items()):
            finite = {f"audit/{row}/{k}": float(v) for k, v in metrics.items() if math.isfinite(float(v))}
            for lg in loggers:
                lg.log_metrics(finite, step=i)
        for lg in loggers:
            if isinstance(lg, WandbLogger):  # numbers only: the closest-pairs picture shows real patches
                for key in ("similarity", "membership_roc"):
                    lg.log_image(key=f"audit/{key}", images=[str(paths[key])])
            lg.save()
        failed = False
    finally:
        if own_loggers:  # closed also when the stage fails (marked failed then)
            finish_loggers(loggers, failed)
    return results


def _membership(
    cfg: DictConfig,
    dm: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    real_model: nn.Module,
    real_info: dict[str, float],
    seed: int,
    informative: InformativeSelection | None = None,
) -> tuple[dict[str, list[TargetAttack]], dict[str, dict[str, float]]]:
    """Shadow networks on random halves of the pool's patients, then the calibrated attacks on every target.

    Targets: the real-data network (members: the pool's training patches), fresh networks trained
    from each distilled set (same members), and the positive control, a network overfitted on the
    pool patches of ``overfit_control.patients`` training patients (members: those patches;
    non-members: the pool's test patches). With ``membership.informative_only`` the pool holds
    informative patches only (the nearest search's selection, and the same rule on test patches).
    """
    mcfg = cfg.audit.membership
    # the report's columns and the overfitted control's detection read the TPR at 0.1 % and 1 % FPR
    fprs = sorted({*DEFAULT_FPRS, *(float(f) for f in listed(mcfg.get("fprs") or [], (int, float)))})
    null = {"n_permutations": null_permutations(mcfg), "seed": seed}
    tr_idx = te_idx = None
    if mcfg.get("informative_only", True) and informative is not None:
        tr_idx = informative.indices
        te_idx = informative_selection(cfg, dm, split="test").indices
    pool = build_pool(dm, int(mcfg.max_per_side), seed, tr_idx, te_idx)
    epochs = int(mcfg.get("shadow_epochs") or real_info.get("best_epoch") or cfg.eval.baselines.real.epochs)

    oc = mcfg.overfit_control
    train_patients = np.unique(pool.groups[pool.is_train])
    rng = numpy_rng(seed, "audit", "overfit-control")
    chosen = rng.choice(
        train_patients, size=control_patients(oc.patients, len(train_patients)), replace=False
    )
    members = pool.is_train & np.isin(pool.groups, chosen)
    member_idx = np.flatnonzero(members)
    if oc.get("max_patches") and len(member_idx) > int(oc.max_patches):
        member_idx = np.sort(rng.choice(member_idx, int(oc.max_patches), replace=False))
        members = np.zeros(len(pool), dtype=bool)
        members[member_idx] = True
    fit = RealFit(
        cfg,
        dm,
        int(oc.epochs),
        lr=oc.get("lr"),
        optimizer=oc.get("optimizer"),
        batch_size=oc.get("batch_size"),
    )
    sel = torch.as_tensor(member_idx)
    # The target networks train and are scored in the shadows' worker processes, after them (each by its
    # own seeds): the overfitted control, then each set's networks. The real-data network is scored here.
    n_nets, schedule = int(mcfg.n_networks), str(mcfg.schedule)
    targets = [(name, i) for name in distilled_sets for i in range(n_nets)]
    makers = [
        partial(_seeded_fit, fit, pool.x[sel], pool.y[sel], (seed, "audit", "overfit-control")),
        *(
            partial(distilled_network, cfg, dm, distilled_sets[name], name, schedule, i)
            for name, i in targets
        ),
    ]
    shadows, scored = train_shadows_and(
        pool,
        RealFit(cfg, dm, epochs),
        int(mcfg.shadows),
        seed,
        int(mcfg.get("processes") or 1),
        makers,
        progress=shows_progress(cfg.audit),
    )
    overfit_scores, set_scores = scored[0], scored[1:]
    mia: dict[str, list[TargetAttack]] = {
        "real": [attack_target(real_model, pool, shadows, pool.is_train, fprs=fprs, **null)]
    }
    mia["control_overfit"] = [
        attack_target(
            None,
            pool,
            shadows,
            members,
            keep=members | ~pool.is_train,
            fprs=fprs,
            example=overfit_scores,
            **null,
        )
    ]
    for (name, _), example in zip(targets, set_scores, strict=True):
        mia.setdefault(name, []).append(
            attack_target(None, pool, shadows, pool.is_train, fprs=fprs, example=example, **null)
        )
    summary = {row: summarise_targets(runs) for row, runs in mia.items()}
    for row in summary:
        summary[row]["mia_n_networks"] = float(len(mia[row]))
        summary[row]["mia_n_shadows"] = float(shadows.n_shadows)
        summary[row]["mia_pool_patients"] = float(pool.n_patients)
        # the previous (uncalibrated) keys, kept for tables that read them
        summary[row]["mia_loss_auc"] = summary[row]["mia_patch_loss_auc"]
        summary[row]["mia_loss_auc_std"] = summary[row]["mia_patch_loss_auc_std"]
        summary[row]["mia_loss_advantage"] = summary[row]["mia_patch_loss_advantage"]
    return mia, summary


def _scan_artifacts(
    cfg: DictConfig,
    dm: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    artifacts: Mapping[str, str | Path] | None,
    strings: PrivateStrings,
) -> dict[str, list[dict[str, str]]]:
    leaks: dict[str, list[dict[str, str]]] = {}
    for name, ds in distilled_sets.items():
        if artifacts and name in artifacts:
            leaks[name] = scan_for_strings([artifacts[name]], strings)
            continue
        with tempfile.TemporaryDirectory(prefix="audit-probe-") as tmp:
            probe = save_artifact(Path(tmp) / name, ds, card_fields_from_config(cfg, dm, name), archive=True)
            leaks[name] = scan_for_strings([probe, Path(f"{probe}.zip")], strings)
    return leaks


def audit_identity(
    dm: ImageDataModule, distilled_sets: Mapping[str, Any], real_model: nn.Module | None
) -> dict[str, Any]:
    """What an audit's numbers are of, as ``audit.json`` records it: each set's content digest
    (``set_sha256``, ``evaluation.record_settings.set_digest``), the patch store's content hash
    (``data_source_hash``: the nearest-patch search and every membership pool) and the digest of the
    real-data network's weights (``reference_sha256``: the ``real`` row, and the ``full`` rows of the
    table it joins). Content hashes only: no path, no patient id."""
    return {
        "set_sha256": {name: set_digest(ds) for name, ds in distilled_sets.items()},
        "data_source_hash": dm.source_hash(),
        "reference_sha256": None if real_model is None else state_digest(real_model.state_dict()),
    }


def saved_audit_results(path: str | Path, identity: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """The results of the audit saved at ``path`` (``audit.json``) when it audited the sets and patch store
    of ``identity`` (:func:`audit_identity`: the same set names and contents, the same ``data_source_hash``),
    else None: an audit of other sets or data, one written before these were recorded, or a file that
    cannot be read. Its ``real`` row (the real-data network's, shown as the table's ``full`` rows) is kept
    only when ``reference_sha256`` is this run's network too; without it the sets' rows still join (a run
    whose evaluation keeps no reference network, or one retrained under other settings).
    ``reproduce 'stages=[evaluate]'`` joins it to the table it writes again, as the audit stage joined it
    first."""
    try:
        payload = json.loads(Path(path).read_text())
        results = payload["results"]
        saved = {key: payload[key] for key in identity}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        saved["set_sha256"] != identity["set_sha256"]
        or saved["data_source_hash"] != identity["data_source_hash"]
    ):
        return None
    if not isinstance(results, dict) or not all(isinstance(r, dict) for r in results.values()):
        return None
    if identity["reference_sha256"] is None or saved["reference_sha256"] != identity["reference_sha256"]:
        results = {name: r for name, r in results.items() if name != "real"}
    return results
