"""A command-line override of a key the config does not have: named, with the nearest keys, before Hydra.

Hydra answers ``distill.ipcc=3`` with "To append to your config use +distill.ipcc=3", which is the wrong
advice for a typo: the run would then ignore the value. :func:`check_override_keys` (one decorator line
above ``@hydra.main``) composes the config with the command line's group choices (``data=npz``,
``experiment=cpu``; about 0.2 s), looks up every plain ``key=value`` override in it and, for a key that
is not there, prints one line naming it and the closest existing keys (``difflib``), then exits with
status 1 before Hydra starts. A group option that no config folder has (``data=nzp``) is named the same
way, with the group's options (:func:`missing_option_message`), unless a search path adds folders the
check does not read (``hydra.searchpath`` on the command line or in a primary config). Overrides Hydra
treats specially are left to Hydra: ``+key``/``++key``/``~key``, ``hydra.*``, nested groups, and anything
the override parser or the composition refuses.

Hydra's own flags are honoured: ``-cn``/``--config-name`` (your primary config) and ``-cd``/
``--config-dir`` (your config folder, searched beside the bundled one) are composed as Hydra would; a
sweep over group options (``-m distill=soft_cpu,hard_cpu``) is composed once per combination (up to
:data:`MAX_SWEEP_COMBINATIONS`); the check stands aside for ``-sc``/``--shell-completion`` (its
``install=bash`` is no override) and ``-cp``/``--config-path``.

An override of a key that every data group has for the datamodule's own ``train_dataloader()`` but no
stage reads (``data.batch_size``, ``data.augment``: :data:`READ_BY_NO_STAGE`) is warned of, naming the keys
the stages read instead, and the command runs.

The same decorator refuses, in one line, an output folder given on the command line that cannot be
written (``paths.output_dir=afile/sub``; :func:`gastrodistill.cli.output_folder.command_line_output_problem`).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gastrodistill.cli.errors import EXIT_STATUS
from gastrodistill.utils.values import hydra_quoted


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a plain container (``to_container``), parents included (``distill``,
    ``distill.ipc``, ...); list items as their index."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        key = f"{prefix}{k}"
        yield key
        yield from _dotted_keys(v, f"{key}.")


#: Nodes that are null (off) by default and are set as a whole, with an example of setting one.
NULL_NODE_EXAMPLES = {
    "data.zca": "'data.zca={_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 9}'",
    "distill.dsa": "'distill.dsa={_target_: gastrodistill.distillation.augment.DSA, shift_px: 8}'",
}


def _null_parent(node: Any, key: str) -> str | None:
    """The longest proper prefix of the dotted ``key`` whose value in ``node`` is null (an option that is
    off, set as a whole node), or ``None``."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if _value(node, prefix) is None:
            return prefix
    return None


#: What :func:`_value` gives for a key the tree does not hold.
_ABSENT = object()


def _value(node: Any, key: str) -> Any:
    """The value of the dotted ``key`` (list items by index) in the plain tree ``node``, else ``_ABSENT``."""
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def _has_key(node: Any, key: str) -> bool:
    return _value(node, key) is not _ABSENT


#: Flags after which the check stands aside: shell completion (``-sc install=bash``) and a replaced
#: primary config path.
STAND_ASIDE_FLAGS = ("-sc", "--shell-completion", "-cp", "--config-path")
#: Hydra's flags that take a value (the next argument, or ``--flag=value``): never overrides themselves.
VALUE_FLAGS = ("-cn", "--config-name", "-cd", "--config-dir", "-p", "--package", "--experimental-rerun")
#: A sweep over group options is composed for at most this many combinations of them.
MAX_SWEEP_COMBINATIONS = 16


def split_command_line(argv: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """Hydra's command line as ``(overrides, flags)``: ``flags`` maps ``-cn``/``-cd`` and their long forms to
    their values. None when the check should stand aside (:data:`STAND_ASIDE_FLAGS`)."""
    overrides: list[str] = []
    flags: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in STAND_ASIDE_FLAGS:
            return None
        if name in VALUE_FLAGS and arg.startswith("-"):
            flags[name] = value if eq else next(args, "")
        elif not arg.startswith("-") and (eq or arg.startswith("~")):  # ~key deletes without a value
            overrides.append(arg)
    return overrides, flags


def command_line_config(
    argv: list[str], config_name: str = "config"
) -> tuple[list[str], str, str | None] | None:
    """Hydra's command line ``argv`` as ``(overrides, primary config name, config folder)``: the name is
    ``-cn``/``--config-name`` or ``config_name``, the folder ``-cd``/``--config-dir`` resolved to an absolute
    path, or None when not given. None when the check should stand aside (:func:`split_command_line`)."""
    split = split_command_line(argv)
    if split is None:
        return None
    args, flags = split
    user_dir = flags.get("-cd") or flags.get("--config-dir")
    name = flags.get("-cn") or flags.get("--config-name") or config_name
    return args, name, str(Path(user_dir).resolve()) if user_dir else None


def unknown_key_message(
    overrides: list[str],
    conf_dir: str,
    config_name: str = "config",
    listing: str = "`--cfg job` lists every key",
) -> str | None:
    """The error line for the first plain override whose key the composed config lacks, else None.

    ``overrides``: the command line's arguments (Hydra's flags are read as in :func:`split_command_line`);
    ``listing``: how the command shows its keys, named in the message; ``{choices}`` in it becomes the
    group choices of the config that lacks the key (``data=npz ``), for a command that lists another's
    config. Returns None whenever the question
    cannot be answered here (unparsable overrides, a composition error, a flag the check stands aside
    for): Hydra then reports.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    command = command_line_config(overrides, config_name)
    if command is None:
        return None
    args, config_name, user_dir = command
    parser = OverridesParser.create()
    multirun = is_multirun(overrides)
    try:
        parsed = parser.parse_overrides(args)
    except Exception:  # noqa: BLE001 - Hydra's own message is the right one for a malformed override ...
        return unquoted_text_message(args, parser, multirun)  # ... but for a value it reads only quoted
    if not multirun:
        text = sweep_without_multirun_message(args, parsed, conf_dir, config_name, user_dir)
        if text is not None:
            return text
    groups: list[list[str]] = []  # per group override, the texts of its choices (several for a sweep)
    values = []
    dirs = [conf_dir, *([user_dir] if user_dir else [])]
    searched = not _extra_search_path(args, dirs, config_name)  # options of other folders: Hydra's to say
    for text, o in zip(args, parsed, strict=True):
        key = o.key_or_group
        hydra_own = key.split("/")[0].split(".")[0] == "hydra"  # hydra.run.dir, hydra/launcher=...
        if o.is_add() or o.is_force_add() or o.is_delete() or hydra_own or o.package:
            continue
        if "/" in key or any((Path(d) / key).is_dir() for d in dirs):  # a/b=c always names a group
            if not o.is_sweep_override():
                groups.append([text])
                options = [o.value()]
            else:
                try:
                    options = list(o.sweep_string_iterator())
                except Exception:  # noqa: BLE001 - glob() and other sweeps the check cannot expand
                    return None
                groups.append([f"{key}={v}" for v in options])
            for option in options if searched else ():
                missing = missing_option_message(key, option, dirs)
                if missing is not None:
                    return missing
        else:
            values.append((text, key, o))
    if not values:
        return None
    if GlobalHydra.instance().is_initialized():  # never disturb a Hydra that is already running
        return None
    # Hydra searches the bundled folder before the -cd one: the primary config is the bundled one when it
    # exists there (the user's file of that name is shadowed), else the user's
    primary, extra = conf_dir, user_dir
    if user_dir and not (Path(conf_dir) / f"{config_name}.yaml").is_file():
        if _shadowed(user_dir, conf_dir):
            return None  # composed from the user's folder first, its own config.yaml would wrongly win
        primary, extra = user_dir, conf_dir
    combinations = list(itertools.islice(itertools.product(*groups), MAX_SWEEP_COMBINATIONS))
    trees = []
    for choice in combinations:
        tree = _composed_tree(primary, config_name, extra, list(choice))
        if tree is None:
            return None
        trees.append(tree)
    known = sorted({k for tree in trees for k in _dotted_keys(tree)})
    cleared: set[str] = set()  # keys an earlier override set to null: a node given after that replaces it
    for text, key, o in values:
        lacking = [c for c, tree in zip(combinations, trees, strict=True) if not _has_key(tree, key)]
        if not lacking:
            merged = None if key in cleared else _merged_node_message(text, key, o, trees)
            if merged is not None:
                return merged
            if not o.is_sweep_override() and o.value() is None:
                cleared.add(key)
            continue
        off = _null_parent(trees[combinations.index(lacking[0])], key)
        if off is not None:  # a key below a null value: the value is set whole, not key by key
            if off in NULL_NODE_EXAMPLES:
                return (
                    f"error: {text}: {off} is null (off) in this config, so it has no key {key!r}: set it as "
                    f"a whole node, e.g. {NULL_NODE_EXAMPLES[off]} (the outer quotes for the shell)"
                )
            # a null setting may be a number or a node (reproduce.num_threads, my_option): advice for both
            return (
                f"error: {text}: {off} is null in this config, so it has no key {key!r}: set {off} itself "
                f"({off}=<value>), or, if it takes a node, the whole node, e.g. '{off}={{key: value, ...}}' "
                f"(the outer quotes for the shell)"
            )
        # list items (`reproduce.distill_modes.0`) are no keys to suggest
        names = [k for k in known if k != key and not k.rsplit(".", 1)[-1].isdigit()]
        group_names = config_groups([primary, *([extra] if extra else [])])
        close = difflib.get_close_matches(key, names + sorted(group_names), n=3, cutoff=0.75)
        shown_close = [f"{c}=<{'|'.join(group_names[c])}>" if c in group_names else c for c in close]
        hint = f"; did you mean {' or '.join(shown_close)}?" if close else ""
        where = f" with {' '.join(lacking[0])}" if len(lacking) < len(combinations) else ""
        shown = listing.replace("{choices}", "".join(f"{c} " for c in lacking[0]))
        return (
            f"error: {text}: the config{where} has no key {key!r}{hint} ({shown}; a key of your own is "
            f"added with +{text})"
        )
    return None


def _merged_node_message(text: str, key: str, override: Any, trees: list[Any]) -> str | None:
    """The error line for ``key={...}`` over a node of the config that lacks one of the given keys, else
    None: Hydra merges a node given whole into the one there (it does not put it in its place), refuses
    the keys that node lacks in a multi-line message, and suggests ``+key={...}``, which merges too (a
    docs tester kept the preset's ``distill.dsa`` keys that way). Clearing the node first replaces it."""
    value = override.value()
    if not isinstance(value, dict):  # a sweep's value is a ChoiceSweep, RangeSweep or Glob: not one
        return None
    for tree in trees:
        there = _value(tree, key)
        new = sorted(set(value) - set(there)) if isinstance(there, dict) else []
        if new:
            return (
                f"error: {text}: the config's {key} has no key {new[0]!r}, and a node given whole is merged "
                f"into the one there, not put in its place: to replace it, clear it first: {key}=null "
                f"'{text}' (the outer quotes for the shell); to add one key: +{key}.{new[0]}=..."
            )
    return None


def _extra_search_path(args: list[str], dirs: list[str], config_name: str) -> bool:
    """Whether Hydra will look for config groups beyond ``dirs``: ``hydra.searchpath`` among the overrides
    ``args`` or in a primary config ``<dir>/<config_name>.yaml`` of ``dirs``."""
    if any(a.lstrip("+~").startswith("hydra.searchpath") for a in args):
        return True
    for d in dirs:
        primary = Path(d) / f"{config_name}.yaml"
        if primary.is_file() and "searchpath" in primary.read_text(encoding="utf-8", errors="replace"):
            return True
    return False


def missing_option_message(group: str, option: object, dirs: list[str]) -> str | None:
    """The error line for a top-level config group's option that no config folder of ``dirs`` has
    (``data=nzp``, ``experiment=tinyy``: Hydra answered with its own dozen lines), naming the nearest
    option and all of them; None for an option that exists, a nested group or option (``a/b``), or a
    group without options of its own. Options that a search path or a plugin adds are not seen here: the
    caller skips this when a search path is given (:func:`_extra_search_path`)."""
    if "/" in group or not isinstance(option, str) or "/" in option:
        return None
    options = config_groups(dirs).get(group)  # the one listing of a group's options
    if not options or option.removesuffix(".yaml") in options:  # data=npz.yaml chooses npz, as in Hydra
        return None
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
    hint = f"; did you mean {group}={close[0]}?" if close else ""
    return (
        f"error: {group}={option}: the config group {group!r} has no option {option!r}{hint} (its "
        f"options: {', '.join(options)})"
    )


def config_groups(dirs: list[str]) -> dict[str, list[str]]:
    """The top-level config groups of the config folders ``dirs`` (``experiment``, ``data``, ...) and
    their options (file stems), for a typo of a group's name (``experimnt=cpu``)."""
    out: dict[str, set[str]] = {}
    for d in dirs:
        for group in Path(d).iterdir() if Path(d).is_dir() else ():
            if group.is_dir() and not group.name.startswith(("_", ".")) and group.name != "hydra":
                out.setdefault(group.name, set()).update(p.stem for p in group.glob("*.yaml"))
    return {g: sorted(opts) for g, opts in out.items() if opts}


#: Leaf names of the keys that take a file or folder (besides every ``paths.*`` key).
PATH_LEAVES = frozenset(
    {"path", "root", "dir", "store_root", "resume", "resume_root", "save_dir", "default_root_dir", "log_dir"}
)


def is_multirun(argv: list[str]) -> bool:
    """Whether the command line starts a multirun: ``-m``/``--multirun``, or ``hydra.mode=MULTIRUN`` (also
    with ``+``/``++`` and quotes). A multirun set in a config file is not seen here."""

    def mode(arg: str) -> str:
        return arg.lstrip("+").replace(" ", "").replace('"', "").replace("'", "").lower()

    return any(a in ("-m", "--multirun") or mode(a) == "hydra.mode=multirun" for a in argv)


def _is_path_key(key: str) -> bool:
    """Whether the override key ``key`` (``+``/``~`` prefixes allowed) takes a file or folder: ``paths.*``
    or a leaf of :data:`PATH_LEAVES`."""
    bare = key.lstrip("+~")
    return bare.startswith("paths.") or bare.rsplit(".", 1)[-1] in PATH_LEAVES


def unquoted_text_message(args: list[str], parser: Any, multirun: bool = False) -> str | None:
    """The error line for the first override Hydra cannot parse because its value needs quotes: characters
    outside ASCII (an accented folder name: Hydra's grammar reads only ASCII unquoted), or, in a path
    (``paths.*`` and the keys of :data:`PATH_LEAVES`), spaces, parentheses and commas that quoting makes
    readable; with the quoting that works, quoted again for the shell (``shlex.quote``: an apostrophe in
    the value too). In a sweep (``multirun``) a comma separates values, so each one is quoted apart
    (quoting the whole made one path of them); so are a list's items (``[a b,c]``: quoted whole it became
    one string). None for any other malformed override (Hydra's own message
    then)."""
    for text in args:
        try:
            parser.parse_overrides([text])
        except Exception:  # noqa: BLE001 - this is the one Hydra cannot read
            key, sep, value = text.partition("=")
            if not sep or value.startswith(("'", '"')) or '"' in value:
                return None
            listed = value.startswith("[") and value.endswith("]")  # a list: its items are quoted
            swept = multirun and "," in value and not listed
            if listed:
                quoted = "[" + ",".join(hydra_quoted(v.strip()) for v in value[1:-1].split(",")) + "]"
            else:
                quoted = ",".join(map(hydra_quoted, value.split(","))) if swept else hydra_quoted(value)
            written, whole = shlex.quote(f"{key}={quoted}"), shlex.quote(f"{key}={hydra_quoted(value)}")
            sweep = (
                f" (a sweep over {value.count(',') + 1} values; {whole} for one value holding commas)"
                if swept
                else ""
            )
            if not value.isascii():
                return (
                    f"error: {text}: Hydra reads a value with characters outside ASCII only in quotes; "
                    f"write it as {written}{sweep} (the outer quotes for the shell)"
                )
            if not _is_path_key(key):
                return None  # only a path: "seed=a(b" is a typo, not a value to quote
            try:  # spaces, parentheses, a comma beside them (a file name such as "my data,v2 (1).npz")
                parser.parse_overrides([f"{key}={quoted}"])
            except Exception:  # noqa: BLE001 - quoting does not help: Hydra's own message
                return None
            return (
                f"error: {text}: Hydra's override grammar cannot read this value unquoted (spaces, "
                f"parentheses, commas and the like); write it as {written}{sweep} (the outer quotes for the "
                "shell)"
            )
    return None


def sweep_without_multirun_message(
    args: list[str], parsed: list[Any], conf_dir: str, config_name: str, user_dir: str | None
) -> str | None:
    """The error line for a path override that Hydra parses as a sweep (an unquoted comma, or ``choice``,
    ``range``, ``glob``) in a run that is no multirun, else None: Hydra's own answer is a multi-line
    "Ambiguous value" message. Whether the run is a multirun is asked of the composed config
    (``hydra.mode``: set by ``-m`` callers, an override or the user's own config), so a sweep that Hydra
    runs is never refused; None when it does not compose (Hydra's own message then)."""
    from hydra.core.override_parser.types import ValueType
    from omegaconf import OmegaConf

    found = next(
        (
            (t, o)
            for t, o in zip(args, parsed, strict=True)
            if o.is_sweep_override() and _is_path_key(o.key_or_group)
        ),
        None,
    )
    if found is None:
        return None
    plain = [t for t, o in zip(args, parsed, strict=True) if not o.is_sweep_override()]
    cfg = composed_config(conf_dir, config_name, user_dir, plain, with_hydra=True)
    if cfg is None or "MULTIRUN" in str(OmegaConf.select(cfg, "hydra.mode")).upper():
        return None
    text, o = found
    if o.value_type != ValueType.SIMPLE_CHOICE_SWEEP:  # choice(...), range(...), glob(...)
        return f"error: {text}: a sweep runs with -m (--multirun) only; add -m"
    key, _, value = text.partition("=")
    whole = shlex.quote(f"{key}={hydra_quoted(value)}")
    return (
        f"error: {text}: an unquoted comma separates a sweep's values, which runs with -m only; add -m to "
        f"sweep over them, or write a path holding a comma as {whole} (the outer quotes for the shell)"
    )


def _shadowed(user_dir: str, conf_dir: str) -> bool:
    """Whether the ``-cd`` folder holds a top-level config that the bundled folder also has (Hydra finds
    the bundled one first; a composition from the user's folder as primary would not)."""
    return any((Path(conf_dir) / f.name).is_file() for f in Path(user_dir).glob("*.yaml"))


def composed_config(
    conf_dir: str, config_name: str, user_dir: str | None, overrides: list[str], with_hydra: bool = False
) -> Any:
    """``config_name`` of ``conf_dir`` composed with ``overrides`` (``user_dir``, a ``-cd`` folder, added to
    the search path), as Hydra composes a job's config before its runtime is set (``with_hydra``: with
    Hydra's own node, ``hydra.launcher`` and the rest); None when it does not compose (the job's own error
    then tells)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    searchpath = [f"hydra.searchpath=[file://{user_dir}]"] if user_dir else []
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            return compose(
                config_name=config_name, overrides=[*searchpath, *overrides], return_hydra_config=with_hydra
            )
    except Exception:  # noqa: BLE001 - Hydra's own message, when the job composes it, names the problem
        return None
    finally:
        GlobalHydra.instance().clear()


def _composed_tree(primary: str, config_name: str, extra: str | None, choices: list[str]) -> Any:
    """``config_name`` of the ``primary`` folder composed with ``choices``, ``extra`` (a folder) added to
    the search path, as a plain container; None when it does not compose."""
    from omegaconf import OmegaConf

    cfg = composed_config(primary, config_name, extra, choices)
    return None if cfg is None else OmegaConf.to_container(cfg, resolve=False)


#: Hydra's run modes, of which a command line may give one (Hydra raises a ValueError, a traceback, for two).
MODE_FLAGS = {
    "-r": "--run",
    "--run": "--run",
    "-m": "--multirun",
    "--multirun": "--multirun",
    "-c": "--cfg",
    "--cfg": "--cfg",
    "-i": "--info",
    "--info": "--info",
    "-sc": "--shell-completion",
    "--shell-completion": "--shell-completion",
}


def mode_flags_message(argv: list[str]) -> str | None:
    """The error line for a command line that gives two of Hydra's run modes (``-m ... --cfg job``), else
    None. Flags are read by name (``--cfg=job`` too); values of :data:`VALUE_FLAGS` are skipped."""
    modes: list[str] = []
    args = iter(argv)
    for arg in args:
        name = arg.partition("=")[0]
        if name in VALUE_FLAGS and "=" not in arg:
            next(args, None)
        elif name in MODE_FLAGS and MODE_FLAGS[name] not in modes:
            modes.append(MODE_FLAGS[name])
    if len(modes) < 2:
        return None
    advice = (
        "to see one job's config, drop --multirun and give that job's values with --cfg job "
        "(e.g. distill=hard --cfg job)"
        if {"--multirun", "--cfg"} <= set(modes)
        else "keep one of them"
    )
    return (
        f"error: {' and '.join(modes)} cannot be combined: Hydra does one of --run, --multirun, --cfg, "
        f"--info and --shell-completion at a time; {advice}"
    )


def repeated_key_message(argv: list[str], conf_dir: str | None = None) -> str | None:
    """The error line for a command line that chooses one config group twice with different options
    (``experiment=tiny ... experiment=cpu``; ``+group`` counts as ``group``), else None. Hydra keeps the
    last choice without a word, so that line started the 17-minute cpu preset (a breaker's finding). The
    groups are the folders of ``conf_dir`` (default: the bundled config). A plain value given twice
    (``seed=1 seed=2``) is left to Hydra, whose last value wins: scripts append their own overrides to a
    base list that way. Flags and their values (:func:`split_command_line`) are not overrides."""
    from gastrodistill.cli import CONF_DIR

    split = split_command_line(argv)
    if split is None:
        return None
    groups = {p.name for p in Path(conf_dir or CONF_DIR).iterdir() if p.is_dir()}
    seen: dict[str, str] = {}
    for text in split[0]:
        key, sep, value = text.partition("=")
        bare = key.lstrip("+")
        if not sep or bare not in groups:
            continue
        if bare in seen and seen[bare].partition("=")[2] != value:
            return (
                f"error: {bare} is chosen twice ({seen[bare]}, then {text}); Hydra would keep the last "
                "without a word: give it once"
            )
        seen[bare] = text
    return None


#: Keys every data group has for the datamodule's own ``train_dataloader()`` (a Lightning script of the
#: user's), which no stage of the pipeline reads, with the keys the stages read instead.
READ_BY_NO_STAGE = {
    "data.batch_size": (
        "distill.batch_real (real images per outer step), eval.baselines.real.batch_size (the all-data "
        "network and the audit's shadows) or eval.standard.batch_size (the standard schedule)"
    ),
    "data.augment": (
        "distill.dsa (the distillation), eval.baselines.real.augment (the all-data network), "
        "eval.standard.augment or eval.replay_augment (the distilled sets' networks)"
    ),
}


def unread_override_warnings(argv: list[str]) -> list[str]:
    """A warning line for each command-line override (plain, ``+``/``++``, or a sweep) of a key of
    :data:`READ_BY_NO_STAGE` or below it (``data.augment.p=1``): the pipeline's commands read neither, so
    such a run (or every job of such a sweep) equals the one without it. Hydra's flags are read as in
    :func:`split_command_line`; an empty list when the check stands aside."""
    split = split_command_line(argv)
    if split is None:
        return []
    lines = []
    for arg in split[0]:
        key = arg.partition("=")[0].lstrip("+~")
        for unread, instead in READ_BY_NO_STAGE.items():
            if key == unread or key.startswith(f"{unread}."):
                lines.append(
                    f"warning: {arg.partition('=')[0]}: {unread} is read only by the datamodule's "
                    f"train_dataloader() (your own Lightning scripts), by no stage of this command; the "
                    f"stages read {instead}"
                )
    return lines


def check_override_keys(
    conf_dir: str,
    config_name: str = "config",
    check_values: Callable[[Any, Sequence[str], bool], None] | None = None,
    check_together: Callable[[list[tuple[str, Any]]], None] | None = None,
) -> Callable:
    """Decorator for a ``@hydra.main`` function: refuse two of Hydra's run modes at once
    (:func:`mode_flags_message`), a config group chosen twice (:func:`repeated_key_message`) and an
    override of an unknown key (module docstring); with ``check_values`` (the command's value checks on a
    composed config), a sweep (``-m``) whose job would refuse a value, before its first job starts
    (:func:`gastrodistill.cli.sweep_check.sweep_problem`, which also runs ``check_together`` on the jobs
    side by side)."""

    def decorate(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from gastrodistill.cli.output_folder import command_line_output_problem
            from gastrodistill.cli.sweep_check import sweep_problem

            text = (
                mode_flags_message(sys.argv[1:])
                or repeated_key_message(sys.argv[1:], conf_dir)
                or unknown_key_message(sys.argv[1:], conf_dir, config_name)
                or command_line_output_problem(sys.argv[1:])  # before Hydra makes its run folder
                or sweep_problem(sys.argv[1:], conf_dir, config_name, check_values, check_together)
            )
            if text is not None:
                print(text, file=sys.stderr)
                raise SystemExit(EXIT_STATUS)
            for line in unread_override_warnings(sys.argv[1:]):
                print(line, file=sys.stderr)
            return main(*args, **kwargs)

        return wrapper

    return decorate
