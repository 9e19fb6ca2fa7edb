"""evaluation/jobs.py: which jobs a config lists and in what order (every rank builds the same list and
takes jobs[r::w]), written out by hand; each rank's shard, the jobs still pending and the jobs by setting
(gaps mutation reviews found)."""

from __future__ import annotations

import pytest

from gastrodistill.evaluation.jobs import EvaluationConfigError, Job, build_jobs, by_setting, pending, shard

SMALL = ["model.width=8", "model.depth=2", "eval.progress=false"]


def test_the_job_list_is_each_set_by_architecture_then_schedule_then_each_baseline_by_architecture(
    compose_cfg,
):
    """Sets in the order given, each over eval.architectures, then eval.schedules (in the config's order),
    n_networks each; then the baselines in eval.baselines.methods' order over their own architectures,
    the full-data one n_networks_full times under schedule 'real', the others n_networks times under
    'standard'. Mutants: loops swapped, the set architectures for the baselines, counts exchanged or off
    by one, the schedules renamed, the sets reordered."""
    ev = compose_cfg(
        [
            *SMALL,
            "eval.n_networks=1",
            "eval.architectures=[lenet,same]",
            "eval.schedules=[standard,replay]",
            "eval.baselines.methods=[mean,full]",
            "eval.baselines.architectures=[same,lenet]",
            "eval.baselines.n_networks_full=2",
        ]
    ).eval
    assert [j.key for j in build_jobs(ev, ["soft", "hard"])] == [
        "soft__standard__lenet__0",
        "soft__replay__lenet__0",
        "soft__standard__same__0",
        "soft__replay__same__0",
        "hard__standard__lenet__0",
        "hard__replay__lenet__0",
        "hard__standard__same__0",
        "hard__replay__same__0",
        "mean__standard__same__0",
        "mean__standard__lenet__0",
        "full__real__same__0",
        "full__real__same__1",
        "full__real__lenet__0",
        "full__real__lenet__1",
    ]


def test_one_schedule_given_as_a_word_and_three_networks(compose_cfg):
    """``eval.schedules=replay`` (a string, not a list) is that one schedule; n_networks=3 gives indices
    0-2 of each setting and n_networks_full=1 one full-data network (mutant: the string read letter by
    letter)."""
    ev = compose_cfg(
        [
            *SMALL,
            "eval.n_networks=3",
            "eval.architectures=[same]",
            "eval.schedules=replay",
            "eval.baselines.methods=[random,full]",
            "eval.baselines.architectures=[same]",
            "eval.baselines.n_networks_full=1",
        ]
    ).eval
    assert [j.key for j in build_jobs(ev, ["soft"])] == [
        "soft__replay__same__0",
        "soft__replay__same__1",
        "soft__replay__same__2",
        "random__standard__same__0",
        "random__standard__same__1",
        "random__standard__same__2",
        "full__real__same__0",
    ]


def test_an_unknown_schedule_or_baseline_anywhere_in_its_list_is_refused_naming_it(compose_cfg):
    """Every entry is checked, not only the first (mutants), and ``none`` is no baseline (``[]`` is)."""
    for override, message in (
        ("eval.schedules=[replay,sgd]", "eval.schedules entry 'sgd' unknown; use 'replay' and/or 'standard'"),
        (
            "eval.baselines.methods=[random,none]",
            "eval.baselines.methods entry 'none' unknown; "
            "use some of ('full', 'random', 'mean', 'random_soft')",
        ),
    ):
        with pytest.raises(EvaluationConfigError) as info:
            build_jobs(compose_cfg([*SMALL, override]).eval, ["soft"])
        assert str(info.value) == message


def test_splits_may_be_kept_off_the_device_with_max_device_mb_0(compose_cfg):
    """``eval.max_device_mb=0`` (no cached split on the device) and null (always) are accepted, -1 is
    refused naming the key (mutant: a minimum of 1)."""
    for ok in ("0", "null", "64"):
        build_jobs(compose_cfg([*SMALL, f"eval.max_device_mb={ok}"]).eval, ["soft"])
    with pytest.raises(EvaluationConfigError, match=r"eval.max_device_mb must be an integer >= 0 or null"):
        build_jobs(compose_cfg([*SMALL, "eval.max_device_mb=-1"]).eval, ["soft"])


def test_shards_are_round_robin_and_only_ranks_of_the_world_get_one():
    """Rank r of w takes jobs r, r + w, r + 2w, ...; every job lands on exactly one rank; a rank outside
    [0, w) or a world of no process is refused (it would train nothing, or duplicate another's jobs)."""
    jobs = [Job("soft", "replay", "same", i) for i in range(7)]
    for world in (1, 2, 3, 7, 9):
        shards = [shard(jobs, r, world) for r in range(world)]
        for r, part in enumerate(shards):
            assert [j.index for j in part] == [i for i in range(7) if i % world == r]
        assert sorted(j.index for part in shards for j in part) == list(range(7))
    for rank, world in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(EvaluationConfigError, match=f"rank {rank} of world size {world}"):
            shard(jobs, rank, world)


def test_pending_jobs_and_settings_keep_the_jobs_order():
    jobs = [
        Job("soft", "replay", "same", 0),
        Job("random", "standard", "same", 0),
        Job("soft", "replay", "same", 1),
        Job("soft", "replay", "lenet", 0),
    ]
    assert pending(jobs, {"soft__replay__same__0", "other__x__y__0"}) == jobs[1:]
    assert pending(jobs, set()) == jobs
    groups = by_setting(jobs)
    assert list(groups) == [
        ("soft", "replay", "same"),
        ("random", "standard", "same"),
        ("soft", "replay", "lenet"),
    ]
    assert groups[("soft", "replay", "same")] == [jobs[0], jobs[2]]
