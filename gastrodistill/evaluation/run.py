"""The evaluation stage: fresh networks for every method, patch and patient metrics, the table and plots.

Methods: each distilled set (``replay`` and/or ``standard`` schedule, on the distillation architecture
and on others for cross-architecture generalisation) and the real-data baselines (``full``: every
real training patch, the upper bound; ``random``: a random real subset of the distilled set's size;
``mean``: the per-class mean images). Every choice (the standard-schedule learning rate, the real
baseline's epoch, the patient threshold) is made on validation (or training) patients; test
patients are only predicted and scored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from gastrodistill.evaluation import baselines, plots
from gastrodistill.evaluation.fresh_training import (
    NetSpec,
    RealTraining,
    StandardSchedule,
    distilled_tensors,
    in_memory_batches,
    predict,
    predict_proba,
    train_on_real,
    train_replay,
    train_small_set,
)
from gastrodistill.evaluation.metrics import mean_roc, patch_metrics, patient_metrics
from gastrodistill.evaluation.patient import FIT_SPLITS, choose_threshold, patient_scores, threshold_policy
from gastrodistill.evaluation.results import log_results, row_id, summarise, write_results
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import derive_seed, numpy_rng, torch_generator

BASELINES = ("full", "random", "mean")
SAME = "same"


class EvaluationConfigError(ValueError):
    """A bad ``eval`` config entry; the message names the key and the accepted values."""


# ---- networks -------------------------------------------------------------------------------------
def architecture_config(cfg: DictConfig, arch: str) -> DictConfig:
    """The model config of ``arch``: ``same`` is ``cfg.model``; other names are ``conf/model/<arch>.yaml``."""
    if arch == SAME:
        return cfg.model
    from gastrodistill.cli import CONF_DIR

    path = Path(CONF_DIR) / "model" / f"{arch}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
        raise EvaluationConfigError(
            f"eval architecture {arch!r} has no config conf/model/{arch}.yaml; known: {known}"
        )
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    merged = OmegaConf.merge(cfg, {})  # a copy whose interpolations still resolve against the root
    OmegaConf.set_struct(merged, False)
    merged.model = node
    return merged.model


def architecture_name(cfg: DictConfig, arch: str) -> str:
    if arch != SAME:
        return arch
    target = str(cfg.model.get("_target_", "model"))
    return target.rsplit(".", 1)[-1].lower()


def eval_device(cfg: DictConfig) -> str:
    """``eval.device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``."""
    dev = str(cfg.eval.get("device") or "auto")
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def net_spec(cfg: DictConfig, arch: str, dm) -> NetSpec:
    mcfg = architecture_config(cfg, arch)
    factory = hydra.utils.instantiate(mcfg)
    init = str(cfg.eval.get("init") or mcfg.get("init", "xavier"))
    return NetSpec(
        device=eval_device(cfg),
        factory=factory,
        in_channels=dm.in_channels,
        num_classes=dm.num_classes,
        image_size=tuple(dm.image_size),
        init=init,
        name=architecture_name(cfg, arch),
    )


# ---- data held for evaluation ---------------------------------------------------------------------
class SplitData:
    """One split's patches for prediction: in memory when small enough, else streamed from the data module."""

    def __init__(self, dm, split: str, max_bytes: int, batch_size: int) -> None:
        self.dm, self.split, self.batch_size = dm, split, batch_size
        self.labels = np.asarray(dm.labels(split), dtype=np.int64)
        nbytes = len(self.labels) * int(np.prod(dm.image_shape)) * 4
        self.x: torch.Tensor | None = None
        if nbytes <= max_bytes:
            self.x, y = dm.load_split(split)
            self.labels = y.numpy().astype(np.int64)
        self.patient_ids = dm.patient_ids(split)
        self.patient_labels = dm.patient_labels(split)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self) -> Iterable:
        if self.x is not None:
            return self.x.split(self.batch_size)
        return DataLoader(
            self.dm.dataset(self.split, augment=False),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=getattr(self.dm, "num_workers", 0),
        )

    @property
    def has_patients(self) -> bool:
        return self.patient_ids is not None and self.patient_labels is not None


@dataclass
class Context:
    cfg: DictConfig
    dm: Any
    fit: SplitData
    val: SplitData
    test: SplitData
    positive_class: int | None
    irrelevant_class: int | None
    # issue 13: threshold refusal / cross-validation (gastrodistill.evaluation.patient.ThresholdPolicy)
    policy: Any = None
    other_fit: str | None = None  # the other fitting split, pooled with `fit` when cross-validating
    other_data: Any = None  # its SplitData, loaded on first need

    @property
    def patients(self) -> bool:
        return self.positive_class is not None and self.fit.has_patients and self.test.has_patients


def _class_index(names: list[str], wanted: str | None, key: str) -> int | None:
    if wanted is None:
        return None
    if wanted not in names:
        raise EvaluationConfigError(f"eval.patient.{key} = {wanted!r} is not a class of the data {names}")
    return names.index(wanted)


def build_context(cfg: DictConfig, dm) -> Context:
    ev = cfg.eval
    source = str(ev.threshold_source)
    if source not in FIT_SPLITS:
        raise EvaluationConfigError(
            f"eval.threshold_source = {source!r}; use one of {FIT_SPLITS} (never 'test')"
        )
    max_bytes = int(ev.max_in_memory_mb) * 2**20
    val = SplitData(dm, "val", max_bytes, int(ev.batch_size))
    fit = val if source == "val" else SplitData(dm, "train", max_bytes, int(ev.batch_size))
    test = SplitData(dm, "test", max_bytes, int(ev.batch_size))
    names = list(dm.class_names)
    pos_name = ev.patient.positive_class
    pos = _class_index(names, pos_name, "positive_class") if pos_name in names else None
    irr = ev.patient.irrelevant_class
    irr_idx = _class_index(names, irr, "irrelevant_class") if irr in names else None
    policy = threshold_policy(ev.patient, int(cfg.seed))
    other = ("train" if source == "val" else "val") if policy.fallback == "cv" else None
    return Context(cfg, dm, fit, val, test, pos, irr_idx, policy, other)


# ---- one network ---------------------------------------------------------------------------------
def evaluate_network(net: nn.Module, ctx: Context) -> dict[str, Any]:
    """Patch metrics on test patches, validation balanced accuracy, and the patient diagnosis."""
    dm = ctx.dm
    rec: dict[str, Any] = {}
    test_probs = predict_proba(net, ctx.test.batches())
    test_pred = test_probs.argmax(1)
    rec.update(patch_metrics(test_pred, ctx.test.labels, dm.num_classes, list(dm.class_names), test_probs))
    val_pred = predict(net, ctx.val.batches())
    rec["val_balanced_accuracy"] = patch_metrics(val_pred, ctx.val.labels, dm.num_classes)[
        "patch_balanced_accuracy"
    ]
    if ctx.patients:
        fit_pred = val_pred if ctx.fit is ctx.val else predict(net, ctx.fit.batches())
        fit_scores = patient_scores(
            ctx.fit.split,
            fit_pred,
            ctx.fit.patient_ids,
            ctx.fit.patient_labels,
            ctx.positive_class,
            ctx.irrelevant_class,
        )
        other = None
        if ctx.other_fit is not None:  # computed only if the fitting split is too small (issue 13)

            def other():
                if ctx.other_data is None:
                    ev = ctx.cfg.eval
                    ctx.other_data = SplitData(
                        dm, ctx.other_fit, int(ev.max_in_memory_mb) * 2**20, int(ev.batch_size)
                    )
                split = ctx.other_data
                return patient_scores(
                    split.split,
                    predict(net, split.batches()),
                    split.patient_ids,
                    split.patient_labels,
                    ctx.positive_class,
                    ctx.irrelevant_class,
                )

        threshold = choose_threshold(ctx.policy, fit_scores, other)
        test_scores = patient_scores(
            "test",
            test_pred,
            ctx.test.patient_ids,
            ctx.test.patient_labels,
            ctx.positive_class,
            ctx.irrelevant_class,
        )
        decisions = threshold.apply(test_scores)
        rec.update(patient_metrics(test_scores.labels, decisions, test_scores.scores))
        rec.update(
            threshold=threshold.value,
            fit_hm=threshold.fit_hm,
            threshold_cv=float(threshold.method == "cv"),
            threshold_fit_count=float(threshold.n_positive + threshold.n_negative),
            test_labels=test_scores.labels,
            test_scores=test_scores.scores,
            test_decisions=decisions,
        )
    return rec


def val_selector(ctx: Context) -> Callable[[nn.Module], float]:
    """Model selection score: balanced patch accuracy on validation patients (never test)."""
    return lambda net: patch_metrics(predict(net, ctx.val.batches()), ctx.val.labels, ctx.dm.num_classes)[
        "patch_balanced_accuracy"
    ]


# ---- the study -----------------------------------------------------------------------------------
def _standard(ev: DictConfig, lr: float | None = None) -> StandardSchedule:
    s = OmegaConf.to_container(ev.standard, resolve=True)
    if lr is not None:
        s["lr"] = lr
    return StandardSchedule(**s)


def _list(node, key: str) -> list:
    if node is None:
        return []
    if isinstance(node, str):
        return [node]
    return list(node)


def _validate(ev: DictConfig) -> None:
    for s in _list(ev.schedules, "schedules"):
        if s not in ("replay", "standard"):
            raise EvaluationConfigError(f"eval.schedules entry {s!r} unknown; use 'replay' and/or 'standard'")
    for b in _list(ev.baselines.methods, "baselines.methods"):
        if b not in BASELINES:
            raise EvaluationConfigError(
                f"eval.baselines.methods entry {b!r} unknown; use some of {BASELINES}"
            )
    if int(ev.n_networks) < 1:
        raise EvaluationConfigError(f"eval.n_networks must be >= 1 (got {ev.n_networks})")


class Study:
    """Runs every (method, schedule, architecture, network) job and keeps the per-network records."""

    def __init__(self, cfg: DictConfig, dm, distilled_sets: Mapping[str, Any], progress: bool = True) -> None:
        self.cfg, self.ev, self.dm, self.sets = cfg, cfg.eval, dm, dict(distilled_sets)
        self.ctx = build_context(cfg, dm)
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        self.selected: dict[str, Any] = {}
        self.specs: dict[str, NetSpec] = {}
        self._train_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reference_net: nn.Module | None = None  # the first full-data network (reused by the audit)

    def spec(self, arch: str) -> NetSpec:
        if arch not in self.specs:
            self.specs[arch] = net_spec(self.cfg, arch, self.dm)
        return self.specs[arch]

    def gen(self, *parts) -> torch.Generator:
        return torch_generator(int(self.cfg.seed), "eval", *parts)

    # -- small sets (distilled with the standard schedule, random subsets, mean images) -------
    def choose_lr(
        self, key: str, arch: str, make_set: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    ) -> float:
        """The standard-schedule learning rate with the best validation balanced accuracy (one net per lr)."""
        grid = [float(v) for v in _list(self.ev.get("lr_grid"), "lr_grid")] or [float(self.ev.standard.lr)]
        if len(grid) == 1:
            return grid[0]
        spec, score = self.spec(arch), val_selector(self.ctx)
        scores = {}
        for lr in grid:
            g = self.gen("lr-select", key, arch, lr)
            x, y = make_set(-1)
            net = train_small_set(spec.build(g), x, y, _standard(self.ev, lr), g)
            scores[lr] = score(net)
        best = max(grid, key=lambda v: scores[v])
        self.selected[f"{key}/{arch}/standard_lr"] = {"chosen": best, "val_balanced_accuracy": scores}
        return best

    def run_small(
        self,
        method: str,
        schedule: str,
        arch: str,
        n: int,
        make_set: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
        bar,
    ) -> None:
        lr = self.choose_lr(method, arch, make_set)
        spec = self.spec(arch)
        for i in range(n):
            g = self.gen(method, schedule, arch, i)
            x, y = make_set(i)
            net = train_small_set(spec.build(g), x, y, _standard(self.ev, lr), g)
            self._record(method, schedule, arch, i, net, lr=lr)
            bar.update()

    def run_replay(self, name: str, distilled, arch: str, n: int, bar) -> None:
        spec = self.spec(arch)
        for i in range(n):
            net = train_replay(spec.build(self.gen(name, "replay", arch, i)), distilled)
            self._record(name, "replay", arch, i, net)
            bar.update()

    def run_full(self, arch: str, n: int, bar) -> None:
        real = RealTraining(**OmegaConf.to_container(self.ev.baselines.real, resolve=True))
        spec = self.spec(arch)
        for i in range(n):
            g = self.gen("full", "real", arch, i)
            net, info = train_on_real(
                spec,
                self._epoch_batches(real.batch_size, g),
                real,
                val_selector(self.ctx),
                g,
                progress=self.progress,
            )
            self._record("full", "real", arch, i, net, best_epoch=info["best_epoch"])
            if self.reference_net is None and arch == SAME:
                self.reference_net = net
            bar.update()

    # -- data helpers --------------------------------------------------------------------------
    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The whole training split in memory if it fits ``eval.max_in_memory_mb``, else ``None`` (stream)."""
        if self._train_cache is None:
            n = len(self.dm.labels("train"))
            if n * int(np.prod(self.dm.image_shape)) * 4 > int(self.ev.max_in_memory_mb) * 2**20:
                return None
            self._train_cache = self.dm.load_split("train")
        return self._train_cache

    def _epoch_batches(self, batch_size: int, g: torch.Generator) -> Callable[[int], Iterable]:
        cached = self.train_tensors()
        if cached is not None:
            x, y = cached
            return lambda epoch: in_memory_batches(x, y, batch_size, g)
        return lambda epoch: self.dm.train_dataloader()

    def mean_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self.train_tensors()
        if cached is not None:
            batches = [cached]
        else:
            batches = DataLoader(self.dm.dataset("train", augment=False), batch_size=int(self.ev.batch_size))
        return baselines.class_means(batches, self.dm.num_classes, list(self.dm.class_names))

    # -- records -------------------------------------------------------------------------------
    def _record(self, method: str, schedule: str, arch: str, index: int, net: nn.Module, **extra) -> None:
        rec = {"method": method, "schedule": schedule, "architecture": self.spec(arch).name, "network": index}
        rec.update(extra)
        rec.update(evaluate_network(net, self.ctx))
        self.records.append(rec)

    # -- plan ----------------------------------------------------------------------------------
    def random_per_class(self) -> int:
        n = self.ev.baselines.get("n_per_class")
        if n is not None:
            return int(n)
        if not self.sets:
            raise EvaluationConfigError(
                "eval.baselines.n_per_class is needed for the 'random' baseline without a distilled set"
            )
        first = next(iter(self.sets.values()))
        return max(1, int(first.images.shape[0]) // self.dm.num_classes)

    def run(self) -> list[dict[str, Any]]:
        ev = self.ev
        _validate(ev)
        n_nets = int(ev.n_networks)
        archs = _list(ev.architectures, "architectures") or [SAME]
        base_archs = _list(ev.baselines.architectures, "baselines.architectures") or [SAME]
        methods = _list(ev.baselines.methods, "baselines.methods")
        schedules = _list(ev.schedules, "schedules")
        n_full = int(ev.baselines.get("n_networks_full") or n_nets)
        total = len(self.sets) * len(schedules) * len(archs) * n_nets
        total += sum((n_full if m == "full" else n_nets) * len(base_archs) for m in methods)
        bar = tqdm(total=total, desc="evaluation: fresh networks", disable=not self.progress)
        for name, ds in self.sets.items():
            for arch in archs:
                for schedule in schedules:
                    if schedule == "replay":
                        self.run_replay(name, ds, arch, n_nets, bar)
                    else:
                        x, y = distilled_tensors(ds)
                        self.run_small(name, "standard", arch, n_nets, lambda i, x=x, y=y: (x, y), bar)
        for m in methods:
            for arch in base_archs:
                if m == "full":
                    self.run_full(arch, n_full, bar)
                elif m == "random":
                    k = self.random_per_class()
                    self.run_small(
                        "random",
                        "standard",
                        arch,
                        n_nets,
                        lambda i, k=k: baselines.random_subset(self.dm, k, self.gen("random-subset", i)),
                        bar,
                    )
                else:
                    means = self.mean_images()
                    self.run_small("mean", "standard", arch, n_nets, lambda i, m_=means: m_, bar)
        bar.close()
        return self.records

    def sizes(self) -> dict[str, dict[str, int]]:
        shape = tuple(self.dm.image_shape)
        bpp = int(getattr(self.dm, "bytes_per_pixel", None) or self.ev.get("real_bytes_per_pixel", 1))
        n_train = len(self.dm.labels("train"))
        out = {"full": {"n_images": n_train, "bytes": baselines.real_set_bytes(n_train, shape, bpp)}}
        for name, ds in self.sets.items():
            out[name] = {"n_images": int(ds.images.shape[0]), "bytes": baselines.distilled_bytes(ds)}
        if "random" in _list(self.ev.baselines.methods, "m"):
            n = self.random_per_class() * self.dm.num_classes
            out["random"] = {"n_images": n, "bytes": baselines.real_set_bytes(n, shape, bpp)}
        k = self.dm.num_classes
        out["mean"] = {"n_images": k, "bytes": k * (int(np.prod(shape)) * 4 + 1)}
        return out


# ---- outputs -------------------------------------------------------------------------------------
def _row_label(r: Mapping[str, Any]) -> str:
    return row_id(r)


def write_network_records(records: list[dict[str, Any]], path: Path) -> Path:
    """Per-network scalars (no arrays, no patient data) for inspection."""
    rows = [{k: v for k, v in r.items() if np.isscalar(v) or v is None} for r in records]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.10g")
    return path


def make_plots(study: Study, df: pd.DataFrame, out: Path) -> dict[str, Path]:
    dm = study.dm
    paths: dict[str, Path] = {}
    for name, ds in study.sets.items():
        with torch.no_grad():
            paths[f"grid_{name}"] = plots.plot_distilled_grid(
                ds.images,
                ds.soft_targets(),
                list(dm.class_names),
                dm.mean,
                dm.std,
                out / f"distilled_{name}.png",
                title=f"{name}: distilled images and their labels",
            )
    if study.sets:
        paths["lr_schedule"] = plots.plot_lr_schedules(
            {n: ds.lrs().detach().cpu().numpy() for n, ds in study.sets.items()},
            out / "lr_schedule.png",
            steps={n: int(ds.steps) for n, ds in study.sets.items()},
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in study.records:
        groups.setdefault(_row_label(r), []).append(r)
    primary = study.spec(SAME).name
    if study.ctx.patients:
        curves, curves_all = {}, {}
        for label, recs in groups.items():
            fpr, tpr, sd = mean_roc([r["roc_fpr"] for r in recs], [r["roc_tpr"] for r in recs])
            auc = float(np.nanmean([r["patient_auc"] for r in recs]))
            curves_all[label] = (fpr, tpr, sd, auc)
            if recs[0]["architecture"] == primary:
                curves[label] = curves_all[label]
        paths["roc"] = plots.plot_roc_curves(curves, out / "roc_curves.png")
        if len(curves_all) > len(curves):
            paths["roc_all"] = plots.plot_roc_curves(curves_all, out / "roc_curves_all_architectures.png")
    mats = {label: np.sum([r["confusion_matrix"] for r in recs], axis=0) for label, recs in groups.items()}
    paths["confusion"] = plots.plot_confusion_matrices(
        mats, list(dm.class_names), out / "confusion_matrices.png"
    )
    return paths


def run_evaluation(
    cfg: DictConfig,
    datamodule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    loggers: list[Logger] | None = None,
    state: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Evaluate every distilled set and the baselines; write ``results.{csv,md}``, plots and logs.

    ``distilled_sets`` maps a method name (e.g. ``soft``, ``hard``) to a ``DistilledSet``. Returns
    the results table (one row per method, schedule and architecture). When ``state`` is given, the
    first full-data network is left in ``state["real_model"]`` for later stages (the audit).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_run_info(out, cfg, extra={"stage": "evaluate"})
    dm = datamodule
    if not hasattr(dm, "num_classes"):
        dm.prepare_data()
        dm.setup()
    own_loggers = loggers is None
    loggers = stage_loggers(cfg, "evaluation") if own_loggers else loggers
    log_public_hyperparams(loggers, cfg)
    progress = bool(cfg.eval.get("progress", True))
    study = Study(cfg, dm, distilled_sets, progress=progress)
    threads_before = torch.get_num_threads()
    if cfg.eval.get("num_threads"):
        torch.set_num_threads(int(cfg.eval.num_threads))
    try:
        records = study.run()
    finally:
        torch.set_num_threads(threads_before)
    if state is not None:
        state["real_model"] = study.reference_net
    real_bytes = study.sizes()["full"]["bytes"]
    df = summarise(
        records,
        study.sizes(),
        real_bytes,
        numpy_rng(int(cfg.seed), "eval-bootstrap"),
        int(cfg.eval.bootstrap),
        float(cfg.eval.ci_level),
    )
    df.insert(3, "cross_architecture", df["architecture"] != study.spec(SAME).name)
    write_results(df, out, title=f"Results: {cfg.experiment_name}", max_ci_width=cfg.eval.get("max_ci_width"))
    write_network_records(records, out / "networks.csv")
    write_text_atomic(
        out / "selection.json",
        json.dumps(
            {
                "threshold_source": str(cfg.eval.threshold_source),
                "standard_lr": study.selected,
                "seed_scheme": "derive_seed(seed, 'eval', method, schedule, arch, index)",
                "eval_seed_example": derive_seed(int(cfg.seed), "eval", "soft", "replay", SAME, 0),
            },
            indent=2,
            default=str,
        ),
    )
    figures = make_plots(study, df, out / "plots")
    log_results(loggers, df)
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            for key, path in figures.items():
                lg.log_image(key=f"plots/{key}", images=[str(path)])
    if own_loggers:
        finish_loggers(loggers)
    return df


def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows on the distillation architecture (not the cross-architecture ones)."""
    return df[~df["cross_architecture"].astype(bool)] if "cross_architecture" in df else df


def method_metrics(df: pd.DataFrame | None, method: str, schedule: str = "replay") -> dict[str, float]:
    """A method's numbers on the distillation architecture (for the artifact card): means, stds and CIs."""
    if df is None or not len(df):
        return {}
    sel = primary_rows(df)
    sel = sel[(sel.method == method) & (sel.schedule == schedule)]
    if not len(sel):
        return {}
    row = sel.iloc[0]
    return {
        k: float(row[k])
        for k in df.columns
        if k not in ("method", "schedule", "architecture", "cross_architecture")
        and pd.api.types.is_number(row[k])
    }


def headline(df: pd.DataFrame) -> dict[str, float]:
    """The HMs the targets speak about (distillation architecture): soft/hard replay, full, random."""
    base = primary_rows(df)

    def hm(method: str, schedule: str) -> float:
        sel = base[(base.method == method) & (base.schedule == schedule)]
        return float(sel["patient_hm_mean"].iloc[0]) if len(sel) and "patient_hm_mean" in sel else math.nan

    return {
        "soft_replay_hm": hm("soft", "replay"),
        "hard_replay_hm": hm("hard", "replay"),
        "full_hm": hm("full", "real"),
        "random_hm": hm("random", "standard"),
    }
