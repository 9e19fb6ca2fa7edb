"""The evaluation engine: ensembles against the loop, replay against the unroll, sharded and resumed job
lists against one process, the one full-data recipe in memory and streamed, and the checks on sets."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_sets import EVAL_GRID, small_distilled
from torch.nn.utils import parameters_to_vector
from torch.utils.data import Dataset

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.inner_loop import unroll_func
from gastrodistill.evaluation import report
from gastrodistill.evaluation.checks import DistilledSetMismatch, check_distilled_set
from gastrodistill.evaluation.ensemble import Ensemble, supports_ensemble, train_replays, train_small_sets
from gastrodistill.evaluation.fresh_training import (
    StandardSchedule,
    in_memory_batches,
    train_replay,
    train_small_set,
)
from gastrodistill.evaluation.full_data import RealRecipe, in_memory, train_full_data
from gastrodistill.evaluation.jobs import EvaluationConfigError, build_jobs, check_set_name, shard
from gastrodistill.evaluation.run import finalize, net_spec, run_evaluation, run_jobs
from gastrodistill.evaluation.scoring import predict_split, score_networks
from gastrodistill.evaluation.splits import build_context
from gastrodistill.evaluation.study import Study
from gastrodistill.models import ConvNet
from gastrodistill.utils.seeding import torch_generator

SMALL = [
    *EVAL_GRID,
    "eval.baselines.n_networks_full=1",
    "eval.baselines.real.epochs=1",
    "eval.lr_grid=[0.01]",
    "eval.standard.epochs=5",
    "eval.bootstrap=50",
    "eval.progress=false",
    "eval.patient.threshold_fallback=cv",  # 4 + 4 validation patients: knowingly cross-validated
    "eval.ensemble=true",  # exercise the torch.func path on the CPU too
]


DSA_NODE = {
    "_target_": "gastrodistill.distillation.augment.DSA",
    "flip": True,
    "rotate": 10.0,
    "translate": 0.1,
}


def _weights(nets) -> list[torch.Tensor]:
    return [parameters_to_vector(n.parameters()).detach() for n in nets]


def test_standard_schedule_is_sgd_with_momentum_decay_and_cosine_written_out():
    """``train_small_set`` against the recipe written by hand in float64: per epoch one permutation of the
    5 images from the generator, batches of 2 (3 per epoch, the last of 1), SGD with momentum 0.9 and
    weight decay 0.01 (PyTorch's: v = 0.9 v + g + wd w, w -= lr_t v), and the cosine rate
    lr_t = lr (1 + cos(pi t / T)) / 2 over T = 3 epochs x 3 batches = 9 steps, t = 0, ..., 8."""
    import math

    from gastrodistill.evaluation.fresh_training import small_set_steps

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1])
    net = torch.nn.Linear(3, 2).double()
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    schedule = StandardSchedule(epochs=3, lr=0.1, momentum=0.9, weight_decay=0.01, batch_size=2, cosine=True)
    assert small_set_steps(5, schedule) == (2, 9)
    train_small_set(net, x, y, schedule, torch.Generator().manual_seed(7))

    draws = torch.Generator().manual_seed(7)
    w, b = w0.clone(), b0.clone()
    vw, vb, t = torch.zeros_like(w), torch.zeros_like(b), 0
    for _ in range(3):
        order = torch.randperm(5, generator=draws)
        for start in range(0, 5, 2):
            idx = order[start : start + 2]
            p = torch.softmax(x[idx] @ w.T + b, 1)
            err = (p - torch.nn.functional.one_hot(y[idx], 2).double()) / len(idx)
            gw, gb = err.T @ x[idx] + 0.01 * w, err.sum(0) + 0.01 * b
            vw, vb = (gw, gb) if t == 0 else (0.9 * vw + gw, 0.9 * vb + gb)
            lr = 0.1 * (1 + math.cos(math.pi * t / 9)) / 2
            w, b, t = w - lr * vw, b - lr * vb, t + 1
    torch.testing.assert_close(net.weight.detach(), w, rtol=0, atol=1e-12)
    torch.testing.assert_close(net.bias.detach(), b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch", ["same", "lenet"])
def test_ensemble_equals_loop_for_the_same_seeds(compose_cfg, patient_dm, arch):
    """Standard schedule (mini-batches, DSA flips/rotations/shifts, SGD with momentum and weight decay)
    and replay: same weights and predictions. (Adam is not used: it turns the float noise of the
    exactly-zero gradient of a conv bias before instance norm into +-lr steps, in loop and ensemble alike.)"""
    cfg = compose_cfg(SMALL)
    spec = net_spec(cfg, arch, patient_dm)
    assert supports_ensemble(spec.build(torch_generator(0)), patient_dm.image_shape)
    sched = StandardSchedule(
        epochs=4, lr=0.01, optimizer="sgd", weight_decay=5e-4, batch_size=5, augment=DSA_NODE
    )
    sets = [patient_dm.sample_per_class(3, torch_generator(i, "set")) for i in range(3)]
    loop = [
        train_small_set(spec.build(torch_generator(i)), x, y, sched, torch_generator(i, "g"))
        for i, (x, y) in enumerate(sets)
    ]
    together = train_small_sets(
        [spec.build(torch_generator(i)) for i in range(3)],
        sets,
        sched,
        [torch_generator(i, "g") for i in range(3)],
    )
    for a, b in zip(_weights(loop), _weights(together), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(_weights(loop)[0], _weights(loop)[1])  # different seeds, different networks
    ctx = build_context(cfg, patient_dm)
    p_loop = predict_split(loop, ctx.test)
    p_ens = predict_split(Ensemble(together), ctx.test)
    np.testing.assert_allclose(p_loop, p_ens, rtol=1e-4, atol=1e-5)
    # replay
    ds = small_distilled(patient_dm)
    loop = [train_replay(spec.build(torch_generator(i)), ds) for i in range(3)]
    together = train_replays([spec.build(torch_generator(i)) for i in range(3)], ds)
    for a, b in zip(_weights(loop), _weights(together), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_mixed_standard_schedule_runs_the_forward_in_bfloat16_and_keeps_float32_weights(
    compose_cfg, patient_dm, monkeypatch
):
    """``precision: bf16-mixed``: the logits of every training step of the loop are bfloat16 and the
    weights stay float32; ``32-true`` stays float32; the ensemble refuses bf16 (autocast stops at vmap);
    an unknown precision is refused naming the allowed ones, by the schedule and, before anything is
    trained, by the job list."""
    cfg = compose_cfg(SMALL)
    spec = net_spec(cfg, "same", patient_dm)
    x, y = patient_dm.sample_per_class(3, torch_generator(0, "set"))
    seen: list[torch.dtype] = []
    cross_entropy = torch.nn.functional.cross_entropy

    def recording(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", recording)
    for precision, dtype in (("bf16-mixed", torch.bfloat16), ("32-true", torch.float32)):
        sched = StandardSchedule(epochs=2, lr=0.01, optimizer="sgd", precision=precision)
        seen.clear()
        net = spec.build(torch_generator(0))
        before = _weights([net])[0].clone()
        train_small_set(net, x, y, sched, torch_generator(0, "g"))
        assert seen and set(seen) == {dtype}, (precision, seen)
        assert all(p.dtype == torch.float32 for p in net.parameters())
        assert not torch.equal(before, _weights([net])[0])  # it trained
    # autocast does not reach inside vmap: the ensemble refuses bf16 and a study trains such a setting in
    # the loop, with the loop's weights
    bf16 = StandardSchedule(epochs=2, lr=0.01, optimizer="sgd", precision="bf16-mixed")
    with pytest.raises(ValueError, match="loop"):
        train_small_sets([spec.build(torch_generator(0))], [(x, y)], bf16, [torch_generator(0, "g")])
    with pytest.raises(ValueError, match="32-true"):
        StandardSchedule(precision="16-mixed")
    with pytest.raises(
        EvaluationConfigError, match=r"eval.standard: eval.standard.precision must be one of .*'fp8'"
    ):
        build_jobs(compose_cfg(SMALL + ["eval.standard.precision=fp8"]).eval, ["soft"])
    # the short names read as Lightning's, as distill.precision does
    assert StandardSchedule(precision="bf16").precision == "bf16-mixed"
    assert StandardSchedule(precision="32").precision == "32-true"
    # every field of the recipe is checked there, not only its precision
    with pytest.raises(EvaluationConfigError, match="eval.standard: .*epochs >= 1"):
        build_jobs(compose_cfg(SMALL + ["eval.standard.epochs=0"]).eval, ["soft"])
    with pytest.raises(EvaluationConfigError, match="eval.standard: .*optimizer 'lbfgs' unknown"):
        build_jobs(compose_cfg(SMALL + ["eval.standard.optimizer=lbfgs"]).eval, ["soft"])
    with pytest.raises(EvaluationConfigError, match="eval.standard: .*batch_size must be an integer >= 0"):
        build_jobs(compose_cfg(SMALL + ["eval.standard.batch_size=-3"]).eval, ["soft"])
    with pytest.raises(EvaluationConfigError, match="eval.standard: .*unexpected keyword argument 'epoch'"):
        build_jobs(compose_cfg(SMALL + ["+eval.standard.epoch=3"]).eval, ["soft"])


def test_the_job_list_refuses_out_of_range_eval_values_before_any_network_trains(compose_cfg):
    """Each value an evaluation reads, whether to train (the standard recipe, network counts) or only
    when scoring and summarising after every network trained (interval level and width, the threshold's
    split and rule, the device), is refused by ``build_jobs`` naming its key; values just inside the
    bounds pass."""
    # out-of-range values that trained anyway (a received card's recipe goes through the same class)
    for override, message in (
        ("eval.standard.momentum=50", r"momentum must be a number in \[0, 1\), got 50"),
        ("eval.standard.weight_decay=-5", "weight_decay must be a number >= 0, got -5"),
        ("eval.standard.lr=1e400", "needs a finite lr > 0"),
        ("eval.standard.cosine=no", "cosine must be true or false, got 'no'"),
        ("eval.standard.epochs=2.5", "needs an integer epochs >= 1"),
    ):
        with pytest.raises(EvaluationConfigError, match=f"eval.standard: .*{message}"):
            build_jobs(compose_cfg(SMALL + [override]).eval, ["soft"])
    # the number of networks: a word or a fraction is a message naming the key, not int()'s ValueError
    for bad in ("abc", "0", "2.5"):
        with pytest.raises(EvaluationConfigError, match="eval.n_networks must be an integer >= 1, got"):
            build_jobs(compose_cfg(SMALL + [f"eval.n_networks={bad}"]).eval, ["soft"])
    # the full-data baseline's count too: -1 used to give no full-data network, 0 silently n_networks,
    # 2.5 two networks and a word int()'s ValueError
    full_key = "eval.baselines.n_networks_full"
    for bad in ("abc", "0", "-1", "2.5"):
        with pytest.raises(EvaluationConfigError, match=f"{full_key} must be an integer >= 1"):
            build_jobs(compose_cfg(SMALL + [f"{full_key}={bad}"]).eval, ["soft"])

    def n_full(value: str) -> int:
        jobs = build_jobs(compose_cfg(SMALL + [f"{full_key}={value}"]).eval, ["soft"])
        return sum(j.method == "full" for j in jobs)

    assert n_full("null") == 2  # null: as many as eval.n_networks
    assert n_full("3") == 3
    # the other counts are refused before any network trains (eval.bootstrap was read after all of them)
    for key, bad in (
        ("bootstrap", "abc"),
        ("bootstrap", "-1"),
        ("batch_size", "0"),
        ("max_in_memory_mb", "1.5"),
        ("processes", "0"),
        ("num_threads", "two"),
    ):
        with pytest.raises(EvaluationConfigError, match=f"eval.{key} must be an integer >= "):
            build_jobs(compose_cfg(SMALL + [f"eval.{key}={bad}"]).eval, ["soft"])
    for ok in (
        "eval.bootstrap=0",
        "eval.processes=null",
        "eval.num_threads=null",
        "eval.max_in_memory_mb=0",
    ):
        build_jobs(compose_cfg(SMALL + [ok]).eval, ["soft"])  # no intervals, one process, streamed splits
    # values read only when scoring or summarising (after every network trained) are checked first too
    for override, message in (
        ("eval.ci_level=95", r"eval.ci_level must be a number in \(0, 1\)"),
        ("eval.ci_level=1", r"eval.ci_level must be a number in \(0, 1\)"),
        ("eval.ci_level=0", r"eval.ci_level must be a number in \(0, 1\)"),
        ("eval.max_ci_width=abc", "eval.max_ci_width must be a number > 0 or null"),
        ("eval.max_ci_width=0", "eval.max_ci_width must be a number > 0 or null"),
        ("eval.threshold_source=test", "eval.threshold_source = 'test'; use one of"),
        ("eval.ensemble=maybe", "eval.ensemble = 'maybe'; use auto, true or false"),
        ("eval.device=gpu", "eval.device = 'gpu'; use auto, cpu or cuda"),
        (
            "eval.patient.min_patients_per_class=abc",
            "eval.patient.min_patients_per_class must be an integer >= 0",
        ),
        ("eval.patient.cv_folds=2.5", "eval.patient.cv_folds must be an integer >= 2"),
    ):
        with pytest.raises(EvaluationConfigError, match=message):
            build_jobs(compose_cfg(SMALL + [override]).eval, ["soft"])
    if not torch.cuda.is_available():
        with pytest.raises(EvaluationConfigError, match="no CUDA device; use eval.device=auto or cpu"):
            build_jobs(compose_cfg(SMALL + ["eval.device=cuda:0"]).eval, ["soft"])
    for ok in (
        "eval.ci_level=0.999",
        "eval.max_ci_width=null",
        "eval.max_ci_width=0.001",
        "eval.ensemble=false",
        "eval.device=cpu",
        "eval.threshold_source=train",
    ):
        build_jobs(compose_cfg(SMALL + [ok]).eval, ["soft"])
    # the patient threshold's policy too (a typo in the rule stops the study before any network trains)
    with pytest.raises(EvaluationConfigError, match="eval.patient.threshold_rule = 'binormial'; use one of"):
        build_jobs(compose_cfg(SMALL + ["eval.patient.threshold_rule=binormial"]).eval, ["soft"])


@pytest.mark.parametrize("name", ["random", "full", "mean", "random_soft"])
def test_a_set_named_like_a_baseline_is_refused(compose_cfg, name):
    """A set called ``random`` and the random-subset baseline would share the job
    ``random__standard__same__0``: one network's record would stand for both rows."""
    ev = compose_cfg(SMALL).eval
    refusal = f"a distilled set is named '{name}', the name of a baseline"
    with pytest.raises(EvaluationConfigError, match=refusal):
        build_jobs(ev, ["soft", name])
    keys = [j.key for j in build_jobs(ev, ["soft", f"{name}_set"])]
    assert len(keys) == len(set(keys))


def test_set_names_that_differ_only_in_case_are_refused(compose_cfg):
    """`Soft` and `soft`, or `Random` and the random baseline, are one file on macOS and Windows."""
    ev = compose_cfg(SMALL).eval
    with pytest.raises(EvaluationConfigError, match="'soft' and 'Soft' differ only in case"):
        build_jobs(ev, ["soft", "Soft"])
    with pytest.raises(EvaluationConfigError, match="named 'Random', the name of a baseline"):
        build_jobs(ev, ["Random"])


def test_set_names_are_checked_as_file_names(compose_cfg):
    ev = compose_cfg(SMALL).eval
    for bad in ("../soft", "a/b", "", "-x", "a b"):
        with pytest.raises(EvaluationConfigError, match="cannot name files"):
            build_jobs(ev, [bad])
    for good in ("soft", "hard", "soft_site2", "soft.v2", "s-1", "2026"):
        assert check_set_name(good, "eval.distilled_dirs") == good


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_replayed_weights_equal_the_unrolls_final_weights(patient_dm, momentum):
    """train_replay (graph-free) and the ensemble replay land where the differentiable unroll lands
    (float64), with and without the set's inner momentum."""
    torch.set_default_dtype(torch.float64)
    try:
        ds = small_distilled(patient_dm).double()
        ds.inner_momentum = momentum
        net = ConvNet(1, 3, (12, 12), width=4, depth=2, init_seed=3).double()
        unrolled = unroll_func(net, ds, momentum=momentum)
        replayed = train_replay(copy.deepcopy(net), ds)
        for name, p in replayed.named_parameters():
            torch.testing.assert_close(p.detach(), unrolled[name].detach(), rtol=1e-10, atol=1e-12)
        # and the ensemble replay agrees too
        ens = train_replays([copy.deepcopy(net)], ds)[0]
        for name, p in ens.named_parameters():
            torch.testing.assert_close(p.detach(), unrolled[name].detach(), rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


SHIFT = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": True, "shift_px": 2}


def test_an_augmented_replay_is_the_unroll_with_the_same_draws_and_the_ensemble_agrees(patient_dm):
    """``eval.replay_augment``: a replay that draws each step's batch through DSA lands where the
    differentiable unroll with the same draws lands (float64), the ensemble replay lands there too, other
    networks draw other augmentations, and it differs from the plain replay."""
    from gastrodistill.distillation.augment import DSA
    from gastrodistill.evaluation.fresh_training import replay_seed_parts

    torch.set_default_dtype(torch.float64)
    try:
        ds = small_distilled(patient_dm).double()
        ds.inner_momentum = 0.5
        net = ConvNet(1, 3, (12, 12), width=4, depth=2, init_seed=3).double()
        dsa = DSA(flip=True, shift_px=2)
        parts = replay_seed_parts(torch_generator(9, "net"))
        unrolled = unroll_func(net, ds, momentum=0.5, augment=dsa, seed_parts=parts)
        replayed = train_replay(copy.deepcopy(net), ds, SHIFT, torch_generator(9, "net"))
        plain = train_replay(copy.deepcopy(net), ds)
        gens = [torch_generator(9, "net"), torch_generator(8, "net")]
        ens = train_replays([copy.deepcopy(net), copy.deepcopy(net)], ds, SHIFT, gens)
        for name, p in replayed.named_parameters():
            torch.testing.assert_close(p.detach(), unrolled[name].detach(), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(dict(ens[0].named_parameters())[name].detach(), p.detach())
        w = lambda m: parameters_to_vector(m.parameters()).detach()  # noqa: E731
        assert not torch.allclose(w(replayed), w(plain))
        assert not torch.allclose(w(ens[0]), w(ens[1]))  # one network, other draws: other weights
        with pytest.raises(ValueError, match="needs the network's generator"):
            train_replay(copy.deepcopy(net), ds, SHIFT)
        with pytest.raises(ValueError, match="one generator per network"):
            train_replays([copy.deepcopy(net)], ds, SHIFT)
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_study_replays_with_eval_replay_augment(compose_cfg, patient_dm):
    """The study's replay setting trains each job as ``train_replay`` with ``eval.replay_augment`` and the
    job's own generator (and as the plain replay without it)."""
    sets = {"soft": small_distilled(patient_dm)}
    for aug in (None, SHIFT):
        node = "{_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 2}"
        over = [] if aug is None else [f"eval.replay_augment={node}"]
        cfg = compose_cfg(SMALL + ["eval.architectures=[same]", "eval.schedules=[replay]", *over])
        study = Study(cfg, patient_dm, sets)
        jobs = [j for j in build_jobs(cfg.eval, list(sets)) if j.schedule == "replay"]
        nets, _ = study.train_setting(("soft", "replay", "same"), jobs)
        for job, got in zip(jobs, nets, strict=True):
            fresh, g = study.build(job)
            want = train_replay(fresh, sets["soft"], aug, g)
            for a, b in zip(got.parameters(), want.parameters(), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_scoring_in_one_pass_equals_network_by_network(compose_cfg, patient_dm):
    cfg = compose_cfg(SMALL + ["eval.threshold_source=train"])
    ctx = build_context(cfg, patient_dm)
    spec = net_spec(cfg, "same", patient_dm)
    ds = small_distilled(patient_dm)
    nets = [train_replay(spec.build(torch_generator(i)), ds) for i in range(3)]
    together = score_networks(Ensemble(nets), ctx)
    alone = [score_networks([n], ctx)[0] for n in nets]
    for a, b in zip(together, alone, strict=True):
        assert a["patch_accuracy"] == pytest.approx(b["patch_accuracy"])
        np.testing.assert_array_equal(a["test_decisions"], b["test_decisions"])
        assert a["threshold"] == pytest.approx(b["threshold"])


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["method", "schedule", "architecture"]).reset_index(drop=True)


def test_two_ranks_give_the_single_process_table_and_a_rerun_resumes(compose_cfg, patient_dm, tmp_path):
    cfg = compose_cfg(SMALL)
    sets = {"soft": small_distilled(patient_dm), "hard": small_distilled(patient_dm, "hard", 1)}
    single = run_evaluation(cfg, patient_dm, sets, tmp_path / "single", loggers=[])
    # two ranks simulated one after the other into one folder, then rank 0 merges
    jobs = build_jobs(cfg.eval, list(sets))
    assert sorted(shard(jobs, 0, 2) + shard(jobs, 1, 2)) == sorted(jobs)
    sharded = tmp_path / "sharded"
    run_jobs(cfg, patient_dm, sets, sharded, rank=1, world_size=2)
    with pytest.raises(FileNotFoundError, match="has no record"):
        finalize(cfg, patient_dm, sets, sharded)  # rank 0's jobs are missing
    run_jobs(cfg, patient_dm, sets, sharded, rank=0, world_size=2)
    merged = finalize(cfg, patient_dm, sets, sharded)
    a, b = _table(single), _table(merged)
    assert list(a.columns) == list(b.columns)
    num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    # Float rounding is not the same in the two runs: on an AVX-512/AMX host one network's patch probabilities
    # differed in the last bits (its record's patient scores, decisions and accuracies were equal to every
    # bit; the cause, likely which oneDNN kernels ran before in the process, was not pinned down). A patch
    # AUC counts the order of every pair of patches, so such a difference swaps nearly tied pairs: the
    # hard/replay patch AUC was 0.811678 against 0.811647. Patch AUC columns are compared to 1e-4, a few
    # swapped pairs; everything else to 1e-5.
    auc = [c for c in num if c.startswith("patch_auc")]
    rest = [c for c in num if c not in auc]
    np.testing.assert_allclose(a[rest].to_numpy(float), b[rest].to_numpy(float), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[auc].to_numpy(float), b[auc].to_numpy(float), rtol=0, atol=1e-4)
    # resume: finished jobs (records + networks.csv) are skipped; delete some and only those rerun
    done = report.finished_jobs(tmp_path / "single")
    assert done == {j.key for j in jobs}
    lost = [j for j in jobs if j.method == "soft" and j.schedule == "standard"]
    for j in lost:
        report.record_path(tmp_path / "single", j.key).unlink()
    (tmp_path / "single" / "networks.csv").unlink()  # interrupted before the end: only records remain
    trained: list[str] = []
    original = Study.run_setting

    def counting(self, setting, group):
        trained.extend(j.key for j in group)
        return original(self, setting, group)

    Study.run_setting = counting
    try:
        again = run_evaluation(cfg, patient_dm, sets, tmp_path / "single", loggers=[])
    finally:
        Study.run_setting = original
    assert sorted(trained) == sorted(j.key for j in lost)
    c = _table(again)
    np.testing.assert_allclose(a[num].to_numpy(float), c[num].to_numpy(float), rtol=1e-5, atol=1e-6)
    nets = pd.read_csv(tmp_path / "single" / "networks.csv")
    assert len(nets) == len(jobs) and set(nets.job) == {j.key for j in jobs}


class _Streamed(Dataset):
    """The same images as a map-style dataset read one by one (as a patch store streams them)."""

    def __init__(self, x, y) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i].clone(), int(self.y[i])


def test_streamed_and_in_memory_full_data_use_one_recipe(compose_cfg, patient_dm):
    cfg = compose_cfg(SMALL)
    spec = net_spec(cfg, "same", patient_dm)
    x, y = patient_dm.load_split("train")
    vx, vy = patient_dm.load_split("val")
    recipe = RealRecipe(epochs=2, lr=0.003, batch_size=16, balanced=True, augment=DSA_NODE)
    nets = []
    for data in (in_memory(x, y), _Streamed(x, y)):
        net, info = train_full_data(
            spec.build(torch_generator(5)), data, y.numpy(), in_memory(vx, vy), recipe, 3, (0, "full", 0)
        )
        nets.append(net)
    for a, b in zip(_weights(nets[:1]), _weights(nets[1:]), strict=True):
        torch.testing.assert_close(a, b)
    # another network index: another order and augmentation
    other, _ = train_full_data(
        spec.build(torch_generator(5)),
        in_memory(x, y),
        y.numpy(),
        in_memory(vx, vy),
        recipe,
        3,
        (0, "full", 1),
    )
    assert not torch.allclose(_weights([other])[0], _weights(nets[:1])[0])


def test_sets_from_other_data_are_refused_naming_what_differs(
    patient_dm, patient_dm_factory, compose_cfg, tmp_path
):
    ds = small_distilled(patient_dm)
    check_distilled_set("soft", ds, patient_dm)
    bad = copy.deepcopy(ds)
    bad.mean = [v + 0.1 for v in ds.mean]
    with pytest.raises(DistilledSetMismatch, match="normalisation mean") as info:
        check_distilled_set("soft", bad, patient_dm)
    assert "the data it was distilled from: paths.data_root (or data.root / data.path)" in str(info.value)
    other = patient_dm_factory(size=16)
    with pytest.raises(DistilledSetMismatch, match=r"image size: set \(12, 12\), data \(16, 16\)") as info:
        check_distilled_set("soft", ds, other)
    assert "to test it on another site's data, use gastrodistill-train-from-artifact" in str(info.value)
    renamed = copy.deepcopy(ds)
    renamed.class_names = ["a", "b", "c"]
    with pytest.raises(DistilledSetMismatch, match="class names"):
        check_distilled_set("soft", renamed, patient_dm)
    with pytest.raises(DistilledSetMismatch, match="normalisation mean"):
        run_evaluation(compose_cfg(SMALL), patient_dm, {"soft": bad}, tmp_path / "refused", loggers=[])
    assert not (tmp_path / "refused").exists()  # nothing written for a refused set
    # a set that records its data: refused on other data of the same shape, classes and normalisation
    # (a newcomer's set distilled at data.mask_threshold 0.5 was evaluated and audited at 0.3 unsaid)
    mine = copy.deepcopy(ds)
    mine.data_source_hash = patient_dm.source_hash()
    check_distilled_set("soft", mine, patient_dm)
    mine.data_source_hash = "0123456789ab" + patient_dm.source_hash()[12:]
    with pytest.raises(DistilledSetMismatch) as info:
        check_distilled_set("soft", mine, patient_dm)
    text = str(info.value)
    assert text.startswith("distilled set 'soft' does not match the data module: data: the set was distilled")
    assert (
        f"(data source hash 0123456789ab... in its distilled.json, {patient_dm.source_hash()[:12]}... here"
        in text
    )
    assert "compare the packages in the two runs' run_info.json)" in text  # the same files elsewhere


def test_unknown_positive_class_is_an_error_with_patients(compose_cfg, patient_dm):
    with pytest.raises(ValueError, match="positive_class = 'gastritiss'"):
        build_context(compose_cfg(SMALL + ["eval.patient.positive_class=gastritiss"]), patient_dm)


_RANK_SCRIPT = """
import importlib.util, os, sys
import torch.distributed as dist
from omegaconf import OmegaConf
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # conftest imports _eval_sets from its folder
spec = importlib.util.spec_from_file_location("c", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
import torch
torch.set_num_threads(1)
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.evaluation.run import run_evaluation
cfg = OmegaConf.load(sys.argv[2])
dm = mod.make_patient_dm()
sets = {"soft": DistilledSet.load(sys.argv[3])}
dist.init_process_group("gloo")
run_evaluation(cfg, dm, sets, sys.argv[4], loggers=[], rank=dist.get_rank(),
               world_size=dist.get_world_size(), barrier=dist.barrier)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_a_two_process_gloo_run_gives_the_single_process_table(compose_cfg, patient_dm, tmp_path):
    """Two real processes (gloo), each its share of the jobs, rank 0 merging after the barrier."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from omegaconf import OmegaConf

    cfg = compose_cfg(SMALL + ["eval.architectures=[same]"])
    soft = small_distilled(patient_dm)
    single = run_evaluation(cfg, patient_dm, {"soft": soft}, tmp_path / "single", loggers=[])
    soft.save(tmp_path / "soft")
    OmegaConf.save(cfg, tmp_path / "cfg.yaml", resolve=False)
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conftest = Path(__file__).with_name("conftest.py")
    procs = []
    for rank in range(2):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
        env["OMP_NUM_THREADS"] = "1"
        args = [sys.executable, str(script), str(conftest), str(tmp_path / "cfg.yaml")]
        args += [str(tmp_path / "soft"), str(tmp_path / "ddp")]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out.decode()[-3000:]
    merged = pd.read_csv(tmp_path / "ddp" / "results.csv")
    a, b = _table(single), _table(merged)
    num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-5, atol=1e-6)
    methods = {r.split("__")[0] for r in pd.read_csv(tmp_path / "ddp" / "networks.csv").job}
    assert methods == set(single.method)


def test_optimiser_from_a_target_node_and_architecture_from_the_model_group(compose_cfg, patient_dm):
    from gastrodistill.evaluation.fresh_training import make_optimizer
    from gastrodistill.evaluation.networks import architecture_config

    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = make_optimizer(params, {"_target_": "torch.optim.AdamW", "betas": [0.8, 0.99]}, 0.01, 0.9, 1e-4)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.8, 0.99)
    assert opt.defaults["lr"] == 0.01 and opt.defaults["weight_decay"] == 1e-4
    sgd = make_optimizer(params, "sgd", 0.1, momentum=0.5)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.5
    with pytest.raises(ValueError, match="unknown"):
        make_optimizer(params, "lbfgs", 0.1)
    cfg = compose_cfg(SMALL)
    lenet = architecture_config(cfg, "lenet")
    assert lenet._target_ == "gastrodistill.models.LeNet"
    # `same` is the architecture the set records, not the current config's model
    recorded = {"_target_": "gastrodistill.models.LeNet", "act": "relu"}
    spec = net_spec(cfg, "same", patient_dm, recorded)
    assert spec.name == "lenet" and cfg.model._target_.endswith("ConvNet")


def test_a_saved_set_records_its_architecture_and_the_card_describes_the_set(
    patient_dm, tmp_path, compose_cfg
):
    from gastrodistill.sharing.publish import card_fields_from_config

    ds = small_distilled(patient_dm)
    ds.model_config = {"_target_": "gastrodistill.models.LeNet", "_partial_": True, "act": "relu"}
    ds.save(tmp_path / "s")
    back = DistilledSet.load(tmp_path / "s")
    assert back.model_config == ds.model_config and back.mean == ds.mean
    cfg = compose_cfg(SMALL)  # its model is a ConvNet
    fields = card_fields_from_config(cfg, patient_dm, "soft", distilled=back)
    assert fields["architecture"]["_target_"] == "gastrodistill.models.LeNet"
    assert fields["mean"] == pytest.approx(back.mean) and fields["std"] == pytest.approx(back.std)
    assert fields["training_recipe"]["replay"].startswith("steps x epochs plain SGD steps")
    back.inner_momentum = 0.9  # a set distilled with inner momentum is replayed with it (Deng & Russakovsky)
    recipe = card_fields_from_config(cfg, patient_dm, "soft", distilled=back)["training_recipe"]
    assert "SGD steps with momentum 0.9," in recipe["replay"]


def test_the_card_carries_the_standard_lr_the_evaluation_chose(patient_dm, tmp_path, compose_cfg):
    """The artifact's recipe holds the lr chosen for the set on its own architecture (selection.json),
    not ``eval.standard.lr``, so a receiving site trains as the card's numbers were made."""
    import json

    from gastrodistill.evaluation.results import chosen_standard_lr
    from gastrodistill.sharing.publish import card_fields_from_config

    (tmp_path / "selection.json").write_text(
        json.dumps({"standard_lr": {"soft/convnet": 0.05, "soft/lenet": 0.003, "hard/convnet": 0.01}})
    )
    df = pd.DataFrame(
        {
            "method": ["soft", "soft", "hard"],
            "schedule": ["standard"] * 3,
            "architecture": ["lenet", "convnet", "convnet"],
            "cross_architecture": [True, False, False],
        }
    )
    assert chosen_standard_lr(df, tmp_path, "soft") == 0.05  # its own architecture, not the first row
    assert chosen_standard_lr(df, tmp_path, "mean") is None
    assert chosen_standard_lr(df, tmp_path / "missing", "soft") is None
    cfg = compose_cfg(SMALL)
    assert float(cfg.eval.standard.lr) != 0.05
    recipe = card_fields_from_config(cfg, patient_dm, "soft", standard_lr=0.05)["training_recipe"]
    assert StandardSchedule(**recipe["standard"]).lr == 0.05 and "validation" in recipe["standard_lr_source"]
    plain = card_fields_from_config(cfg, patient_dm, "soft")["training_recipe"]
    assert plain["standard"]["lr"] == float(cfg.eval.standard.lr) and "standard_lr_source" not in plain


def test_worker_processes_give_the_single_process_table_and_train_the_teacher_once(
    compose_cfg, patient_dm, tmp_path
):
    """``eval.processes=2``: settings in two spawned workers, the same records as one process; the
    ``random_soft`` teacher is the reference network (job ``full__real__same__0``), with or without the
    full-data row."""
    grid = ["eval.lr_grid=[0.01,0.05]"]  # the lr chosen on network 0 inside each worker's task
    cfg = compose_cfg(SMALL + ["eval.architectures=[same]", "eval.schedules=[replay]"] + grid)
    sets = {"soft": small_distilled(patient_dm)}
    single = run_evaluation(cfg, patient_dm, sets, tmp_path / "single", loggers=[])
    trained: list[str] = []
    original = Study.train_full

    def counting(self, net, seed_parts):
        trained.append("/".join(map(str, seed_parts)))
        return original(self, net, seed_parts)

    Study.train_full = counting  # the parent trains nothing: every full-data network is a worker's
    try:
        state: dict = {}
        two = run_evaluation(
            compose_cfg(
                SMALL + ["eval.architectures=[same]", "eval.schedules=[replay]", "eval.processes=2"] + grid
            ),
            patient_dm,
            sets,
            tmp_path / "two",
            loggers=[],
            state=state,
        )
    finally:
        Study.train_full = original
    assert trained == []
    a, b = _table(single), _table(two)
    num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-5, atol=1e-6)
    # the audit's reference network is the saved full-data network 0, equal to the single run's
    ref = state["real_model"]
    single_ref = Study(cfg, patient_dm, sets, tmp_path / "single", progress=False).reference()
    for p, q in zip(ref.parameters(), single_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    # without the full-data row (in two workers) the teacher is still job full__real__same__0's network
    no_full = compose_cfg(
        SMALL
        + ["eval.architectures=[same]", "eval.schedules=[replay]", "eval.baselines.methods=[random_soft]"]
        + ["eval.processes=2"]  # no task holds the reference job: one worker trains the reference alone first
        + grid
    )
    alone = _table(run_evaluation(no_full, patient_dm, sets, tmp_path / "alone", loggers=[]))
    cols = [c for c in num if c in alone.columns and not c.startswith("vs_")]
    assert "patient_hm_mean" in cols

    def row(df: pd.DataFrame) -> np.ndarray:
        return df[df.method == "random_soft"][cols].to_numpy(float)

    np.testing.assert_allclose(row(a), row(alone), rtol=1e-5, atol=1e-6)


def test_worker_tasks_are_longest_first_with_each_full_data_network_alone(compose_cfg):
    from gastrodistill.evaluation.processes import needs_teacher, tasks_of

    cfg = compose_cfg(SMALL + ["eval.baselines.n_networks_full=2"])
    jobs = build_jobs(cfg.eval, ["soft"])
    tasks = tasks_of(jobs)
    assert sorted(j for _, group in tasks for j in group) == sorted(jobs)  # every job exactly once
    kinds = [(s[1], s[2]) for s, _ in tasks]
    assert kinds[:2] == [("real", "same"), ("real", "same")]  # two full-data networks, one task each
    assert [len(g) for s, g in tasks if s[1] == "real"] == [1, 1]
    tiers = [
        0 if k[0] == "real" else 1 if k == ("standard", "same") else 2 if k[0] == "standard" else 3
        for k in kinds
    ]
    assert tiers == sorted(tiers)
    assert [s for s, _ in tasks if needs_teacher(s)] == [("random_soft", "standard", "same")]
    assert all(len(g) > 1 for s, g in tasks if s[1] == "replay")  # whole settings by default
    split = tasks_of(jobs, split_replays=True)  # networks trained one by one: each replay its own task
    assert sorted(j for _, group in split for j in group) == sorted(jobs)
    replays = [g for s, g in split if s[1] == "replay"]
    assert replays and all(len(g) == 1 for g in replays)
    assert len(replays) == sum(1 for j in jobs if j.schedule == "replay")
    assert [g for s, g in split if s[1] != "replay"] == [g for s, g in tasks if s[1] != "replay"]
    assert [s[1] for s, _ in split][-len(replays) :] == ["replay"] * len(replays)  # still last


def test_the_network_that_chose_the_learning_rate_is_network_0(compose_cfg, patient_dm):
    """The lr grid is tried on job 0's own seeds and set; the winner is kept as job 0's network, equal to
    a network trained from scratch at that lr, and networks 1.. train at the chosen lr."""
    from gastrodistill.evaluation.fresh_training import standard_schedule
    from gastrodistill.evaluation.jobs import Job

    cfg = compose_cfg(
        SMALL + ["eval.lr_grid=[0.01,0.05]", "eval.ensemble=false", "+eval.baselines.n_per_class=3"]
    )
    study = Study(cfg, patient_dm, {}, None, progress=False)
    jobs = [Job("random", "standard", "same", i) for i in range(2)]
    nets, extra = study.train_setting(("random", "standard", "same"), jobs)
    chosen = study.selected["random/same/standard_lr"]
    assert extra["lr"] == chosen["chosen"] and chosen["selected_with"] == jobs[0].key
    for job, net in zip(jobs, nets, strict=True):
        again, g = study.build(job)
        x, y = study.small_set("random", job.index)
        again = train_small_set(again, x, y, standard_schedule(cfg.eval, extra["lr"]), g)
        for a, b in zip(_weights([net]), _weights([again]), strict=True):
            torch.testing.assert_close(a, b)


def test_a_bf16_setting_with_ensembles_on_trains_in_the_loop(compose_cfg, patient_dm):
    """``eval.ensemble=true`` with ``eval.standard.precision=bf16-mixed``: the setting trains network by
    network (the ensemble cannot autocast), each network equal to the loop's at that precision."""
    from gastrodistill.evaluation.fresh_training import standard_schedule
    from gastrodistill.evaluation.jobs import Job

    cfg = compose_cfg(SMALL + ["eval.standard.precision=bf16-mixed", "+eval.baselines.n_per_class=3"])
    study = Study(cfg, patient_dm, {}, None, progress=False)
    assert study.ensemble_ok(study.spec("same"), 3)
    jobs = [Job("random", "standard", "same", i) for i in range(3)]
    nets, _ = study.train_setting(("random", "standard", "same"), jobs)
    for job, net in zip(jobs, nets, strict=True):
        again, g = study.build(job)
        x, y = study.small_set("random", job.index)
        again = train_small_set(again, x, y, standard_schedule(cfg.eval), g)
        torch.testing.assert_close(_weights([net])[0], _weights([again])[0])


def test_channels_last_scoring_equals_contiguous_and_returns_the_networks_unchanged(compose_cfg, patient_dm):
    cfg = compose_cfg(SMALL)
    ctx = build_context(cfg, patient_dm)
    spec = net_spec(cfg, "same", patient_dm)
    nets = [spec.build(torch_generator(0, "cl", k)) for k in range(2)]
    before = _weights(nets)
    plain = predict_split(nets, ctx.test)
    fast = predict_split(nets, ctx.test, channels_last=True)
    np.testing.assert_allclose(plain, fast, rtol=1e-4, atol=1e-5)
    for n in nets:  # handed back in the default layout, with the same values
        assert all(p.is_contiguous() for p in n.parameters())
    for a, b in zip(before, _weights(nets), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_autocast_scoring_runs_in_bfloat16_and_stays_close_to_float32(compose_cfg, patient_dm):
    """``eval.score_autocast`` on the CPU: every conv output is bfloat16 (float32 without it), the
    probabilities stay float32 and within bfloat16 rounding of the float32 ones, the weights unchanged."""
    cfg = compose_cfg(SMALL)
    ctx = build_context(cfg, patient_dm)
    spec = net_spec(cfg, "same", patient_dm)
    nets = [spec.build(torch_generator(0, "amp", k)) for k in range(2)]
    before = _weights(nets)
    seen: list[torch.dtype] = []
    convs = [m for n in nets for m in n.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype)) for m in convs]
    plain = predict_split(nets, ctx.test)
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    fast = predict_split(nets, ctx.test, autocast=True, channels_last=True)
    assert seen and set(seen) == {torch.bfloat16}
    for h in hooks:
        h.remove()
    assert fast.dtype == np.float32
    np.testing.assert_allclose(plain, fast, atol=3e-2)
    assert np.abs(plain - fast).max() > 0  # it did round
    for a, b in zip(before, _weights(nets), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_teacher_tasks_wait_for_one_reference_network(compose_cfg):
    """Without a task that trains job full__real__same__0 (no full-data row, or finished earlier) and
    without its file, one task trains the reference alone first; with the file, teachers start at once."""
    from gastrodistill.evaluation.processes import plan

    no_full = compose_cfg(
        SMALL + ["eval.baselines.methods=[random_soft]", "eval.baselines.architectures=[same,lenet]"]
    )
    jobs = build_jobs(no_full.eval, [])
    tasks, ready = plan(jobs, reference_done=False)
    assert not ready and tasks[0] == (("full", "real", "same"), ())
    assert sum(1 for _, g in tasks if not g) == 1 and len(tasks) == 3
    tasks, ready = plan(jobs, reference_done=True)
    assert ready and all(g for _, g in tasks)
    with_full = build_jobs(compose_cfg(SMALL).eval, ["soft"])
    tasks, ready = plan(with_full, reference_done=False)
    assert not ready and all(g for _, g in tasks)  # the full-data task trains it; teachers wait for it


@pytest.mark.parametrize("where", ["every_step", "last_step"])
@pytest.mark.parametrize("ensemble", [True, False])
def test_a_network_that_diverges_is_scored_as_learning_nothing_and_the_study_goes_on(
    compose_cfg, patient_dm, tmp_path, ensemble, where
):
    """A replayed schedule far too steep (lr 1e30) makes every replay's loss non-finite. The study does not
    stop: those networks become networks that learned nothing (all parameters 0: logits 0, uniform
    probabilities, as an independent forward shows), their records say ``diverged``, the table counts them
    and names the row under it, and the other rows train as usual. With ensembles the setting is retrained
    network by network. ``last_step``: every loss is finite and only the last update overflows (an infinite
    last rate), which the loss check alone cannot see: the weights are checked after training."""
    from gastrodistill.evaluation.fresh_training import learned_nothing

    cfg = compose_cfg(
        [
            *SMALL,
            "eval.architectures=[same]",
            "eval.schedules=[replay]",
            "eval.baselines.methods=[random]",
            f"eval.ensemble={str(ensemble).lower()}",
        ]
    )
    steep = small_distilled(patient_dm)
    with torch.no_grad():
        if where == "every_step":
            steep.raw_lrs.fill_(1e30)  # softplus(1e30) = 1e30: the weights overflow after a step
        else:
            steep.raw_lrs[-1] = float("inf")  # losses all finite; the last update leaves inf/nan weights
    df = run_evaluation(cfg, patient_dm, {"soft": steep}, tmp_path / "run", loggers=[])
    soft = df[(df["method"] == "soft") & (df["schedule"] == "replay")].iloc[0]
    rand = df[df["method"] == "random"].iloc[0]
    assert int(soft["n_diverged"]) == 2 and int(rand["n_diverged"]) == 0
    recs = [report.load_record(p) for p in sorted((tmp_path / "run").rglob("*.npz"))]
    assert {r["method"] for r in recs} == {"soft", "random"}
    assert not any(r.get("diverged") for r in recs if r["method"] == "random")
    recs = [r for r in recs if r["method"] == "soft"]
    assert len(recs) == 2 and all(r.get("diverged") is True for r in recs)
    text = (tmp_path / "run" / "results.md").read_text()
    assert "Diverged (training loss not finite" in text and "soft/replay/convnet 2 of 2" in text
    # what "learned nothing" means, checked by a forward pass of its own
    net = learned_nothing(net_spec(cfg, "same", patient_dm, None).build(torch_generator(3)))
    x, _ = patient_dm.load_split("test")
    probs = torch.softmax(net(x[:8]), 1)
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / patient_dm.num_classes), rtol=0, atol=0)
    assert np.isfinite(float(rand["patch_accuracy_mean"])) and np.isfinite(float(soft["patch_accuracy_mean"]))


def test_a_standard_lr_the_grid_overrides_is_named_in_a_warning(compose_cfg, caplog):
    """The standard schedule's rate comes from ``eval.lr_grid`` whenever the grid is set (chosen on
    validation when it holds several); an ``eval.standard.lr`` outside it is never used, so the job list
    says so, and stays silent when the rate is one of the grid's or the grid is empty."""
    import logging

    with caplog.at_level(logging.WARNING, logger="gastrodistill.evaluation.jobs"):
        build_jobs(compose_cfg([*SMALL, "eval.lr_grid=[0.01,0.03]", "eval.standard.lr=0.5"]).eval, ["soft"])
    assert any("eval.standard.lr=0.5 is not used" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gastrodistill.evaluation.jobs"):
        build_jobs(compose_cfg([*SMALL, "eval.lr_grid=[0.01,0.03]", "eval.standard.lr=0.03"]).eval, ["soft"])
        build_jobs(compose_cfg([*SMALL, "eval.lr_grid=[]", "eval.standard.lr=0.5"]).eval, ["soft"])
    assert not [r for r in caplog.records if "is not used" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="gastrodistill.evaluation.jobs"):
        build_jobs(compose_cfg([*SMALL, "eval.lr_grid=[0.01]", "eval.standard.lr=0.5"]).eval, ["soft"])
    assert any("eval.standard.lr=0.5 is not used" in r.getMessage() for r in caplog.records)


def test_a_resumed_evaluation_refuses_a_second_name_for_a_finished_network(compose_cfg, patient_dm, tmp_path):
    """Records of `same` (a ConvNet set) are finished; asking again with `convnet` added used to train only
    the new jobs and merge both ConvNets into one row. Every job, done or not, is now checked."""
    base = [*SMALL, "eval.schedules=[replay]", "eval.baselines.methods=[]", "eval.n_networks=1"]
    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    run_jobs(compose_cfg([*base, "eval.architectures=[same]"]), patient_dm, sets, out)
    assert report.finished_jobs(out)
    with pytest.raises(ValueError, match="'same' and 'convnet' are both convnet"):
        run_jobs(compose_cfg([*base, "eval.architectures=[same,convnet]"]), patient_dm, sets, out)


def test_an_architecture_listed_twice_is_refused(compose_cfg) -> None:
    from gastrodistill.evaluation.jobs import EvaluationConfigError, validate

    with pytest.raises(EvaluationConfigError, match="eval.architectures lists 'lenet' more than once"):
        validate(compose_cfg([*SMALL, "eval.architectures=[same,lenet,lenet]"]).eval)
    with pytest.raises(EvaluationConfigError, match="eval.baselines.architectures lists 'same' more"):
        validate(compose_cfg([*SMALL, "eval.baselines.architectures=[same,same]"]).eval)


def test_baselines_without_a_set_or_a_subset_size_are_refused_before_anything_trains(
    compose_cfg, patient_dm, tmp_path
):
    """No distilled set and no ``eval.baselines.n_per_class``: the random subsets have no size. That used
    to be found after the full-data network had trained (and written its record and reference); now the
    job check refuses it first, and nothing is in the output folder but what run_jobs creates."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    out = tmp_path / "eval"
    cfg = compose_cfg([*SMALL, "eval.baselines.methods=[full,random]", "eval.architectures=[same]"])
    with pytest.raises(EvaluationConfigError, match="eval.baselines.n_per_class is needed"):
        run_jobs(cfg, patient_dm, {}, out)
    assert not report.finished_jobs(out)
    assert not (out / Study.REFERENCE_FILE).exists()
    ok = compose_cfg([*SMALL, "eval.baselines.methods=[full]", "eval.architectures=[same]"])
    run_jobs(ok, patient_dm, {}, out)  # the full-data baseline alone needs no subset size
    assert report.finished_jobs(out)


def test_the_class_means_need_no_subset_size(compose_cfg, patient_dm, tmp_path):
    """`mean` alone (no set, no n_per_class) used to stop at its first setting asking for the random
    subsets' size, after the full-data network had trained."""
    cfg = compose_cfg([*SMALL, "eval.baselines.methods=[mean]", "eval.architectures=[same]"])
    run_jobs(cfg, patient_dm, {}, tmp_path / "eval")
    assert report.finished_jobs(tmp_path / "eval") == {"mean__standard__same__0", "mean__standard__same__1"}


@pytest.mark.parametrize("value", ["-1", "0", "2.5", "abc", "true"])
def test_a_subset_size_that_is_not_a_positive_integer_is_refused(compose_cfg, value):
    """n_per_class=-1 trained on all but one patch per class (randperm(...)[:-1]); 0 divided by zero."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError, validate

    with pytest.raises(EvaluationConfigError, match="eval.baselines.n_per_class must be an integer >= 1"):
        validate(compose_cfg([*SMALL, f"eval.baselines.n_per_class={value}"]).eval)
    validate(compose_cfg([*SMALL, "eval.baselines.n_per_class=3"]).eval)


def test_nothing_to_evaluate_is_refused_with_what_to_give(compose_cfg, patient_dm, tmp_path):
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    with pytest.raises(EvaluationConfigError, match="nothing to evaluate"):
        run_jobs(compose_cfg([*SMALL, "eval.baselines.methods=[]"]), patient_dm, {}, tmp_path / "eval")


def test_networks_train_with_the_workers_thread_count_also_when_the_last_job_runs_here(
    compose_cfg, patient_dm, tmp_path, monkeypatch
):
    """``eval.processes=2`` with one job left runs it in this process, with the workers' one thread (the
    same network a worker would train), restores the caller's count after, and the evaluation records it
    in ``run_info.json``; ``eval.num_threads`` overrides both, and one process keeps the caller's count."""
    import json

    import gastrodistill.evaluation.run as run_module
    from gastrodistill.evaluation.run import training_threads

    seen: list[int] = []
    monkeypatch.setattr(Study, "run", lambda self, jobs: seen.append(torch.get_num_threads()))
    one_job = SMALL + ["eval.n_networks=1", "eval.architectures=[same]", "eval.schedules=[replay]"]
    one_job += ["eval.baselines.methods=[]"]
    sets = {"soft": small_distilled(patient_dm)}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = compose_cfg(one_job + ["eval.processes=2"])
        run_jobs(cfg, patient_dm, sets, tmp_path / "two")
        assert seen == [1] and torch.get_num_threads() == 2
        assert training_threads(compose_cfg(one_job + ["eval.processes=2", "eval.num_threads=3"])) == 3
        assert training_threads(compose_cfg(one_job)) == 2  # one process: the caller's count
        assert training_threads(cfg, world_size=2) == 2  # ranks do not spawn workers

        # the evaluation's own run_info (written with its table; no network trained, no table made here)
        monkeypatch.setattr(run_module, "run_jobs", lambda *args: args[-1])
        monkeypatch.setattr(run_module, "finalize", lambda *args: None)
        run_evaluation(cfg, patient_dm, sets, tmp_path / "eval", loggers=[])
        info = json.loads((tmp_path / "eval" / "run_info.json").read_text())
        assert info["training_threads"] == 1 and info["compute"]["torch_num_threads"] == 2
    finally:
        torch.set_num_threads(before)


def test_a_misspelt_irrelevant_class_is_refused_and_an_absent_one_is_no_class():
    """``eval.patient.irrelevant_class=irrelevent`` used to be read as null without a word (every patch,
    background included, counted in the patient score); the default may name no class of other data."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError
    from gastrodistill.evaluation.splits import class_index

    names = ["irrelevant", "non-gastritis", "gastritis"]
    assert class_index(names, "irrelevant", "irrelevant_class", required=False) == 0
    with pytest.raises(EvaluationConfigError, match="did you mean 'irrelevant'"):
        class_index(names, "irrelevent", "irrelevant_class", required=False)
    assert class_index(["normal", "pneumonia"], "irrelevant", "irrelevant_class", required=False) is None


def test_worker_processes_train_a_model_of_the_users_own_config_folder(patient_dm, tmp_path):
    """A model config outside the bundled folder (``-cd myconf``, here the whole primary folder) reaches
    the spawned evaluation workers: the parent composes it, the workers, which have no Hydra, receive it."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli import CONF_DIR

    conf = tmp_path / "myconf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "model" / "boom.yaml").write_text("defaults:\n  - lenet\n  - _self_\nact: tanh\n")
    sets = {"soft": small_distilled(patient_dm)}
    overrides = [
        *SMALL,
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path}/out",
        "logger=csv",
        "eval.architectures=[same,boom]",
        "eval.schedules=[replay]",
        "eval.baselines.methods=[random]",
        "eval.processes=2",
    ]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
            df = run_evaluation(cfg, patient_dm, sets, tmp_path / "two", loggers=[])
    finally:
        GlobalHydra.instance().clear()
    boom = df[df.architecture == "lenet"]  # rows are named by the network class (boom is a LeNet)
    assert len(boom) == 1 and np.isfinite(boom["patch_accuracy_mean"].to_numpy(float)).all()


def test_a_stopped_evaluation_says_what_is_kept_and_how_to_go_on(
    patient_dm, compose_cfg, tmp_path, monkeypatch, capsys
):
    """Ctrl-C in a standalone evaluation left records and a partial networks.csv without a word on how to
    finish it; the note counts the finished networks (their records) and names the folder to run in."""
    import gastrodistill.evaluation.run as run_module

    def stopped_after_two(cfg, dm, sets, out, rank, world_size, study):
        (out / "records").mkdir()
        for key in ("full__real__same__0", "full__real__same__1"):
            (out / "records" / f"{key}.npz").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "run_jobs", stopped_after_two)
    ds = small_distilled(patient_dm)
    for out in (tmp_path / "standalone", tmp_path / "study" / "eval"):
        with pytest.raises(KeyboardInterrupt):
            run_evaluation(compose_cfg(SMALL), patient_dm, {"soft": ds}, out, loggers=[])
        run = out.parent if out.name == "eval" else out
        command = (  # the run record of a reproduce run names its stages: those from evaluate on
            f"gastrodistill-reproduce <its overrides> 'stages=[evaluate]' hydra.run.dir={run}"
            if out.name == "eval"
            else f"gastrodistill-evaluate <its overrides> hydra.run.dir={run}"
        )
        assert capsys.readouterr().err == (
            f"note: 2 network(s) of this evaluation finished and are kept in {out / 'records'}: {command} "
            "trains only the others\n"
        )


def test_image_level_records_keep_the_probabilities_the_point_auc_uses(compose_cfg):
    """Records of data without patients stored float16 probabilities: a confident network's scores rounded
    to exactly 1 and tied, so the bootstrap intervals and paired differences (computed from the records)
    disagreed with the point AUC (from full precision): "AUC 0.750 [0.500, 0.500]" (a breaker's finding)."""
    from gastrodistill.data.base import TensorImageDataModule
    from gastrodistill.evaluation.metrics import statistic_rows
    from gastrodistill.evaluation.results import _arrays
    from gastrodistill.evaluation.scoring import record_from_probs

    rng = np.random.default_rng(0)
    splits = {
        s: (rng.random((n, 1, 8, 8), dtype=np.float32), np.arange(n) % 3)
        for s, n in (("train", 30), ("val", 12), ("test", 30))
    }
    dm = TensorImageDataModule(splits=splits, class_names=["a", "b", "c"])
    dm.setup("fit")
    cfg = compose_cfg(["experiment=tiny"])
    ctx = build_context(cfg, dm)
    labels = ctx.test.labels
    n = len(labels)
    # confident and right in rank: the true class scores 1 - 1e-5 * rank, distinct in float32 only
    margin = 1e-5 * (1 + np.arange(n, dtype=np.float32))
    probs = np.full((n, 3), 0.0, dtype=np.float32)
    probs[np.arange(n), labels] = 1.0 - margin
    probs[np.arange(n), (labels + 1) % 3] = margin
    rec = record_from_probs(ctx, probs, np.zeros(len(ctx.val.labels), dtype=np.int64), None)
    np.testing.assert_array_equal(np.asarray(rec["image_probs"]), probs)
    whole = statistic_rows("image_auc", _arrays(rec), np.arange(n)[None])
    assert whole[0] == pytest.approx(rec["patch_auc"], abs=1e-9)


def test_a_failing_evaluation_ends_its_wandb_run_with_exit_code_1(
    compose_cfg, patient_dm, tmp_path, monkeypatch
):
    """A sweep's broken evaluation was recorded in W&B as finished (exit code 0)."""
    from _wandb_run_file import exit_codes

    from gastrodistill.evaluation import run as evaluation_run

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))

    def broken(*args, **kwargs):
        raise RuntimeError("the results table broke")

    monkeypatch.setattr(evaluation_run, "finalize", broken)
    cfg = compose_cfg(
        [*SMALL, "eval.architectures=[same]", "eval.baselines.methods=[random]", "logger=default"]
    )
    with pytest.raises(RuntimeError, match="the results table broke"):
        run_evaluation(cfg, patient_dm, {"soft": small_distilled(patient_dm)}, tmp_path / "eval")
    (run_file,) = (tmp_path / "out" / "logs").rglob("*.wandb")
    assert exit_codes(run_file) == [1]


def test_an_sgd_node_keeps_its_own_momentum_and_a_short_name_gets_the_recipes():
    """``make_optimizer``: SGD gets the recipe's momentum *unless the node sets it*; lr and weight decay
    always come from the recipe, and the node's other kwargs pass through."""
    from gastrodistill.evaluation.fresh_training import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    node = {"_target_": "torch.optim.SGD", "momentum": 0.5, "nesterov": True}
    group = make_optimizer(params, node, 0.1, momentum=0.9, weight_decay=0.01).param_groups[0]
    assert (group["momentum"], group["nesterov"], group["lr"], group["weight_decay"]) == (
        0.5,
        True,
        0.1,
        0.01,
    )
    group = make_optimizer(params, "sgd", 0.2, momentum=0.9, weight_decay=0.0).param_groups[0]
    assert (group["momentum"], group["lr"]) == (0.9, 0.2)


@pytest.mark.parametrize("batch_size", [0, 2])
def test_the_standard_schedule_augments_every_batch_with_the_networks_own_draws(batch_size):
    """``augment``: every batch goes through the DSA node with the network's generator, after the epoch's
    permutation (drawn only when batches are smaller than the set: a full batch is the set in order).
    Against plain SGD written out over ``DSA(...)(x[idx], generator)``; an unaugmented run lands elsewhere."""
    from gastrodistill.distillation.augment import DSA

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 6, 6, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    ref, plain = copy.deepcopy(net), copy.deepcopy(net)
    kw = dict(epochs=2, lr=0.1, momentum=0.0, batch_size=batch_size, cosine=False)
    train_small_set(net, x, y, StandardSchedule(**kw, augment=SHIFT), torch.Generator().manual_seed(7))
    train_small_set(plain, x, y, StandardSchedule(**kw), torch.Generator().manual_seed(7))

    dsa = DSA(flip=True, shift_px=2)
    draws = torch.Generator().manual_seed(7)
    bs = batch_size or 5
    for _ in range(2):
        order = torch.randperm(5, generator=draws) if bs < 5 else torch.arange(5)
        for start in range(0, 5, bs):
            idx = order[start : start + bs]
            loss = torch.nn.functional.cross_entropy(ref(dsa(x[idx], draws)), y[idx])
            grads = torch.autograd.grad(loss, list(ref.parameters()))
            with torch.no_grad():
                for p, g in zip(ref.parameters(), grads, strict=True):
                    p -= 0.1 * g
    for a, b in zip(_weights([net]), _weights([ref]), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(_weights([net])[0], _weights([plain])[0])


def test_a_non_finite_loss_stops_the_standard_schedule_before_its_step():
    """A NaN image makes the first loss NaN: ``train_small_set`` raises ``FloatingPointError`` naming the
    epoch (so the study scores the network as one that learned nothing) and takes no step."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    x[0, 0] = float("nan")
    net = torch.nn.Linear(3, 2)
    before = _weights([net])[0].clone()
    with pytest.raises(FloatingPointError, match="epoch 0: loss is nan"):
        train_small_set(
            net, x, torch.tensor([0, 1, 0, 1]), StandardSchedule(epochs=3), torch.Generator().manual_seed(0)
        )
    torch.testing.assert_close(_weights([net])[0], before, rtol=0, atol=0)


def test_a_distilled_set_trained_with_the_standard_schedule_uses_the_schedule_it_is_given(patient_dm):
    """``train_built_on_distilled(..., 'standard', g, schedule)`` is ``train_small_set`` on the set's images
    and soft targets with *that* schedule (not the default recipe), and ``replay`` with a DSA node is the
    augmented replay of the network's generator (not the plain replay)."""
    from gastrodistill.evaluation.fresh_training import train_built_on_distilled

    ds = small_distilled(patient_dm)
    net = ConvNet(1, 3, (12, 12), width=4, depth=2, init_seed=3)
    sched = StandardSchedule(epochs=3, lr=0.05, momentum=0.5, batch_size=4, cosine=False)
    got = train_built_on_distilled(copy.deepcopy(net), ds, "standard", torch_generator(1, "g"), sched)
    want = train_small_set(
        copy.deepcopy(net), ds.images.detach(), ds.soft_targets().detach(), sched, torch_generator(1, "g")
    )
    torch.testing.assert_close(_weights([got])[0], _weights([want])[0], rtol=0, atol=0)
    got = train_built_on_distilled(copy.deepcopy(net), ds, "replay", torch_generator(2, "g"), None, SHIFT)
    want = train_replay(copy.deepcopy(net), ds, SHIFT, torch_generator(2, "g"))
    plain = train_replay(copy.deepcopy(net), ds)
    torch.testing.assert_close(_weights([got])[0], _weights([want])[0], rtol=0, atol=0)
    assert not torch.allclose(_weights([got])[0], _weights([plain])[0])


def test_ensembles_refuse_running_statistics_and_dropout_and_accept_them_switched_off():
    """``supports_ensemble``: batch norm with running statistics or a dropout p > 0 cannot train under
    vmap as in the loop (the caller then trains network by network); without them it can."""
    from torch import nn

    def net(*layers: nn.Module) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 2, 3), *layers, nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    shape = (1, 6, 6)
    assert supports_ensemble(net(), shape)
    assert not supports_ensemble(net(nn.BatchNorm2d(2)), shape)
    assert supports_ensemble(net(nn.BatchNorm2d(2, track_running_stats=False)), shape)
    assert not supports_ensemble(net(nn.Dropout(0.5)), shape)
    assert supports_ensemble(net(nn.Dropout(0.0)), shape)


@pytest.mark.parametrize(("batch_size", "augment"), [(0, SHIFT), (2, None), (0, None)])
def test_an_ensemble_on_one_shared_set_equals_the_loop(batch_size, augment):
    """Every network on the *same* tensors (a distilled set's standard schedule): full batch with DSA
    (each network its own draws), mini-batches (each network its own permutation) and full batch without
    augmentation (one shared batch): the loop's weights, and the networks come back in eval mode."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 6, 6, generator=gen)
    y = torch.softmax(torch.randn(5, 2, generator=gen), 1)
    nets = []
    for _ in range(3):
        n = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
        with torch.no_grad():
            for p in n.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        nets.append(n)
    sched = StandardSchedule(epochs=3, lr=0.1, momentum=0.9, batch_size=batch_size, augment=augment)
    loop = [
        train_small_set(copy.deepcopy(n), x, y, sched, torch.Generator().manual_seed(10 + i))
        for i, n in enumerate(nets)
    ]
    together = train_small_sets(
        [copy.deepcopy(n) for n in nets],
        [(x, y)] * 3,
        sched,
        [torch.Generator().manual_seed(10 + i) for i in range(3)],
    )
    for a, b in zip(_weights(loop), _weights(together), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not any(n.training for n in together)


def test_a_replay_that_overflows_midway_raises_and_such_a_network_learned_nothing(patient_dm):
    """An infinite rate at step 1 of T = 4 leaves non-finite weights: the ensemble replay checks the loss of
    its last step (not only of its first) and raises; ``train_or_learned_nothing`` turns a network whose
    weights end non-finite (however its training ended) into one with every parameter 0."""
    from gastrodistill.evaluation.ensemble import train_or_learned_nothing

    ds = small_distilled(patient_dm)
    with torch.no_grad():
        ds.raw_lrs[1] = float("inf")
    net = ConvNet(1, 3, (12, 12), width=4, depth=2, init_seed=3)
    with pytest.raises(FloatingPointError, match="replay step 3"):
        train_replays([copy.deepcopy(net)], ds)

    def poison(n: torch.nn.Module) -> torch.nn.Module:
        with torch.no_grad():
            next(n.parameters()).fill_(float("inf"))
        return n

    got, why = train_or_learned_nothing(poison, copy.deepcopy(net))
    assert why is not None and "not finite" in why
    assert all(bool((p == 0).all()) for p in got.parameters())
    kept, none = train_or_learned_nothing(lambda n: n, copy.deepcopy(net))
    assert none is None and torch.equal(_weights([kept])[0], _weights([net])[0])


def test_the_ensemble_replay_follows_each_steps_own_learned_rate(patient_dm):
    """Rates that differ step by step (a learned schedule): the ensemble replay lands where the unroll
    lands (float64), so step t uses ``lrs()[t]``, not another step's."""
    torch.set_default_dtype(torch.float64)
    try:
        ds = small_distilled(patient_dm).double()
        with torch.no_grad():
            ds.raw_lrs.copy_(torch.tensor([-6.0, -1.0, -4.0, 0.5]))  # softplus: 0.0025, 0.31, 0.018, 0.97
        net = ConvNet(1, 3, (12, 12), width=4, depth=2, init_seed=3).double()
        unrolled = unroll_func(net, ds, momentum=0.0)
        ens = train_replays([copy.deepcopy(net)], ds)[0]
        for name, p in ens.named_parameters():
            torch.testing.assert_close(p.detach(), unrolled[name].detach(), rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_an_ensemble_refuses_sets_of_other_sizes_and_names_the_network_whose_loss_is_not_finite():
    gen = torch.Generator().manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)) for _ in range(2)]
    good = (torch.randn(3, 1, 2, 2, generator=gen), torch.tensor([0, 1, 0]))
    bad = (good[0].clone(), good[1])
    bad[0][1, 0, 0, 0] = float("nan")
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    sched = StandardSchedule(epochs=2, lr=0.1)
    with pytest.raises(ValueError, match="equal sizes"):
        train_small_sets(nets, [good, (good[0][:2], good[1][:2])], sched, gens)
    with pytest.raises(FloatingPointError, match=r"network\(s\) \[1\] not finite"):
        train_small_sets(nets, [good, bad], sched, gens)


def test_the_learning_rate_and_the_validation_scores_come_from_the_validation_split_never_test(
    compose_cfg, patient_dm
):
    """``eval.lr_grid`` is decided on validation patches: each rate's score is scikit-learn's balanced
    accuracy on the *validation* split of job 0's network trained at that rate (computed here by a forward
    pass of its own), the chosen rate is the best of them, and the record's ``val_balanced_accuracy`` and
    ``val_selector`` give the same validation number. The test split scores differently, so a selection
    that read it would be seen."""
    from sklearn.metrics import balanced_accuracy_score

    from gastrodistill.evaluation.fresh_training import standard_schedule
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.scoring import val_selector

    grid = [0.001, 0.05]
    cfg = compose_cfg(SMALL + [f"eval.lr_grid=[{grid[0]},{grid[1]}]", "+eval.baselines.n_per_class=3"])
    study = Study(cfg, patient_dm, {}, None, progress=False)
    lr, chosen_net = study.choose_lr("random", "same")
    scores = study.selected["random/same/standard_lr"]["val_balanced_accuracy"]
    (xv, yv), (xt, yt) = patient_dm.load_split("val"), patient_dm.load_split("test")
    on_val, on_test = {}, {}
    for rate in grid:
        net, g = study.build(Job("random", "standard", "same", 0))
        x, y = study.small_set("random", 0)
        net = train_small_set(net, x, y, standard_schedule(cfg.eval, rate), g).eval()
        with torch.no_grad():
            on_val[rate] = balanced_accuracy_score(yv.numpy(), net(xv).argmax(1).numpy())
            on_test[rate] = balanced_accuracy_score(yt.numpy(), net(xt).argmax(1).numpy())
    assert any(abs(on_val[r] - on_test[r]) > 1e-6 for r in grid)  # the two splits can be told apart
    assert scores == pytest.approx(on_val, abs=1e-6)
    assert lr == max(grid, key=lambda r: on_val[r])
    record = score_networks([chosen_net], study.ctx)[0]
    assert record["val_balanced_accuracy"] == pytest.approx(on_val[lr], abs=1e-6)
    assert val_selector(study.ctx)(chosen_net) == pytest.approx(on_val[lr], abs=1e-6)


def test_in_memory_batches_is_one_pass_in_the_generators_random_order():
    """The audit's shadow networks see each training patch once per epoch, in the order of
    ``torch.randperm`` under the shadow's own generator (not in storage order), in batches of
    ``batch_size`` with a shorter last one."""
    x = torch.arange(23, dtype=torch.float32).view(23, 1, 1, 1).expand(23, 1, 2, 2).clone()
    y = torch.arange(23) % 3
    batches = list(in_memory_batches(x, y, 5, torch_generator(7)))
    assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([b[0][:, 0, 0, 0] for b in batches]).long()
    expected = torch.randperm(23, generator=torch_generator(7))
    assert torch.equal(seen, expected)
    assert not torch.equal(seen, torch.arange(23))  # shuffled, not storage order
    assert torch.equal(torch.cat([b[1] for b in batches]), y[expected])  # labels travel with their images
