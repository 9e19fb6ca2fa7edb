"""What ``SUMMARY.md`` says besides the timings: the recipe, the targets as measured, where outputs went."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from gastrodistill.data.zca import zca_settings

if TYPE_CHECKING:
    import pandas as pd

#: Outputs outside the run folder, named in ``SUMMARY.md`` by the config key that holds them.
OUTSIDE_KEYS = {"data": "paths.data_root", "patch store": "data.store_root"}


def _augment_text(node: Any) -> str:
    """The DSA's operations as built (its defaults included, e.g. the flip), or the node's own keys."""
    from gastrodistill.distillation.augment import DSA

    obj = hydra.utils.instantiate(node)
    if isinstance(obj, DSA):
        ops = ("flip", "rotate", "scale", "translate", "brightness", "contrast", "shift_px")
        words = {"flip": "flip", "shift_px": f"shift {obj.shift_px} px"}
        return ", ".join(words.get(k) or f"{k} {getattr(obj, k):g}" for k in ops if getattr(obj, k)) or "none"
    return ", ".join(f"{k} {v}" for k, v in node.items() if not str(k).startswith("_")) or str(
        node.get("_target_")
    )


def sets_sections(out: Path, modes: list[str]) -> dict[str, dict[str, Any]]:
    """The ``distill`` section each set of ``modes`` in the run folder ``out`` records (its
    ``distill/<mode>/config.yaml``), by mode; a set without a readable one is left out."""
    from gastrodistill.utils.run_info import read_run_config

    sections = {}
    for mode in modes:
        saved = read_run_config(Path(out) / "distill" / mode)
        if saved is not None and isinstance(saved.get("distill"), dict):
            sections[mode] = saved["distill"]
    return sections


def sets_distill(out: Path, modes: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The ``distill`` section the run folder ``out``'s distilled sets were made with (each set's
    ``distill/<mode>/config.yaml``), and a note naming the sets whose section differs from the first's
    (beyond ``mode`` and the keys that are no recipe, ``over_runs.distill_recipe``); ``(None, None)`` when no
    set records one. A command that resumed a set with more outer steps, or ran later stages with other
    values, is not the recipe of the sets in the folder (a tester's finding: ``SUMMARY.md`` gave 3 outer
    steps for 7-step sets)."""
    from gastrodistill.evaluation.over_runs import distill_recipe

    sections = sets_sections(out, modes)
    if not sections:
        return None, None
    (first, section), *rest = sections.items()
    recipe = distill_recipe(section)
    other = [m for m, s in rest if distill_recipe(s) != recipe]
    note = (
        f"the {' and '.join(other)} set{'s were' if len(other) > 1 else ' was'} distilled with other "
        f"settings than the {first} set, whose settings the recipe gives (each set's "
        "distill/<mode>/config.yaml)"
        if other
        else None
    )
    return section, note


def recipe_lines(cfg: DictConfig, modes: list[str], distill: dict[str, Any] | None = None) -> list[str]:
    """What a reader comparing runs needs besides the table (from the resolved config; no paths): the data
    (the synthetic generator's name and seed when the run generated it, the patch and storage size), the
    network, the distiller (images, unroll, start, outer loop, augmentation, backend and precision) and the
    evaluation (networks per row, schedules, architectures), and the networks' whitening (``data.zca``).
    ``distill``: the distiller's settings as the sets recorded them (:func:`sets_distill`), in place of
    ``cfg.distill``."""
    from gastrodistill.distillation.texture_matching import TEXTURE_DEFAULTS

    d, ev = (cfg.distill if distill is None else OmegaConf.create(distill)), cfg.get("eval") or {}
    model = {
        k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if not k.startswith("_")
    }
    name = str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]
    t = int(d.steps) * int(d.epochs)
    dm = (d.get("distribution_matching") or {}).get("steps", 0) or 0
    tm = d.get("texture_matching") or {}
    # gastric patches are stored at storage_size (null: their own size); other data keep their image size
    size = (cfg.data.get("storage_size") or cfg.data.patch_size) if "patch_size" in cfg.data else None
    data = str(cfg.data.get("_target_", "?")).rsplit(".", 1)[-1]
    syn = cfg.get("synthetic")
    if syn is not None and size and "generate" in [str(x) for x in cfg.get("stages") or []]:
        data += f", synthetic data {syn.get('name', '?')!r} (generator seed {syn.get('seed', '?')})"
    if size:
        data += f", {cfg.data.patch_size} px patches stored at {size} px"
    window = d.get("window")
    dsa = d.get("dsa")
    augment = "none" if not dsa else _augment_text(dsa)
    clip = d.get("grad_clip_ema")
    zca = zca_settings(cfg.data.get("zca"))
    whitening = (
        f", behind a {zca['kernel_size']} px local ZCA filter of the training split (eps {zca['eps']}, "
        f"{zca['max_windows']} windows of at most {zca['max_images']} images)"
        if zca
        else ""
    )
    lines = [
        f"data: {data}; run seed {cfg.seed}",
        f"network: {name} ({', '.join(f'{k} {v}' for k, v in model.items())}){whitening}",
        f"distillation ({', '.join(modes)}): {int(d.ipc) * int(d.steps)} images per class "
        f"(ipc {d.ipc} x {d.steps} steps); T = {t} inner steps ({d.steps} x {d.epochs} epochs), "
        f"momentum {d.get('inner_momentum', 0.0) or 0.0}, lr_init {d.lr_init}, "
        + (f"a differentiable window of {window} steps" if window else "the whole unroll differentiable")
        + f"; start {d.image_init}"
        + (
            f" + {tm.get('steps')} texture-matching steps ({tm.get('features', 'teacher')} features, "
            f"exaggeration {tm.get('exaggeration', 1.0)}"
            + (f" ± {tm.get('exaggeration_spread')}" if tm.get("exaggeration_spread") else "")
            + (", through the DSA" if tm.get("augment") and d.get("dsa") else "")
            + (
                f"; one k-means cluster per image for {', '.join(map(str, tm.get('cluster_classes')))}, of "
                f"at most {tm.get('cluster_max_patches', TEXTURE_DEFAULTS['cluster_max_patches'])} patches "
                "a class"
                if tm.get("cluster_classes")
                else ""
            )
            + (
                f"; {int(tm.get('bridges'))} bridge images per class ("
                f"{tm.get('bridge_partner', TEXTURE_DEFAULTS['bridge_partner'])} partner, weight "
                f"{tm.get('bridge_weight', TEXTURE_DEFAULTS['bridge_weight'])}; soft set only)"
                if tm.get("bridges") and "soft" in modes
                else ""
            )
            + ")"
            if tm.get("steps")
            else ""
        )
        + (f" + {dm} distribution-matching steps" if dm else "")
        + f"; {d.outer_steps} outer steps, real batch {d.batch_real}, lr images / labels / lrs "
        f"{d.lr_images} / {d.lr_labels} / {d.lr_lrs}"
        + (f", meta-gradient clipped at {clip} x its running norm" if clip else "")
        + f"; augmentation (DSA) {augment}; backend {d.get('backend', 'func')}, precision "
        f"{d.get('precision', '32-true')}",
    ]
    if ev:
        n = ev.get("n_networks", "?")
        archs = [name if str(a) == "same" else str(a) for a in ev.get("architectures") or []]
        lines.append(
            f"evaluation: {n} fresh network{'' if n == 1 else 's'} per row; schedules "
            f"{', '.join(map(str, ev.get('schedules') or []))}; architectures {', '.join(archs)}"
        )
    return lines


def target_lines(df: pd.DataFrame) -> list[str]:
    """The study's targets as measured (``evaluation.results.target_lines``: no "nan ... NOT met" lines)."""
    from gastrodistill.evaluation.results import target_lines as lines

    return lines(df)


def shown_path(out: Path, what: str, path: Path) -> str:
    """``path`` as ``SUMMARY.md`` gives it: relative to the run folder ``out`` when inside it (so a moved or
    copied folder's summary stays true); else by the config key that holds it (:data:`OUTSIDE_KEYS`:
    the data's folder often names the site, and a summary is read by others), never as a local path."""
    path = Path(path)
    try:
        return f"`{path.resolve().relative_to(out.resolve()).as_posix()}`"
    except ValueError:
        key = OUTSIDE_KEYS.get(what)
        if key == "data.store_root":  # one folder per store under it: its name tells them apart
            return f"`{path.name}` under `{key}` (config.yaml)"
        return f"`{key}` (config.yaml)" if key else "outside the run folder (config.yaml)"
