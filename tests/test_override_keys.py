"""An override of a key the config lacks is refused in one line naming the nearest keys, before Hydra."""

from __future__ import annotations

from pathlib import Path

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
        (["reproduce.distil_modes=[soft]"], "reproduce.distill_modes?"),  # not its items (.0, .1)
    ],
)
def test_a_typo_names_the_key_and_the_nearest_existing_one(overrides, nearest):
    text = unknown_key_message(overrides, CONF_DIR)
    bad = overrides[-1]
    assert text.startswith(f"error: {bad}: the config has no key {bad.split('=')[0]!r}")
    assert f"did you mean {nearest}" in text and f"+{bad}" in text


def test_a_key_of_an_option_that_is_off_says_how_to_set_the_option():
    text = unknown_key_message(["data.zca.kernel_size=9"], CONF_DIR)  # data.zca is null by default
    assert text == (
        "error: data.zca.kernel_size=9: data.zca is null (off) in this config, so it has no key "
        "'data.zca.kernel_size': set it as a whole node, e.g. "
        "'data.zca={_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 9}' "
        "(the outer quotes for the shell)"
    )
    assert "'distill.dsa={_target_:" in unknown_key_message(["distill.dsa.shift_px=4"], CONF_DIR)
    assert unknown_key_message(["experiment=cpu", "distill.dsa.shift_px=4"], CONF_DIR) is None  # on there


def test_a_node_given_whole_over_one_of_other_keys_says_how_to_replace_it():
    """``distill.dsa={..., rotate: 10}`` over the CPU preset's node (flip, shift_px): Hydra merges a node
    into the one there, refused ``rotate`` in a multi-line message and suggested ``+distill.dsa={...}``,
    which keeps the preset's keys (a docs tester's finding). Clearing it first replaces it."""
    node = "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, rotate: 10}"
    assert unknown_key_message(["experiment=cpu", node], CONF_DIR) == (
        f"error: {node}: the config's distill.dsa has no key 'rotate', and a node given whole is merged into "
        f"the one there, not put in its place: to replace it, clear it first: distill.dsa=null '{node}' (the "
        "outer quotes for the shell); to add one key: +distill.dsa.rotate=..."
    )
    assert unknown_key_message(["experiment=cpu", "distill.dsa=null", node], CONF_DIR) is None  # the advice
    assert unknown_key_message([node], CONF_DIR) is None  # null there (the default): set as a whole
    same_keys = "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, shift_px: 4}"
    assert unknown_key_message(["experiment=cpu", same_keys], CONF_DIR) is None  # keys it has: Hydra merges


@pytest.mark.parametrize(
    "overrides",
    [
        ["distill.ipc=3", "data=npz", "data.path=x.npz", "seed=1"],  # every key exists
        ["+my.note=1", "++other=2", "~specialize"],  # additions and deletions are Hydra's business
        ["hydra.run.dir=/x", "hydra.job.chdir=false", "hydra/launcher=basic"],
        ["-m", "distill.ipc=1,2,3"],  # a sweep: the key is checked, the values are not
        ["distill.ipc=[unclosed"],  # unparsable: Hydra reports it
        ["--shell-completion", "install=bash"],  # completion's own arguments are no overrides
        ["-sc", "query=bash"],  # what bash calls while completing
        ["-m", "distill=soft_cpu,hard_cpu", "distill.ipc=1,2"],  # the key in every swept config
        ["reproduce.distill_modes=[hard]", "reproduce.parallel_modes=2"],  # without a preset too
        ["-m", "distill=glob(*)", "distill.ipc=1"],  # a sweep the check cannot expand: Hydra's turn
        ["~distill.ipcc"],  # deleting a key that is not there: Hydra's "Could not delete", not "+~..."
        ["nosuch@pkg=x"],  # a package override names a group: Hydra's "Could not override"
        ["nosuch/group=x"],  # a/b=c always names a group, even one that does not exist: Hydra's message
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


@pytest.fixture
def user_config_dir(tmp_path):
    """A folder of the user's own: a primary config built on the bundled one, and a data option."""
    (tmp_path / "data").mkdir()
    (tmp_path / "myrun.yaml").write_text("defaults:\n  - config\n  - _self_\nmy_note: hello\n")
    (tmp_path / "data" / "mydata.yaml").write_text("defaults:\n  - npz\n  - _self_\nsite: north\n")
    return tmp_path


@pytest.mark.parametrize("form", ["short", "long"])
def test_the_users_primary_config_and_config_folder_are_composed(user_config_dir, form):
    d = str(user_config_dir)
    flags = ["-cd", d, "-cn", "myrun"] if form == "short" else [f"--config-dir={d}", "--config-name=myrun"]
    assert unknown_key_message([*flags, "my_note=bye", "distill.ipc=2"], CONF_DIR) is None
    text = unknown_key_message([*flags, "my_notee=bye"], CONF_DIR)
    assert text.startswith("error: my_notee=bye: the config has no key 'my_notee'; did you mean my_note?")
    # an option of the user's group beside the bundled primary config
    assert unknown_key_message(["-cd", d, "data=mydata", "data.site=south"], CONF_DIR) is None
    assert "did you mean data.site" in unknown_key_message(
        ["-cd", d, "data=mydata", "data.sitee=s"], CONF_DIR
    )


def test_a_sweep_over_group_options_is_checked_in_each_of_them():
    text = unknown_key_message(["-m", "distill=soft_cpu,hard_cpu", "distill.ipcc=1"], CONF_DIR)
    assert text.startswith(
        "error: distill.ipcc=1: the config has no key 'distill.ipcc'; did you mean distill.ipc"
    )
    # a key that only one of the swept options has: named with the option that lacks it
    text = unknown_key_message(["-m", "data=npz,digits", "data.path=x.npz"], CONF_DIR)
    assert text.startswith("error: data.path=x.npz: the config with data=digits has no key 'data.path'")
    assert "did you mean data.path" not in text  # the key itself is no suggestion


def test_train_from_artifact_names_a_listing_it_can_run():
    from gastrodistill.cli.errors import CommandError
    from gastrodistill.cli.train_from_artifact import compose

    with pytest.raises(CommandError) as caught:
        compose(["distill.ipcc=3"], None)
    text = str(caught.value)  # the command has no --cfg: it names the one that lists the same config
    assert text.startswith("distill.ipcc=3: the config has no key 'distill.ipcc'")
    assert "(`gastrodistill-distill --cfg job` lists every key of this config; " in text
    # with group choices, the listing command composes the same config: the choices go with it
    with pytest.raises(CommandError) as caught:
        compose(["data=npz", "experiment=tiny", "data.pathh=x.npz"], None)
    text = str(caught.value)
    assert text.startswith("data.pathh=x.npz: the config has no key 'data.pathh'; did you mean data.path?")
    assert (
        "(`gastrodistill-distill data=npz experiment=tiny --cfg job` lists every key of this config; " in text
    )


def test_shell_completion_installs_through_the_command(monkeypatch, capsys):
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli import distill

    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", "--shell-completion", "install=bash"])
    GlobalHydra.instance().clear()
    distill.main()  # Hydra prints the completion script and returns
    GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "hydra_bash_completion" in out and "complete " in out


def test_a_config_dir_with_its_own_config_yaml_is_composed_as_hydra_does(tmp_path):
    """Hydra searches the bundled folder first, so a ``-cd`` folder's own config.yaml is shadowed: its keys
    are not there, and the bundled keys are."""
    (tmp_path / "config.yaml").write_text("defaults:\n  - _self_\nseed: 5\nmy_key: 1\n")
    d = str(tmp_path)
    assert unknown_key_message(["-cd", d, "distill.ipc=2"], CONF_DIR) is None
    assert unknown_key_message(["-cd", d, "my_key=2"], CONF_DIR).startswith(
        "error: my_key=2: the config has no key 'my_key'"
    )
    # a primary config of the user's whose `- config` Hydra would take from the bundled folder: the check
    # cannot compose that from the user's folder, and stands aside
    (tmp_path / "myexp.yaml").write_text("defaults:\n  - config\n  - _self_\nmy_note: hello\n")
    assert unknown_key_message(["-cd", d, "-cn", "myexp", "my_notee=1"], CONF_DIR) is None


def test_two_run_modes_are_refused_in_one_line_before_hydra(monkeypatch, capsys):
    """``-m ... --cfg job`` made Hydra raise a ValueError with a traceback; one line now, with the way on."""
    import sys

    from gastrodistill.cli import distill
    from gastrodistill.cli.errors import EXIT_STATUS
    from gastrodistill.cli.override_keys import mode_flags_message

    assert mode_flags_message(["-m", "distill=soft,hard", "--cfg", "job"]).startswith(
        "error: --multirun and --cfg cannot be combined"
    )
    assert "keep one of them" in mode_flags_message(["--info", "-r"])
    assert mode_flags_message(["--cfg=job", "--multirun"]) is not None
    for alone in (["--cfg", "job"], ["-m", "seed=0,1"], ["-cn", "-m"], ["-sc", "install=bash"], []):
        assert mode_flags_message(alone) is None, alone
    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", "-m", "distill=soft,hard", "--cfg", "job"])
    with pytest.raises(SystemExit) as info:
        distill.main()
    assert info.value.code == EXIT_STATUS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --multirun and give that job's values with --cfg job" in err


def test_a_typo_of_a_group_name_suggests_the_group_and_its_options():
    """``experimnt=cpu`` used to suggest only ``experiment_name`` (following it would run the default
    preset under another name); the group and its options from conf/experiment come first now."""
    options = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
    text = unknown_key_message(["experimnt=cpu"], CONF_DIR)
    assert f"did you mean experiment=<{'|'.join(options)}> or experiment_name?" in text


def test_a_misspelt_option_of_a_group_names_the_nearest_option_and_all_of_them():
    """``data=nzp`` and ``experiment=tinyy`` got Hydra's own dozen lines (a newcomer's finding); one line
    now, for a sweep's options too. Options that exist, nested ones and null are left to Hydra."""
    data = sorted(p.stem for p in (Path(CONF_DIR) / "data").glob("*.yaml"))
    assert "npz" in data and "nzp" not in data
    assert unknown_key_message(["data=nzp"], CONF_DIR) == (
        f"error: data=nzp: the config group 'data' has no option 'nzp'; did you mean data=npz? (its "
        f"options: {', '.join(data)})"
    )
    text = unknown_key_message(["-m", "experiment=tiny", "distill=soft_cpu,hard_cpux"], CONF_DIR)
    assert text.startswith("error: distill=hard_cpux: the config group 'distill' has no option 'hard_cpux'")
    assert "did you mean distill=hard_cpu?" in text
    assert unknown_key_message(["experiment=zzzz"], CONF_DIR).startswith(
        "error: experiment=zzzz: the config group 'experiment' has no option 'zzzz' (its options: "
    )  # nothing near: no guess
    before_the_key = unknown_key_message(["data=nonexistent", "distill.ipcc=3"], CONF_DIR)
    assert before_the_key.startswith("error: data=nonexistent: the config group 'data' has no option")
    for fine in (
        ["data=npz"],
        ["data=npz.yaml"],  # Hydra reads it as npz
        ["experiment=tiny", "distill=soft_cpu"],
        ["data=null"],
        ["-m", "seed=1,2"],
        ["hydra.searchpath=[file:///elsewhere/conf]", "data=digits01"],  # options of a search path
    ):
        assert unknown_key_message(fine, CONF_DIR) is None, fine


def test_a_search_path_in_a_primary_config_leaves_the_options_to_hydra(tmp_path):
    """A primary config that sets ``hydra.searchpath`` adds folders of options the check does not read:
    ``data=digits01`` from such a folder is Hydra's to find (a review's finding), while the same folder
    without a search path still gets the one-line refusal."""
    user = tmp_path / "cd"
    user.mkdir()
    (user / "config.yaml").write_text("defaults:\n  - _self_\nseed: 0\n")
    assert unknown_key_message(["-cd", str(user), "data=digits01"], CONF_DIR).startswith(
        "error: data=digits01: the config group 'data' has no option 'digits01'"
    )
    (user / "config.yaml").write_text("hydra:\n  searchpath: [file:///elsewhere/conf]\nseed: 0\n")
    assert unknown_key_message(["-cd", str(user), "data=digits01"], CONF_DIR) is None


def test_an_unquoted_value_with_accents_gets_the_quoting_that_works():
    """Hydra's grammar reads only ASCII unquoted: ``paths.data_root=/data/Hôpital`` gave its lexer's
    exception; the message now gives the override as it parses, and that override composes."""
    text = unknown_key_message(["seed=1", "paths.data_root=/data/Hôpital"], CONF_DIR)
    assert text == (
        "error: paths.data_root=/data/Hôpital: Hydra reads a value with characters outside ASCII only in "
        "quotes; write it as 'paths.data_root=\"/data/Hôpital\"' (the outer quotes for the shell)"
    )
    assert unknown_key_message(['paths.data_root="/data/Hôpital"'], CONF_DIR) is None
    assert unknown_key_message(["seed=a(b"], CONF_DIR) is None  # other malformed overrides: Hydra's message


def test_an_unquoted_path_with_spaces_and_parentheses_gets_the_quoting_that_works():
    """``data.path=/data/my data,v2 (1).npz`` gave Hydra's "mismatched input '.' expecting <EOF>" without
    naming the key (a breaker's finding); the quoted override parses and composes."""
    text = unknown_key_message(["data=npz", "data.path=/data/my data,v2 (1).npz"], CONF_DIR)
    assert text == (
        "error: data.path=/data/my data,v2 (1).npz: Hydra's override grammar cannot read this value unquoted "
        "(spaces, parentheses, commas and the like); write it as 'data.path=\"/data/my data,v2 (1).npz\"' "
        "(the outer quotes for the shell)"
    )
    assert unknown_key_message(["data=npz", 'data.path="/data/my data,v2 (1).npz"'], CONF_DIR) is None


def test_a_swept_path_is_quoted_value_by_value_and_every_path_key_is_known():
    """In a sweep a comma separates values: quoting the whole of ``data.path=/a (1).npz,/b (2).npz`` made
    one path of two (a reviewer's finding); each value is quoted apart, and that sweep parses as two
    values; so for values outside ASCII (a breaker's finding). ``distill.resume`` takes a folder too, and
    got Hydra's message before. An apostrophe in the value is quoted for the shell (the advice could not
    be pasted)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    text = unknown_key_message(["-m", "data=npz", "data.path=/a (1).npz,/b (2).npz"], CONF_DIR)
    assert text == (
        "error: data.path=/a (1).npz,/b (2).npz: Hydra's override grammar cannot read this value unquoted "
        '(spaces, parentheses, commas and the like); write it as \'data.path="/a (1).npz","/b (2).npz"\' '
        "(a sweep over 2 values; 'data.path=\"/a (1).npz,/b (2).npz\"' for one value holding commas) (the "
        "outer quotes for the shell)"
    )
    (swept,) = OverridesParser.create().parse_overrides(['data.path="/a (1).npz","/b (2).npz"'])
    assert [q.text for q in swept.value().list] == ["/a (1).npz", "/b (2).npz"]
    accents = unknown_key_message(["-m", "data=npz", "data.path=/tmp/ä.npz,/tmp/ö.npz"], CONF_DIR)
    assert 'write it as \'data.path="/tmp/ä.npz","/tmp/ö.npz"\' (a sweep over 2 values' in accents
    resume = unknown_key_message(["distill.resume=/runs/run (2)"], CONF_DIR)
    assert resume is not None and "'distill.resume=\"/runs/run (2)\"'" in resume
    apostrophe = unknown_key_message(["data=npz", "data.path=/d/it's (1).npz"], CONF_DIR)
    assert "write it as 'data.path=\"/d/it'\"'\"'s (1).npz\"' (the outer" in apostrophe


def test_a_group_chosen_twice_is_refused_in_one_line_before_hydra(tmp_path, monkeypatch, capsys):
    """``experiment=tiny ... experiment=cpu`` ran the 17-minute cpu preset without a word (Hydra keeps the
    last choice; a breaker's finding). Refused before Hydra starts, in every command with the decorator
    and in train-from-artifact. A plain value given twice stays Hydra's (the last wins: scripts append
    to a base list), and so do a sweep, the same choice twice and flags."""
    from gastrodistill.cli import distill
    from gastrodistill.cli.errors import CommandError
    from gastrodistill.cli.override_keys import repeated_key_message
    from gastrodistill.cli.train_from_artifact import run as receive_run

    assert repeated_key_message(["experiment=tiny", "seed=1", "experiment=cpu"]) == (
        "error: experiment is chosen twice (experiment=tiny, then experiment=cpu); Hydra would keep the "
        "last without a word: give it once"
    )
    assert "data is chosen twice (data=npz, then +data=folder)" in repeated_key_message(
        ["data=npz", "+data=folder"]
    )
    for fine in (
        ["-m", "seed=0,1", "distill=soft,hard"],
        ["-cn", "a", "-cd", "b", "seed=1"],
        ["seed=1", "seed=2", "distill.outer_steps=3", "distill.outer_steps=4"],
        ["experiment=tiny", "experiment=tiny"],
    ):
        assert repeated_key_message(fine) is None, fine
    argv = ["gastrodistill-distill", f"paths.root_dir={tmp_path}", "experiment=tiny", "experiment=cpu"]
    code, text = run_main(distill.main, argv, monkeypatch, capsys)
    assert code == 1 and text.strip().startswith("error: experiment is chosen twice")
    assert_nothing_written(tmp_path)
    with pytest.raises(CommandError, match="experiment is chosen twice"):
        receive_run(["--artifact", "a.zip", "experiment=tiny", "experiment=cpu"])


def test_a_path_with_an_unquoted_comma_outside_a_sweep_says_how_to_quote_it(tmp_path):
    """``data.root=/data/a,b`` without ``-m`` ended in Hydra's multi-line "Ambiguous value" message (a
    newcomer's finding; docs/data.md promised a sweep); the one-line error gives the quoting, which
    composes, and ``-m``. A sweep that Hydra runs is not refused: ``-m``, ``hydra.mode=MULTIRUN`` in any
    spelling, or a user's config that sets it (a breaker found the last three refused); other keys keep
    Hydra's message; ``choice(...)`` is told to add -m only (quoting it made a file name)."""
    text = unknown_key_message(["experiment=tiny", "data.root=/data/a,b"], CONF_DIR)
    assert text == (
        "error: data.root=/data/a,b: an unquoted comma separates a sweep's values, which runs with -m only; "
        "add -m to sweep over them, or write a path holding a comma as 'data.root=\"/data/a,b\"' (the outer "
        "quotes for the shell)"
    )
    assert unknown_key_message(["experiment=tiny", 'data.root="/data/a,b"'], CONF_DIR) is None
    for mode in ("-m", "hydra.mode=MULTIRUN", "++hydra.mode=MULTIRUN", 'hydra.mode="MULTIRUN"'):
        assert unknown_key_message([mode, "experiment=tiny", "data.root=/data/a,/data/b"], CONF_DIR) is None
    user = tmp_path / "conf" / "experiment"
    user.mkdir(parents=True)
    (user / "mysweep.yaml").write_text("# @package _global_\ndefaults:\n  - tiny\nhydra:\n  mode: MULTIRUN\n")
    with_config = ["-cd", str(tmp_path / "conf"), "experiment=mysweep", "data.root=/data/a,/data/b"]
    assert unknown_key_message(with_config, CONF_DIR) is None
    (user / "plain.yaml").write_text("# @package _global_\ndefaults:\n  - tiny\n")  # the same, no multirun
    refused = unknown_key_message([*with_config[:2], "experiment=plain", with_config[3]], CONF_DIR)
    assert refused is not None and refused.startswith("error: data.root=/data/a,/data/b: an unquoted comma")
    assert unknown_key_message(["experiment=tiny", "seed=1,2"], CONF_DIR) is None
    choice = unknown_key_message(["experiment=tiny", "data.root=choice(/data/a,/data/b)"], CONF_DIR)
    assert (
        choice == "error: data.root=choice(/data/a,/data/b): a sweep runs with -m (--multirun) only; add -m"
    )


def test_a_list_with_accents_is_quoted_item_by_item():
    """``data.class_names=[Cancer früh,Normal]`` was told to quote the whole list, which made it one
    string (a newcomer's finding: then "class names at positions [...] are empty"); each item is quoted,
    and the advice parses as a list of the two names."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    text = unknown_key_message(
        ["data=npz", "data.path=x.npz", "data.class_names=[Cancer früh,Normal]"], CONF_DIR
    )
    assert text.endswith(
        'write it as \'data.class_names=["Cancer früh","Normal"]\' (the outer quotes for the shell)'
    )
    (parsed,) = OverridesParser.create().parse_overrides(['data.class_names=["Cancer früh","Normal"]'])
    assert parsed.value() == ["Cancer früh", "Normal"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["data.batch_size=64", "distill.ipc=2"], [("data.batch_size", "data.batch_size")]),
        (
            ["-m", "data.batch_size=64,128", "+data.augment.p=1"],
            [("data.batch_size", "data.batch_size"), ("+data.augment.p", "data.augment")],
        ),
        (
            ["data=npz", "data.path=x.npz", "data.augment={_target_: albumentations.Compose}"],
            [("data.augment", "data.augment")],
        ),
        (["~data.augment"], [("~data.augment", "data.augment")]),
        (["data.batch_sizes=3", "data.eval_batch_size=8", "distill.batch_real=64", "data=npz"], []),
        (["-cn", "data.batch_size=1"], []),  # the value of -cn, not an override
    ],
)
def test_overrides_no_stage_reads_are_named(argv, named):
    """``data.batch_size`` and ``data.augment`` serve only the datamodule's ``train_dataloader()``: a run
    (or every job of a sweep) with them equals the one without, so the command says so."""
    from gastrodistill.cli.override_keys import READ_BY_NO_STAGE, unread_override_warnings

    lines = unread_override_warnings(argv)
    assert len(lines) == len(named)
    for line, (shown, key) in zip(lines, named, strict=True):
        assert line.startswith(f"warning: {shown}: {key} is read only by the datamodule's train_dataloader()")
        assert line.endswith(f"the stages read {READ_BY_NO_STAGE[key]}")


def test_the_warning_goes_to_stderr_and_the_command_runs(monkeypatch, capsys):
    import sys

    from gastrodistill.cli.override_keys import check_override_keys

    ran = []
    command = check_override_keys(CONF_DIR)(lambda: ran.append(True))
    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", "distill.ipc=2", "data.batch_size=64"])
    command()
    out = capsys.readouterr()
    assert ran == [True] and out.out == ""
    assert out.err.startswith("warning: data.batch_size: data.batch_size is read only by the datamodule's ")
    assert out.err.count("\n") == 1


def test_the_keys_named_instead_exist(compose_cfg):
    import re

    from omegaconf import OmegaConf

    from gastrodistill.cli.override_keys import READ_BY_NO_STAGE

    cfg = compose_cfg([])
    for unread, instead in READ_BY_NO_STAGE.items():
        assert OmegaConf.select(cfg, unread, default="absent") != "absent"
        named = re.findall(r"\b(?:distill|eval)\.[a-z_.]+[a-z]", instead)
        assert len(named) >= 2
        for key in named:
            assert OmegaConf.select(cfg, key, default="absent") != "absent", key


def test_a_list_item_is_a_key_only_at_an_index_the_list_has(compose_cfg):
    """An index at or past the list's end, or a name in its place, is no key: the line names it (mutants:
    ``<=`` the list's length raised IndexError, a name read as an index raised ValueError)."""
    n = len(compose_cfg([]).reproduce.distill_modes)
    assert unknown_key_message([f"reproduce.distill_modes.{n - 1}=hard"], CONF_DIR) is None
    for item in (str(n), "first"):
        key = f"reproduce.distill_modes.{item}"
        assert unknown_key_message([f"{key}=hard"], CONF_DIR).startswith(
            f"error: {key}=hard: the config has no key '{key}'; did you mean reproduce.distill_modes? "
        )


def test_a_key_below_a_top_level_option_that_is_off_says_to_set_it_whole(user_config_dir):
    """A null value at the top of the user's own config (mutant: prefixes of one part skipped), with the
    general advice for a null setting that may be a value or a node."""
    (user_config_dir / "myrun.yaml").write_text("defaults:\n  - config\n  - _self_\nmy_option: null\n")
    text = unknown_key_message(["-cd", str(user_config_dir), "-cn", "myrun", "my_option.size=3"], CONF_DIR)
    assert text == (
        "error: my_option.size=3: my_option is null in this config, so it has no key 'my_option.size': "
        "set my_option itself (my_option=<value>), or, if it takes a node, the whole node, e.g. "
        "'my_option={key: value, ...}' (the outer quotes for the shell)"
    )


def test_a_key_below_a_null_number_is_not_told_that_the_number_is_a_node(compose_cfg):
    """``reproduce.num_threads`` is a null thread count: a key below it is told to set the count itself,
    not a ``{_target_: ...}`` node (the advice every null setting got before)."""
    assert compose_cfg([]).reproduce.num_threads is None
    text = unknown_key_message(["reproduce.num_threads.x=1"], CONF_DIR)
    assert "set reproduce.num_threads itself (reproduce.num_threads=<value>)" in text
    assert "_target_" not in text


def test_a_relative_config_dir_is_read_from_the_working_folder(user_config_dir, monkeypatch):
    """``-cd conf`` as Hydra reads it, from the working folder (mutant: left relative, the composition
    failed and the check stood aside unsaid)."""
    monkeypatch.chdir(user_config_dir.parent)
    text = unknown_key_message(["-cd", user_config_dir.name, "-cn", "myrun", "my_notee=bye"], CONF_DIR)
    assert text.startswith("error: my_notee=bye: the config has no key 'my_notee'; did you mean my_note?")


def test_a_hydra_already_running_is_left_alone():
    """Inside a running Hydra the check answers nothing and leaves it initialised (mutant: it composed,
    and cleared the running Hydra on the way out)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        assert unknown_key_message(["distill.ipcc=3"], CONF_DIR) is None
        assert GlobalHydra.instance().is_initialized()
    GlobalHydra.instance().clear()


def test_a_swept_option_that_turns_a_node_off_gets_the_whole_node_advice():
    """``distill.dsa`` is a node under experiment=cpu and null under experiment=tiny: the key is looked up
    in the config that lacks it (mutant: in the first of the sweep, where the node is on)."""
    text = unknown_key_message(["-m", "experiment=cpu,tiny", "distill.dsa.shift_px=4"], CONF_DIR)
    assert text.startswith(
        "error: distill.dsa.shift_px=4: distill.dsa is null (off) in this config, so it has no key "
        "'distill.dsa.shift_px': set it as a whole node, e.g. 'distill.dsa={_target_: "
    )


def test_the_listing_names_the_choices_of_the_config_that_lacks_the_key():
    """``{choices}`` in the listing becomes the group choices of the swept config without the key
    (mutant: of the first config of the sweep, which has it)."""
    text = unknown_key_message(
        ["-m", "data=npz,digits", "data.path=x.npz"], CONF_DIR, listing="`cmd {choices}--cfg job` lists"
    )
    assert text == (
        "error: data.path=x.npz: the config with data=digits has no key 'data.path' (`cmd data=digits --cfg "
        "job` lists; a key of your own is added with +data.path=x.npz)"
    )


def test_a_node_given_whole_with_several_new_keys_names_the_first_in_order():
    """The keys the preset's node lacks are named in sorted order, the first of them (mutant: the last)."""
    node = "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, scale: 2, rotate: 10}"
    text = unknown_key_message(["experiment=cpu", node], CONF_DIR)
    assert text.startswith(f"error: {node}: the config's distill.dsa has no key 'rotate', and a node")
    assert text.endswith("to add one key: +distill.dsa.rotate=...")


def test_the_config_groups_are_the_folders_with_options_of_every_config_folder(tmp_path):
    """Options of one group from two folders together, sorted; folders without a .yaml option, Hydra's own
    and private ones (``_x``) are no groups (mutants: the last folder's options only, hydra, empty)."""
    from gastrodistill.cli.override_keys import config_groups

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, name in ((a / "data", "x"), (b / "data", "w"), (a / "hydra", "h"), (a / "_private", "p")):
        folder.mkdir(parents=True)
        (folder / f"{name}.yaml").write_text("k: 1\n")
    (a / "notes").mkdir()
    (a / "notes" / "README.md").write_text("no option\n")
    assert config_groups([str(a), str(b)]) == {"data": ["w", "x"]}
    assert "did you mean" not in unknown_key_message(["hydr=x"], CONF_DIR)  # no hydra=<default>


@pytest.mark.parametrize(
    ("argv", "multirun"),
    [
        (["-m"], True),
        (["--multirun"], True),
        (["hydra.mode=MULTIRUN"], True),
        (["++hydra.mode=multirun"], True),
        (["+hydra.mode='MULTIRUN'"], True),
        (['hydra.mode = "MultiRun"'], True),
        (["hydra.mode=RUN"], False),
        (["seed=1,2", "-c", "job"], False),
    ],
)
def test_a_multirun_is_told_in_every_spelling(argv, multirun):
    """Mutants: case kept, the ``+``/``++`` prefix kept."""
    from gastrodistill.cli.override_keys import is_multirun

    assert is_multirun(argv) is multirun


def test_values_quoting_cannot_fix_are_left_to_hydra_and_every_path_key_is_quoted():
    """An unclosed quote, and a value whose quoted form does not parse either (a final backslash escapes
    the closing quote), keep Hydra's message; ``paths.*`` keys, ``++``-prefixed too, get the quoting
    (mutants: quoted values advised, unparsable advice given, ``paths.*`` or ``++paths.*`` no path)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert unknown_key_message(['paths.data_root="/data/Hôpital'], CONF_DIR) is None
    assert unknown_key_message(["data=npz", "data.path=/d/a (1)\\"], CONF_DIR) is None
    for text in ("paths.data_root=/data/my data (1)", "++paths.data_root=/data/run (2)"):
        key, _, value = text.partition("=")
        assert unknown_key_message([text], CONF_DIR) == (
            f"error: {text}: Hydra's override grammar cannot read this value unquoted (spaces, parentheses, "
            f"commas and the like); write it as '{key}=\"{value}\"' (the outer quotes for the shell)"
        )
        (parsed,) = OverridesParser.create().parse_overrides([f'{key}="{value}"'])
        assert parsed.value() == value


def test_two_run_modes_means_two_different_ones_outside_flag_values():
    """A flag's value is no mode (``-cn -m``), a mode given twice is one, and the --cfg advice is for a
    multirun only (mutants: values read as flags, repeats counted, the advice for any --cfg)."""
    from gastrodistill.cli.override_keys import mode_flags_message

    assert mode_flags_message(["-cn", "-m", "--cfg", "job"]) is None
    assert mode_flags_message(["-m", "--multirun", "seed=0,1"]) is None
    assert mode_flags_message(["--cfg", "job", "--info"]) == (
        "error: --cfg and --info cannot be combined: Hydra does one of --run, --multirun, --cfg, --info and "
        "--shell-completion at a time; keep one of them"
    )


def test_the_checks_stand_aside_for_another_config_path_and_use_the_given_folder(tmp_path):
    """With ``-cp`` the config's groups are another's: no group chosen twice and no warning (mutant: the
    overrides read anyway); the groups are the given folder's (mutant: the bundled config's)."""
    from gastrodistill.cli.override_keys import repeated_key_message, unread_override_warnings

    assert repeated_key_message(["-cp", "/elsewhere", "experiment=tiny", "experiment=cpu"]) is None
    assert unread_override_warnings(["--config-path", "/elsewhere", "data.batch_size=1"]) == []
    (tmp_path / "site").mkdir()
    assert repeated_key_message(["site=a", "site=b"], str(tmp_path)) == (
        "error: site is chosen twice (site=a, then site=b); Hydra would keep the last without a word: "
        "give it once"
    )
    assert repeated_key_message(["site=a", "site=b"]) is None  # no group of the bundled config


def test_the_decorator_composes_its_own_config_name(tmp_path, monkeypatch, capsys):
    """``check_override_keys(folder, config_name=...)`` checks the keys of that primary config (mutant: of
    ``config``, which the folder lacks: the check stood aside and the command ran)."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli.override_keys import check_override_keys

    (tmp_path / "main.yaml").write_text("my_note: hello\n")
    ran = []
    command = check_override_keys(str(tmp_path), config_name="main")(lambda: ran.append(True))
    monkeypatch.setattr(sys, "argv", ["cmd", "my_notee=1"])
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as info:
        command()
    assert info.value.code == 1 and ran == []
    assert capsys.readouterr().err.startswith(
        "error: my_notee=1: the config has no key 'my_notee'; did you mean my_note?"
    )
    monkeypatch.setattr(sys, "argv", ["cmd", "my_note=bye"])
    command()
    assert ran == [True]
