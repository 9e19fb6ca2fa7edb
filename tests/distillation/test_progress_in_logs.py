"""Progress bars written to a log file: a few redraws, not one per step (a newcomer's npz run left log lines
of megabytes). Under pytest standard output and error are not terminals, as in a log file."""

from __future__ import annotations

import pytest

from gastrodistill.distillation.run import run_distillation
from gastrodistill.utils.progress import (
    LOG_INTERVAL_S,
    LOG_UPDATES,
    quiet_progress_when_redirected,
    redirected,
)


def test_our_tqdm_bars_in_worker_processes_redraw_every_few_seconds_and_a_users_value_wins(monkeypatch):
    """tqdm reads ``TQDM_MININTERVAL`` when it is imported: the stages' worker processes (spawned, so they
    import it afresh: the label modes' distillations, the evaluation's and the audit's workers) inherit it."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from _progress_child import bar_interval

    assert redirected()
    ctx = mp.get_context("spawn")
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    quiet_progress_when_redirected()
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(bar_interval).result() == LOG_INTERVAL_S
    monkeypatch.setenv("TQDM_MININTERVAL", "0.5")
    quiet_progress_when_redirected()
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(bar_interval).result() == 0.5


def test_the_distillations_lightning_bar_redraws_about_log_updates_times(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, capsys
):
    steps = 4 * LOG_UPDATES
    cfg = compose_cfg([*tiny_overrides, f"distill.outer_steps={steps}", "trainer.enable_progress_bar=true"])
    capsys.readouterr()
    run_distillation(cfg, tiny_dm, tmp_path)
    out = capsys.readouterr().out
    redraws = out.count("\r")
    # Lightning redraws twice per update (the count, then the metrics); before, every outer step: >= 320
    assert 0 < redraws <= 2 * LOG_UPDATES + 10, redraws


def test_a_commands_own_process_quietens_its_bars_when_its_output_is_a_file(tmp_path):
    """A command imports gastrodistill before torch and Lightning import tqdm, so its own bars (hashing
    sources, labelling patches, an in-process evaluation) redraw every few seconds in a log too."""
    import os
    import subprocess
    import sys

    code = "import gastrodistill, io, tqdm; print(tqdm.tqdm(total=1, file=io.StringIO()).mininterval)"
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    with open(tmp_path / "log.txt", "w") as log:
        subprocess.run(
            [sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env, check=True
        )
    assert float((tmp_path / "log.txt").read_text().split()[-1]) == LOG_INTERVAL_S


def test_a_notebook_keeps_tqdms_own_redraw_rate(monkeypatch):
    """Jupyter's output streams are no terminals, but a notebook shows a bar in place: importing
    gastrodistill there must not slow its bars to one redraw every 10 s."""
    import sys
    import types

    assert redirected()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert not redirected()


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize(
    ("out", "err", "expect"),
    [(True, True, False), (True, False, True), (False, True, True), (False, False, True), (None, True, True)],
)
def test_a_log_is_either_stream_not_on_a_terminal(monkeypatch, out, err, expect):
    """``cmd 2> log`` leaves standard output on the terminal and still logs the bars (standard error): one
    stream that is no terminal is enough (mutants: any instead of all, standard output alone). A stream
    without ``isatty`` counts as none."""
    import sys

    for name in ("ipykernel", "IPython"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "stdout", object() if out is None else _Stream(out))
    monkeypatch.setattr(sys, "stderr", _Stream(err))
    assert redirected() is expect


def test_an_ipython_session_without_a_kernel_keeps_tqdms_own_redraw_rate(monkeypatch):
    """A terminal IPython (no ipykernel) also draws bars in place (mutant: only ipykernel looked for)."""
    import sys
    import types

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    assert not redirected()


def test_lightnings_bar_in_a_log_redraws_every_total_over_log_updates_steps_and_on_a_terminal_is_its_own(
    monkeypatch,
):
    """refresh_rate = total // LOG_UPDATES, at least 1 (a run shorter than LOG_UPDATES steps redraws every
    step, 0 would be no bar); None on a terminal, where Lightning's default bar redraws every step."""
    from gastrodistill.utils import progress

    assert redirected()
    rates = {
        n: progress.lightning_progress_bar(n).refresh_rate for n in (10 * LOG_UPDATES + 3, LOG_UPDATES, 5, 0)
    }
    assert rates == {10 * LOG_UPDATES + 3: 10, LOG_UPDATES: 1, 5: 1, 0: 1}
    monkeypatch.setattr(progress, "redirected", lambda: False)
    assert progress.lightning_progress_bar(1000) is None


def test_the_full_data_networks_lightning_bar_redraws_about_log_updates_times(tiny_dm, compose_cfg, capsys):
    """The full-data recipe's bar (the texture-matching teacher, the standalone audit's reference network)
    redrew every batch in a log file: 888 bar lines for the audit's reference network of the CPU preset."""
    from gastrodistill.evaluation.full_data import train_full_data
    from gastrodistill.evaluation.study import real_recipe
    from gastrodistill.models import ConvNet

    epochs, batch = 8, 2
    cfg = compose_cfg([f"eval.baselines.real.epochs={epochs}", f"eval.baselines.real.batch_size={batch}"])
    x = tiny_dm.dataset("train", augment=False)
    per_epoch = -(-len(x) // batch)  # batches per epoch (the last one short)
    assert epochs * per_epoch >= 4 * LOG_UPDATES  # enough batches that one redraw per batch would show
    net = ConvNet(1, 3, 6, width=4, depth=1)
    capsys.readouterr()
    train_full_data(
        net,
        x,
        tiny_dm.labels("train"),
        tiny_dm.dataset("val", augment=False),
        real_recipe(cfg.eval),
        tiny_dm.num_classes,
        ("bar",),
        progress=True,
    )
    seen = capsys.readouterr()
    text = seen.out + seen.err
    assert "Epoch 0" in text
    redraws = text.count(f"/{per_epoch} [")  # the training bar's lines (count and metrics)
    assert 0 < redraws <= 2 * LOG_UPDATES + 4 * epochs + 10, redraws  # and a redraw or two per epoch
