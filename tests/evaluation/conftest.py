"""A small in-memory patch data set with patients, for evaluation tests that need no patch store."""

from __future__ import annotations

import numpy as np
import pytest
from _eval_sets import PatientTensorDataModule


def _patch(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    if cls == 0:
        img = 0.15 + 0.05 * rng.standard_normal((size, size))
    else:
        period = 2.0 if cls == 1 else 5.0
        phase = rng.uniform(0, 2 * np.pi)
        img = 0.55 + 0.2 * np.sin(2 * np.pi * (xx + yy) / period + phase)
        img += 0.15 * rng.standard_normal((size, size))
    return np.clip(img, 0, 1)


def make_patient_dm(
    seed: int = 0,
    patients=(12, 8, 16),
    patches: int = 10,
    size: int = 12,
    flip_test_labels: bool = False,
    mislabel: float = 0.25,
) -> PatientTensorDataModule:
    """Patients of both diagnoses; stomach patches look like their label with probability 1 - mislabel."""
    rng = np.random.default_rng(seed)
    splits, pids, plabels = {}, {}, {}
    for split, n_pat in zip(("train", "val", "test"), patients, strict=True):
        xs, ys, ids, lab = [], [], [], {}
        for p in range(n_pat):
            pid = f"{split}-P{p:03d}"
            diag = p % 2  # 1 = gastritis
            lab[pid] = diag
            for _ in range(patches):
                label = 0 if rng.random() < 0.3 else 1 + diag
                look = label if label == 0 or rng.random() > mislabel else 3 - label
                xs.append(_patch(rng, look, size))
                ys.append(label)
                ids.append(pid)
        x = np.asarray(xs, dtype=np.float32)[:, None]
        splits[split] = (x, np.asarray(ys))
        pids[split] = np.asarray(ids)
        plabels[split] = {k: 1 - v for k, v in lab.items()} if flip_test_labels and split == "test" else lab
    return PatientTensorDataModule(splits, pids, plabels, batch_size=32, eval_batch_size=256)


@pytest.fixture
def patient_dm() -> PatientTensorDataModule:
    return make_patient_dm()


@pytest.fixture
def patient_dm_factory():
    """``make_patient_dm`` itself, for tests that need several variants."""
    return make_patient_dm


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small networks on a shared 2-core machine: one intra-op thread avoids oversubscription stalls."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
