"""An override of a key the config lacks is refused in one line naming the nearest keys, before Hydra."""

from __future__ import annotations

import pytest
from _cli_runner import assert_nothing_written, run_main

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.override_keys import unknown_key_message


@pytest.mark.parametrize(
    ("overrides", "nearest"),
    [
        (["distill.ipcc=3"], "distill.ipc"),
        (["distil.ipc=3"], "distill.ipc"),
        (["data=npz", "data.pth=x.npz"], "data.path"),  # data.path exists only with data=npz
        (["experiment=cpu", "eval.n_netwroks=2"], "eval.n_networks"),
    ],
)
def test_a_typo_names_the_key_and_the_nearest_existing_one(overrides, nearest):
    text = unknown_key_message(overrides, CONF_DIR)
    bad = overrides[-1]
    assert text.startswith(f"error: {bad}: the config has no key {bad.split('=')[0]!r}")
    assert f"did you mean {nearest}" in text and f"+{bad}" in text


@pytest.mark.parametrize(
    "overrides",
    [
        ["distill.ipc=3", "data=npz", "data.path=x.npz", "seed=1"],  # every key exists
        ["+my.note=1", "++other=2", "~specialize"],  # additions and deletions are Hydra's business
        ["hydra.run.dir=/x", "hydra.job.chdir=false", "hydra/launcher=basic"],
        ["data=nonexistent", "distill.ipcc=3"],  # a bad group: Hydra's own message names it
        ["-m", "distill.ipc=1,2,3"],  # a sweep: the key is checked, the values are not
        ["distill.ipc=[unclosed"],  # unparsable: Hydra reports it
    ],
)
def test_valid_or_hydra_handled_overrides_pass(overrides):
    assert unknown_key_message(overrides, CONF_DIR) is None


def test_the_command_stops_before_hydra_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from gastrodistill.cli import distill

    argv = ["gastrodistill-distill", f"paths.root_dir={tmp_path}", "logger=csv", "distill.outer_step=2"]
    code, text = run_main(distill.main, argv, monkeypatch, capsys)
    assert code == 1
    assert text.strip() == (
        "error: distill.outer_step=2: the config has no key 'distill.outer_step'; did you mean "
        "distill.outer_steps or distill.steps or distill.outer_chunk? (`--cfg job` lists every key; a key "
        "of your own is added with "
        "+distill.outer_step=2)"
    )  # one line, and not Hydra's "To append to your config use +..." first
    assert_nothing_written(tmp_path)
