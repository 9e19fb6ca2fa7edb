"""``gastrodistill-train-from-artifact``: a receiving site trains from an artifact and tests on its own data.

    gastrodistill-train-from-artifact --artifact soft.zip -- data.root=/site/xrays data.storage_size=64
    gastrodistill-train-from-artifact --artifact artifacts/soft --networks 10 --schedule standard

Arguments after the options are Hydra overrides of the root config (the site's ``data``, ``seed``...).
Writes ``receive.json`` and ``receive.md`` (site metrics beside the card's published ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import report_errors


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gastrodistill-train-from-artifact",
        description="Train fresh networks from a shared distilled-set artifact (folder or .zip) and test "
        "them "
        "on this site's own real test patches.",
    )
    p.add_argument(
        "--artifact", required=True, help="artifact folder or .zip (card.json + distilled.safetensors)"
    )
    p.add_argument(
        "--networks", type=int, default=None, help="fresh networks to train (default audit.receive)"
    )
    p.add_argument(
        "--schedule", choices=("replay", "standard"), default=None, help="default audit.receive.schedule"
    )
    p.add_argument(
        "--output", default=None, help="output folder (default outputs/<experiment>/receive/<name>)"
    )
    p.add_argument(
        "overrides", nargs="*", help="Hydra overrides of the root config, e.g. data.root=/site/xrays"
    )
    return p


def compose(overrides: list[str], output: str | None):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
        if output is None:
            output = str(Path(cfg.paths.root_dir) / "outputs" / str(cfg.experiment_name) / "receive")
        return hydra_compose(config_name="config", overrides=[*overrides, f"paths.output_dir={output}"])


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train and test; returns the result (``main`` is the console entry point)."""
    import hydra

    from gastrodistill.sharing.train_from_artifact import render, train_from_artifact

    args = parser().parse_args(argv)
    cfg = compose(args.overrides, args.output)
    output = Path(cfg.paths.output_dir)
    if args.output is None:
        output = output / Path(args.artifact).name.removesuffix(".zip")
    dm = hydra.utils.instantiate(cfg.data)
    result = train_from_artifact(
        args.artifact, cfg, dm, output, n_networks=args.networks, schedule=args.schedule
    )
    print(render(result))
    print(f"written to {output}")
    return result


@report_errors
def main(argv: list[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
