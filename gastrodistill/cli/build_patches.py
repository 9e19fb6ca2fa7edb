"""``gastrodistill-patches``: build (or find up to date) the patch store of ``data``.

    gastrodistill-patches                                   # synthetic default data, 64 px storage
    gastrodistill-patches paths.data_root=/my/xrays data.storage_size=null   # own data, paper's 299 px

Prints where the store is and how many patches of each class each split holds.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import CommandError, friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.data.gastric import GastricPatchDataModule
from gastrodistill.data.labelling import CLASS_NAMES
from gastrodistill.data.patch_store import grey_level_report
from gastrodistill.data.synthetic.generator import check_synthetic_collection
from gastrodistill.utils.run_info import save_run_info


def summary_table(meta: dict) -> str:
    """Patches per split and class, plus patients per split, as a fixed-width table."""
    head = f"{'split':<6} {'patients':>8} " + " ".join(f"{c:>14}" for c in CLASS_NAMES) + f" {'total':>9}"
    lines = [head, "-" * len(head)]
    for split, counts in meta["counts"].items():
        total = sum(counts.values())
        lines.append(
            f"{split:<6} {meta['n_patients'][split]:>8} "
            + " ".join(f"{counts[c]:>14}" for c in CLASS_NAMES)
            + f" {total:>9}"
        )
    levels, few = grey_level_report(meta)
    lines.append(levels)
    lines += [f"WARNING: {w}" for w in few]
    return "\n".join(lines)


def run(cfg: DictConfig) -> Path:
    """Build the store of ``cfg.data``, record the run, print a summary; returns the store folder."""
    check_synthetic_collection(cfg)  # the collection on disk is the one this config describes
    dm: GastricPatchDataModule = hydra.utils.instantiate(cfg.data)
    if not isinstance(dm, GastricPatchDataModule):
        raise CommandError(
            f"gastrodistill-patches builds gastric patch stores (data=gastric); data={type(dm).__name__} "
            "needs no store: run gastrodistill-distill or gastrodistill-reproduce with it directly"
        )
    dm.prepare_data()
    dm.setup()
    store = dm.store
    meta = store.meta
    save_run_info(
        cfg.paths.output_dir,
        cfg,
        extra={"patch_store": {"content_hash": meta["content_hash"], "shape": meta["shape"]}},
    )
    g = meta["geometry"]
    print(f"patch store: {store.path}")
    print(
        f"{meta['shape'][0]} patches of {g['patch_size']} px (overlap {g['overlap']}) stored at "
        f"{meta['storage_size']} px, {meta['bytes'] / 1e6:.1f} MB, from {meta['n_images']} images"
    )
    print(summary_table(meta))
    return store.path


@check_override_keys(CONF_DIR)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-patches``: :func:`run` on the composed config."""
    run(cfg)


if __name__ == "__main__":
    main()
