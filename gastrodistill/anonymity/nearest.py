"""Nearest real training patch of every distilled image, against the reference of real patients.

A distilled image is only as identifying as its closest real patch. "Close" needs a yardstick: how
similar is a real patch of one patient to its nearest patch of a *different* patient? If distilled
images are no closer to the training set than real patients are to each other, they reproduce no
patient; a distilled image at or above the reference's 99th percentile (``flag_quantile``) looks like
a copy and is flagged.

The yardstick only means something over *informative* patches. Near-uniform background (the
``irrelevant`` class of gastric X-rays) correlates almost perfectly with the background of any other
patient, which pushes the reference's upper quantiles to 1.0, where even an exact copy cannot be
flagged. :func:`select_informative` therefore keeps only patches of the relevant classes and/or with
enough fine texture (standard deviation of the high-pass residual), and the search and the reference
both run over those patches. Cross-patient pairs whose NCC reaches ``duplicate_ncc`` (the same patch
under two patient ids, a duplicated image) are counted and reported, and left out of the quantile:
they are a property of the data set, not of how alike two patients are.

Similarity is measured in pixel space (normalised cross-correlation over the whole image, then SSIM
on the best NCC candidates) and in the feature space of a network trained on real patches (cosine of
the input to its last linear layer). The training split is streamed once in order, never loaded
whole, so the search scales to the paper's patch store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchmetrics.functional.image import structural_similarity_index_measure

from gastrodistill.data.base import ImageDataModule
from gastrodistill.models.features import last_linear, penultimate_features
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.utils.images import denormalise
from gastrodistill.utils.seeding import numpy_rng

#: Similarity spaces, in report order.
SPACES = ("ncc", "ssim", "feature")


class NearestInputError(ValueError):
    """Distilled images that cannot be compared with the real patches (wrong channels, not 4-D, ...)."""


# ---- pixel and feature similarities ---------------------------------------------------------------
def match_size(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Bring images ``[N, C, H, W]`` to the stored size (antialiased bilinear); refuse a channel mismatch."""
    if x.ndim != 4:
        raise NearestInputError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    c, h, w = image_shape
    if x.shape[1] != c:
        raise NearestInputError(
            f"images have {x.shape[1]} channels but the real patches have {c}; "
            "audit a distilled set against the data it was distilled from"
        )
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x


def ncc_vectors(x_unit: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-norm flattened images; their dot product is the normalised cross-correlation.

    A constant image has no structure to correlate and gets the zero vector (similarity 0).
    """
    v = x_unit.flatten(1).double()
    v = v - v.mean(dim=1, keepdim=True)
    norm = v.norm(dim=1, keepdim=True)
    return torch.where(norm > 1e-8, v / norm.clamp_min(1e-12), torch.zeros_like(v)).float()


def cosine_vectors(f: torch.Tensor) -> torch.Tensor:
    """Rows of ``f`` ``[N, ...]`` flattened to float ``[N, D]`` and scaled to unit L2 norm."""
    return F.normalize(f.flatten(1).float(), dim=1)


def ssim_pairs(a_unit: torch.Tensor, b_unit: torch.Tensor) -> torch.Tensor:
    """SSIM of each pair ``(a[i], b[i])`` in [0, 1] units (clamped); the kernel shrinks for tiny images."""
    h, w = a_unit.shape[-2:]
    k = min(11, h, w)
    k = k if k % 2 == 1 else k - 1
    if k < 3:
        raise NearestInputError(f"images of {h}x{w} px are too small for SSIM (need at least 3x3)")
    return structural_similarity_index_measure(
        a_unit.clamp(0, 1).float(),
        b_unit.clamp(0, 1).float(),
        kernel_size=k,
        sigma=1.5 * k / 11,
        data_range=1.0,
        reduction="none",
    )


@contextlib.contextmanager
def penultimate(model: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Yield ``features(x)``: the input to the model's last linear layer (its penultimate representation),
    in eval mode, without gradients, on the CPU. Raises ``NearestInputError`` without a linear layer."""
    try:
        last_linear(model)
    except ModelConfigError as err:
        raise NearestInputError(str(err)) from None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        return penultimate_features(model, x.to(device)).detach().cpu()

    try:
        yield features
    finally:
        model.train(was_training)


# ---- streaming top-k search -----------------------------------------------------------------------
class _TopK:
    """Running top-k (value, real index) per query, merged batch by batch."""

    def __init__(self, n: int, k: int) -> None:
        self.values = torch.full((n, k), -float("inf"))
        self.index = torch.full((n, k), -1, dtype=torch.long)

    def update(self, sims: torch.Tensor, idx: torch.Tensor) -> None:
        vals = torch.cat([self.values, sims], dim=1)
        inds = torch.cat([self.index, idx.view(1, -1).expand(sims.shape[0], -1)], dim=1)
        top = vals.topk(self.values.shape[1], dim=1)
        self.values, self.index = top.values, inds.gather(1, top.indices)


@dataclass
class NearestReport:
    """Per distilled image and per reference patch: the nearest real similarity in each space.

    ``sets[name][space]`` and ``sets[name][space + "_index"]`` (index into the train split) are arrays
    of one entry per distilled image; ``reference[space]`` holds the same for the sampled real patches,
    with their own patient's patches (or themselves, without patients) excluded. Reference patches
    whose nearest other-patient patch is a near-duplicate (pixel NCC >= ``duplicate_ncc``) are counted
    in ``n_duplicates`` / ``n_exact_duplicates`` and left out of every quantile; an image is *flagged*
    in a space when its similarity is at or above the reference's ``flag_quantile``.
    """

    sets: dict[str, dict[str, np.ndarray]]
    reference: dict[str, np.ndarray]
    reference_indices: np.ndarray
    spaces: tuple[str, ...]
    n_real: int
    by_patient: bool
    extra: dict[str, float] = field(default_factory=dict)
    flag_quantile: float = 0.99
    duplicate_ncc: float = 0.99

    @property
    def duplicates(self) -> np.ndarray:
        """Bool per reference patch: its nearest other-patient patch is a near-duplicate (pixel NCC)."""
        ncc = self.reference["ncc"]
        return np.isfinite(ncc) & (ncc >= self.duplicate_ncc)

    @property
    def n_duplicates(self) -> int:
        """Reference patches whose nearest other-patient patch is a near-duplicate (:attr:`duplicates`)."""
        return int(self.duplicates.sum())

    @property
    def n_exact_duplicates(self) -> int:
        """Reference patches with an (up to float rounding) identical patch of another patient."""
        ncc = self.reference["ncc"]
        return int((np.isfinite(ncc) & (ncc >= 1.0 - 1e-5)).sum())

    def ref(self, space: str) -> np.ndarray:
        """The reference similarities of one space, without cross-patient duplicates and unmatched patches."""
        values = self.reference[space]
        return values[np.isfinite(values) & ~self.duplicates]

    def _nonempty_ref(self, space: str) -> np.ndarray:
        """:meth:`ref`, or :class:`NearestInputError` naming the cause when it is empty."""
        ref = self.ref(space)
        if len(ref) == 0:
            raise NearestInputError(
                f"the {space} reference is empty: every reference patch has a near-duplicate in another "
                f"patient (NCC >= {self.duplicate_ncc}); deduplicate the data or raise "
                "audit.nearest.duplicate_ncc"
            )
        return ref

    def threshold(self, space: str) -> float:
        """The flagging threshold of ``space``: the reference's ``flag_quantile`` (linear interpolation)."""
        return float(np.quantile(self._nonempty_ref(space), self.flag_quantile))

    def flagged(self, name: str, space: str) -> np.ndarray:
        """Bool per image of set ``name``: at or above the reference quantile of ``space``."""
        return np.asarray(self.sets[name][space]) >= self.threshold(space)

    def summary(self, name: str) -> dict[str, float]:
        """Per space: mean/max nearest similarity, reference quantiles and the shares at or above them.

        ``<space>_frac_flagged`` uses ``flag_quantile`` (``<space>_ref_q``); ``_frac_above_p95`` and
        ``_frac_above_p99`` are the shares at or above the fixed 95th/99th percentiles. Raises
        :class:`NearestInputError` when a space's reference is empty (:meth:`threshold`).
        """
        out: dict[str, float] = {}
        for space in self.spaces:
            sims = self.sets[name][space]
            ref = self._nonempty_ref(space)  # first: it names an empty reference (NearestInputError)
            p95, p99 = (float(np.percentile(ref, q)) for q in (95, 99))
            out.update(
                {
                    f"{space}_nearest_mean": float(np.mean(sims)),
                    f"{space}_nearest_max": float(np.max(sims)),
                    f"{space}_ref_median": float(np.median(ref)),
                    f"{space}_ref_p95": p95,
                    f"{space}_ref_p99": p99,
                    f"{space}_ref_q": self.threshold(space),
                    f"{space}_frac_above_p95": float(np.mean(sims >= p95)),
                    f"{space}_frac_above_p99": float(np.mean(sims >= p99)),
                    f"{space}_frac_flagged": float(np.mean(self.flagged(name, space))),
                }
            )
        out["n_images"] = float(len(self.sets[name][self.spaces[0]]))
        return out

    def sample_sizes(self) -> dict[str, float]:
        """How many real patches the numbers rest on (searched, reference, duplicates left out)."""
        return {
            "n_real_searched": float(self.n_real),
            "n_reference": float(len(self.reference_indices)),
            "n_reference_used": float(len(self.ref("ncc"))),
            "n_reference_duplicates": float(self.n_duplicates),
            "n_reference_exact_duplicates": float(self.n_exact_duplicates),
            **self.extra,
        }


# ---- informative patches --------------------------------------------------------------------------
def texture_strength(x_unit: torch.Tensor) -> torch.Tensor:
    """Fine texture of each image ``[N, C, H, W]`` (in [0, 1] units): std of ``x - box3x3(x)``, shape ``[N]``.

    A 3x3 box blur with reflected borders keeps smooth shading and gradients, so the residual is the
    fine structure; uniform or smoothly shaded background scores ~0 (plus its pixel noise).
    """
    x = x_unit.float()
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel_size=3, stride=1)
    return (x - blurred).flatten(1).std(dim=1)


@dataclass
class InformativeSelection:
    """Which training patches the audit compares with, and what it left out (counts, never ids)."""

    indices: np.ndarray
    n_total: int
    n_excluded_class: int
    n_excluded_texture: int
    classes: list[str] | None
    min_texture: float
    texture_median_kept: float
    texture_median_excluded: float

    def counts(self) -> dict[str, float]:
        """Sizes and settings for the report: patches kept, left out per reason, the min texture."""
        return {
            "n_train_patches": float(self.n_total),
            "n_informative": float(len(self.indices)),
            "n_excluded_class": float(self.n_excluded_class),
            "n_excluded_texture": float(self.n_excluded_texture),
            "min_texture": float(self.min_texture),
        }

    def describe(self) -> str:
        """One sentence for the report: what was kept and what was excluded, and why."""
        cls = f"classes {', '.join(self.classes)}" if self.classes else "all classes"
        return (
            f"{len(self.indices)} of {self.n_total} training patches are informative and searched ({cls}, "
            f"fine texture >= {self.min_texture:.4g}); excluded: {self.n_excluded_class} by class, "
            f"{self.n_excluded_texture} more as near-uniform (median texture kept "
            f"{self.texture_median_kept:.4g}, excluded {self.texture_median_excluded:.4g})."
        )


def select_informative(
    datamodule: ImageDataModule,
    classes: list[str] | None = None,
    min_texture: float = 0.0,
    batch_size: int | None = None,
    split: str = "train",
) -> InformativeSelection:
    """Patches of ``split`` of ``classes`` (``None``: all) with :func:`texture_strength` >= ``min_texture``.

    Raises :class:`NearestInputError` for an unknown class name or when nothing is left.
    """
    names = list(datamodule.class_names)
    labels = np.asarray(datamodule.labels(split))
    keep_class = np.ones(len(labels), dtype=bool)
    if classes:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise NearestInputError(
                f"audit.nearest.informative.classes {unknown} are not classes of the data {names}"
            )
        keep_class = np.isin(labels, [names.index(c) for c in classes])
    train = datamodule.dataset(split, augment=False)
    texture = []
    for x, _ in DataLoader(train, batch_size=batch_size or datamodule.eval_batch_size, shuffle=False):
        texture.append(texture_strength(denormalise(x.float(), datamodule.mean, datamodule.std)))
    tex = torch.cat(texture).numpy() if texture else np.zeros(0)
    keep_tex = tex >= float(min_texture)
    keep = keep_class & keep_tex
    if not keep.any():
        raise NearestInputError(
            f"no training patch is informative (classes {classes}, min_texture {min_texture}); lower "
            "audit.nearest.informative.min_texture or widen its classes"
        )
    med = lambda v: float(np.median(v)) if len(v) else float("nan")  # noqa: E731
    return InformativeSelection(
        indices=np.flatnonzero(keep),
        n_total=len(labels),
        n_excluded_class=int((~keep_class).sum()),
        n_excluded_texture=int((keep_class & ~keep_tex).sum()),
        classes=list(classes) if classes else None,
        min_texture=float(min_texture),
        texture_median_kept=med(tex[keep]),
        texture_median_excluded=med(tex[~keep]),
    )


def _train_groups(datamodule: ImageDataModule, n_real: int) -> tuple[np.ndarray, bool]:
    pids = datamodule.patient_ids("train")
    if pids is None:
        return np.arange(n_real), False
    pids = np.asarray(pids)
    if len(pids) != n_real:
        raise NearestInputError(f"patient_ids('train') has {len(pids)} entries for {n_real} training samples")
    _, groups = np.unique(
        pids, return_inverse=True
    )  # integer codes: ids themselves never leave this function
    return groups.astype(np.int64), True


def nearest_real(
    datamodule: ImageDataModule,
    queries: dict[str, torch.Tensor],
    feature_model: nn.Module | None = None,
    reference_size: int = 256,
    top_k: int = 5,
    max_real: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    real_indices: np.ndarray | None = None,
    reference_indices: np.ndarray | None = None,
    ssim: bool = True,
    flag_quantile: float = 0.99,
    duplicate_ncc: float = 0.99,
) -> NearestReport:
    """Search the training split once for the nearest real patch of every query and of a reference sample.

    ``queries`` maps a set name to images ``[N, C, H, W]`` in the data module's normalised space (resized
    to the stored size if needed). ``max_real`` subsamples the real set (seeded) for quick runs;
    ``real_indices`` restricts the search to some training patches (e.g. those holding burned-in text)
    and ``reference_indices`` fixes the reference patches (default: a seeded sample of the searched ones).
    ``flag_quantile`` and ``duplicate_ncc`` set how images are flagged (:class:`NearestReport`).
    """
    if not 0.0 < flag_quantile < 1.0:
        raise NearestInputError(f"flag_quantile must be in (0, 1), got {flag_quantile}")
    image_shape = datamodule.image_shape
    queries = {name: match_size(q.detach().float().cpu(), image_shape) for name, q in queries.items()}
    train = datamodule.dataset("train", augment=False)
    n_all = len(train)
    if n_all < 2:
        raise NearestInputError(f"the training split has {n_all} samples; the audit needs at least 2")
    groups_all, by_patient = _train_groups(datamodule, n_all)
    rng = numpy_rng(seed, "audit", "nearest")
    real_idx = (
        np.arange(n_all) if real_indices is None else np.unique(np.asarray(real_indices, dtype=np.int64))
    )
    if len(real_idx) == 0 or real_idx[0] < 0 or real_idx[-1] >= n_all:
        raise NearestInputError(f"real_indices must be non-empty indices into the {n_all} training samples")
    if max_real and max_real < len(real_idx):
        real_idx = np.sort(rng.choice(real_idx, size=max_real, replace=False))
    if reference_indices is None:
        ref_idx = np.sort(rng.choice(real_idx, size=min(reference_size, len(real_idx)), replace=False))
    else:
        ref_idx = np.sort(np.asarray(reference_indices, dtype=np.int64))
    if len(ref_idx) == 0:
        raise NearestInputError("the reference sample is empty; it needs at least one real training patch")
    ref_x, _ = datamodule.load_split("train", ref_idx.tolist())

    names = list(queries)
    sizes = [len(queries[n]) for n in names]
    q_all = torch.cat([queries[n] for n in names] + [ref_x])
    q_groups = torch.as_tensor(np.concatenate([np.full(sum(sizes), -1), groups_all[ref_idx]]))
    n_q = len(q_all)
    k = max(1, min(top_k, len(real_idx)))
    mean, std = datamodule.mean, datamodule.std
    q_ncc = ncc_vectors(denormalise(q_all, mean, std))
    tops = {"ncc": _TopK(n_q, k)}

    with contextlib.ExitStack() as stack:
        feats = None
        if feature_model is not None:
            feats = stack.enter_context(penultimate(feature_model))
            q_feat = torch.cat([cosine_vectors(feats(c)) for c in q_all.split(256)])
            tops["feature"] = _TopK(n_q, 1)
        loader = DataLoader(
            Subset(train, real_idx.tolist()),
            batch_size=batch_size or datamodule.eval_batch_size,
            shuffle=False,
            num_workers=datamodule.num_workers,
        )
        start = 0
        for x, _ in loader:
            idx = torch.as_tensor(real_idx[start : start + len(x)])
            start += len(x)
            excluded = q_groups.view(-1, 1) == torch.as_tensor(groups_all[idx.numpy()]).view(1, -1)
            sims = q_ncc @ ncc_vectors(denormalise(x.float(), mean, std)).T
            tops["ncc"].update(sims.masked_fill(excluded, -float("inf")), idx)
            if feats is not None:
                sims = q_feat @ cosine_vectors(feats(x.float())).T
                tops["feature"].update(sims.masked_fill(excluded, -float("inf")), idx)

    if torch.isinf(tops["ncc"].values[sum(sizes) :, 0]).all():
        raise NearestInputError(
            "no reference patch has a patch of another patient among the searched ones; "
            "the reference needs at least two patients"
        )
    results = {"ncc": tops["ncc"].values[:, 0].numpy(), "ncc_index": tops["ncc"].index[:, 0].numpy()}
    if ssim:
        results.update(_ssim_rerank(datamodule, q_all, tops["ncc"]))
    if "feature" in tops:
        results["feature"] = tops["feature"].values[:, 0].numpy()
        results["feature_index"] = tops["feature"].index[:, 0].numpy()

    spaces = tuple(s for s in SPACES if s in results)
    sets: dict[str, dict[str, np.ndarray]] = {}
    offset = 0
    for name, size in zip(names, sizes, strict=True):
        sets[name] = {key: val[offset : offset + size] for key, val in results.items()}
        offset += size
    reference = {key: val[offset:] for key, val in results.items()}
    return NearestReport(
        sets=sets,
        reference=reference,
        reference_indices=ref_idx,
        spaces=spaces,
        n_real=len(real_idx),
        by_patient=by_patient,
        flag_quantile=float(flag_quantile),
        duplicate_ncc=float(duplicate_ncc),
    )


def _ssim_rerank(datamodule: ImageDataModule, q_all: torch.Tensor, top: _TopK) -> dict[str, np.ndarray]:
    """SSIM of each query with its top-k NCC candidates; the best one is its SSIM-nearest patch."""
    cand = top.index.clamp_min(0)
    valid = torch.isfinite(top.values)
    uniq, inverse = torch.unique(cand, return_inverse=True)
    real_x, _ = datamodule.load_split("train", uniq.tolist())
    mean, std = datamodule.mean, datamodule.std
    q_unit, r_unit = denormalise(q_all, mean, std), denormalise(real_x.float(), mean, std)
    n, k = cand.shape
    rows = torch.arange(n).repeat_interleave(k)
    scores = torch.cat(
        [
            ssim_pairs(q_unit[rows[i : i + 1024]], r_unit[inverse.flatten()[i : i + 1024]])
            for i in range(0, n * k, 1024)
        ]
    ).view(n, k)
    scores = scores.masked_fill(~valid, -float("inf"))
    best = scores.argmax(dim=1, keepdim=True)
    return {
        "ssim": scores.gather(1, best).squeeze(1).numpy(),
        "ssim_index": cand.gather(1, best).squeeze(1).numpy(),
    }
