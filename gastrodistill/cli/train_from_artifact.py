"""``gastrodistill-train-from-artifact``: a receiving site trains from an artifact and tests on its own data.

    gastrodistill-train-from-artifact --artifact soft.zip -- data.root=/site/xrays data.storage_size=64
    gastrodistill-train-from-artifact --artifact artifacts/soft --networks 10 --schedule standard

Arguments after the options are Hydra overrides of the root config (the site's ``data``, ``seed``...).
Writes ``receive.json`` and ``receive.md`` (site metrics beside the card's published ones).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import CommandError, check_root_values, report_errors
from gastrodistill.cli.output_folder import check_output_folder
from gastrodistill.utils.run_info import CONFIG_FILE, read_run_config
from gastrodistill.utils.values import omegaconf_literal

if TYPE_CHECKING:
    from omegaconf import DictConfig

EPILOG = """examples:
  gastrodistill-train-from-artifact --artifact soft.zip -- data.root=/site/xrays data.storage_size=64
  gastrodistill-train-from-artifact --artifact artifacts/soft --networks 10 --schedule standard

writes receive.json and receive.md (this site's metrics beside the card's published ones) into
--output, by default outputs/<experiment>/receive/<artifact name>-<first 12 hex digits of the card's
SHA-256>, so that two sites' artifacts of one name keep their own reports; receiving the same artifact
again on the same data replaces its earlier report, and on other data (another data.* setting; data.seed
follows seed, so another seed, whose networks differ, counts too) writes beside it, to <name>-<hash>-2, ..."""


def positive_int(text: str) -> int:
    """``--networks``: an integer >= 1 (argparse prints the message and the usage, exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line of ``gastrodistill-train-from-artifact``: artifact, networks, schedule, output."""
    p = argparse.ArgumentParser(
        prog="gastrodistill-train-from-artifact",
        description="Train fresh networks from a shared distilled-set artifact (folder or .zip) and test "
        "them on this site's own real test patches.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--artifact", required=True, help="artifact folder or .zip (card.json + distilled.safetensors)"
    )
    p.add_argument(
        "--networks",
        type=positive_int,
        default=None,
        help="fresh networks to train, >= 1 (default audit.receive.n_networks)",
    )
    p.add_argument(
        "--schedule", choices=("replay", "standard"), default=None, help="default audit.receive.schedule"
    )
    p.add_argument(
        "--output",
        default=None,
        help="output folder (default outputs/<experiment>/receive/<name>-<card hash>)",
    )
    p.add_argument(
        "overrides", nargs="*", help="Hydra overrides of the root config, e.g. data.root=/site/xrays"
    )
    return p


def compose(overrides: list[str], output: str | None) -> DictConfig:
    """The root config with ``overrides`` and ``paths.output_dir`` set to ``output`` (default
    ``outputs/<experiment>/receive``), taken as it is (not Hydra text). Raises :class:`CommandError` for an
    override Hydra refuses (a misspelt key or option, a bad value), with Hydra's message."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from gastrodistill.cli.override_keys import repeated_key_message, unknown_key_message

    GlobalHydra.instance().clear()
    unknown = repeated_key_message(list(overrides)) or unknown_key_message(  # a typo: named, with the
        list(overrides),  # nearest keys
        CONF_DIR,
        listing="`gastrodistill-distill {choices}--cfg job` lists every key of this config",
    )
    if unknown is not None:
        raise CommandError(unknown.removeprefix("error: "))
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
            if output is None:
                output = str(Path(cfg.paths.root_dir) / "outputs" / str(cfg.experiment_name) / "receive")
    except (HydraException, OmegaConfBaseException) as e:
        raise CommandError(f"the overrides {list(overrides)} do not compose: {e}") from e
    # set on the composed config, not as an override: the path is no Hydra text (spaces, brackets, commas,
    # quotes, letters outside ASCII, ${...} stay as they are)
    cfg.paths.output_dir = omegaconf_literal(output)
    return cfg


def output_owner_problem(output: Path, data: str | None = None) -> str | None:
    """Why a receive report may not be written to ``output`` (the words after the path), or None.

    Refused: a folder that is or lies inside an artifact (one holding ``card.json``: the report's files
    would make it unloadable), the site's data folder or a folder inside it (``data``: the config's
    ``data.root`` or ``data.path``, :func:`~gastrodistill.anonymity.text_check.data_root`; for a data file,
    the folder that holds it), and a folder holding another command's run (Hydra's ``.hydra/``, or a
    ``run_info.json`` of another stage), whose ``config.yaml`` and ``run_info.json`` the report would
    replace, and a folder holding any of the report's files (``sharing.train_from_artifact.REPORT_FILES``)
    without a receive report's ``run_info.json``
    (a project's own ``config.yaml``, replaced without a word before). An earlier receive report's folder
    may be written again."""
    from gastrodistill.sharing.artifact import CARD_FILE
    from gastrodistill.sharing.train_from_artifact import RECEIVE_STAGE, REPORT_FILES

    resolved = output.resolve()
    if data:
        source = Path(data).expanduser().resolve()
        folder = source.parent if source.is_file() else source  # a data file: the folder holding it
        within = folder in resolved.parents and folder == source
        if resolved == folder or within:
            return (
                f"is {'in ' if within else ''}the site's data folder ({folder}); a receive report never "
                "writes beside the data: give a folder of its own"
            )
    for folder in (resolved, *resolved.parents):
        if (folder / CARD_FILE).is_file():
            return (
                f"is inside the artifact {folder} (it holds {CARD_FILE}); a report written there makes it "
                "unloadable: give another folder"
            )
    if (output / ".hydra").is_dir():
        return (
            "holds another command's run (.hydra/), whose config.yaml the report would replace; "
            "give a folder of its own"
        )
    info = output / "run_info.json"
    if info.is_file():
        try:
            stage = json.loads(info.read_text()).get("stage")
        except (OSError, ValueError, AttributeError):
            stage = None
        if stage != RECEIVE_STAGE:
            run = f"an earlier {stage} run" if isinstance(stage, str) else "another run"
            return (
                f"holds the run record of {run} (run_info.json, config.yaml), which the report would "
                "replace; give a folder of its own"
            )
        return None
    own = [name for name in REPORT_FILES if (output / name).exists()]
    if own:  # no receive report's run record: these are someone's own files (a project's config.yaml)
        return (
            f"holds {', '.join(own)} that no receive report wrote (no run_info.json of one beside it), "
            "which the report would replace; give a folder of its own"
        )
    return None


def check_site_data_root(cfg: DictConfig) -> None:
    """Refuse a ``data.root`` that is not a folder with the advice that fits a receiving site: to point it
    at the site's own data. The data stage's own message for it also offers to write the synthetic
    collection there (``gastrodistill-generate``), the pipeline's commands' way to data, not a receiver's.
    Raises :class:`CommandError`."""
    data = cfg.get("data")
    root = data.get("root") if data is not None else None
    if root is None or Path(str(root)).expanduser().is_dir():
        return
    raise CommandError(
        f"data.root {root} is not a folder; point data.root at this site's own data folder, the data the "
        "artifact's networks are tested on (gastrodistill-train-from-artifact --artifact soft.zip -- "
        "data.root=/site/xrays)"
    )


def default_folder_name(artifact: str) -> str:
    """``<artifact name>-<first 12 hex digits of card_sha256>``: the folder under ``receive/`` when no
    ``--output`` is given. Two hospitals' artifacts are often both called ``soft``; by name alone the second
    report replaced the first. Raises :class:`ArtifactError` for an artifact that does not load."""
    from gastrodistill.sharing.artifact import load_artifact

    _, card = load_artifact(artifact)
    # `--artifact .` or `..` names that folder; a symbolic link keeps its own name (abspath keeps links)
    name = Path(os.path.abspath(artifact)).name.removesuffix(".zip")
    return f"{name}-{str(card['card_sha256'])[:12]}"


def _received_data(data: Any) -> Any:
    """The part of a resolved ``data`` config that a received artifact's networks see: all of it but
    ``zca`` (they start with the card's filter, whatever ``data.zca`` says), its ``root`` and ``path``
    written alike (``/site/xrays/`` and ``/site/xrays`` are one folder)."""
    if not isinstance(data, dict):
        return data
    same = {k: v for k, v in data.items() if k != "zca"}
    for key in ("root", "path"):
        if isinstance(same.get(key), str) and same[key]:
            same[key] = os.path.normpath(same[key])
    return same


def default_folder(base: Path, artifact: str, data: Any) -> Path:
    """The default report folder of ``artifact`` under ``base`` (``outputs/<experiment>/receive``):
    :func:`default_folder_name`, or ``<that>-2``, ``-3``, ... when that folder holds a report on other data
    than ``data`` (the resolved ``data`` config): receiving one artifact on two sites' data kept only the
    second report (found by a breaker). The same data again replaces its own report, whatever its unused
    ``data.zca``. A report whose ``config.yaml`` cannot be read counts as other data (kept)."""
    name = default_folder_name(artifact)
    folder, n = base / name, 2
    while (folder / CONFIG_FILE).is_file():
        saved = read_run_config(folder)
        if saved is not None and _received_data(saved.get("data")) == _received_data(data):
            break
        folder, n = base / f"{name}-{n}", n + 1
    return folder


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train and test; returns the result (``main`` is the console entry point)."""
    import hydra

    from gastrodistill.anonymity.config_check import check_audit_config
    from gastrodistill.evaluation.jobs import validate
    from gastrodistill.sharing.train_from_artifact import render, train_from_artifact

    args = parser().parse_args(argv)
    if args.output is not None and not args.output.strip():
        raise CommandError(
            "--output is empty; give a folder of its own, or leave --output out for the default "
            "outputs/<experiment>/receive/<name>-<card hash>"
        )
    cfg = compose(args.overrides, args.output)
    check_root_values(cfg)  # seed, audit.receive.* and eval.* before any network trains
    check_audit_config(cfg.audit)
    validate(cfg.eval)
    output = Path(cfg.paths.output_dir)
    if args.output is None:
        from omegaconf import OmegaConf

        output = default_folder(output, args.artifact, OmegaConf.to_container(cfg.data, resolve=True))
    from gastrodistill.anonymity.text_check import data_root

    given = "--output" if args.output is not None else "the default output folder (no --output given)"
    problem = output_owner_problem(output, data_root(cfg))  # first: the write check makes folders there
    if problem is not None:
        raise CommandError(f"{given} {output} {problem}")
    # a file, a path below a file, a folder that cannot be made: before any work
    check_output_folder(output, given)
    from gastrodistill.data.synthetic.generator import check_synthetic_collection

    check_synthetic_collection(cfg)  # the collection on disk is the one this config describes
    dm = hydra.utils.instantiate(cfg.data)
    check_site_data_root(cfg)  # after the data's own values are checked, before its files are read
    if getattr(dm, "zca", None) is not None:
        logging.getLogger(__name__).warning(
            "data.zca is not used here: the received networks start with the ZCA filter the card carries "
            "(architecture.zca_kernel), or none, as the sending site distilled the set"
        )
    result = train_from_artifact(
        args.artifact, cfg, dm, output, n_networks=args.networks, schedule=args.schedule
    )
    print(render(result))
    print(f"written to {output}")
    return result


@report_errors(outputs="--output ..., or paths.root_dir=... for the default one")
def main(argv: list[str] | None = None) -> None:
    """Entry point of ``gastrodistill-train-from-artifact``: :func:`run`, errors reported as messages."""
    run(argv)


if __name__ == "__main__":
    main()
