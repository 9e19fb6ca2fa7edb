"""Soft labels from the texture teacher at an earlier epoch of its own training (the twenty-fifth round of
``docs/cpu_study.md``): a screen, not an option of the distiller.

Qin, Deng & Alvarez-Melis ("A Label is Worth a Thousand Images in Dataset Distillation", NeurIPS 2024)
found that soft labels carrying structured doubt help most at small image budgets, and that experts
stopped early give such labels. This script trains the texture-matching teacher of ``--set``'s run again
(the same seeds and recipe: :func:`~gastrodistill.distillation.run.train_texture_teacher`, bit for bit at
one torch thread), keeps its weights after every epoch, prints for each epoch the mean entropy (nats) and
the class-mean prediction of its labels on the set's images, and writes, for each ``--epochs`` E, a copy
of the set whose soft labels are the epoch-E teacher's prediction (temperature 1) into
``OUT/e<E>/<set folder name>`` (the same folder name, so ``small_set_curve.py`` trains the copies from
the same network seeds as the original: paired). The learned learning rates stay those learned with the
original labels, so the screen approximates a set distilled from the early labels (the labels barely
move during the preset's 25 outer steps: eighteenth round). Validation split only; nothing is scored on
test patients.

    python benchmarks/teacher_epoch_labels.py --set RUN/distill/soft --out /tmp/early --epochs 3 5 \\
        -- experiment=cpu seed=0 synthetic.seed=0
    python benchmarks/small_set_curve.py --ipc 1 --draws 4 --networks 2 --set /tmp/early/e3/soft \\
        -- experiment=cpu seed=0 synthetic.seed=0

``--ensemble N`` (the twenty-sixth round) also writes ``OUT/ensemble<N>/<set folder name>``, whose soft
labels are the mean prediction of N teachers: the set's own and N - 1 more trained by the same recipe on
the same training patches with the seeds that follow (``seed`` + 1, ...; the patient split is
``data.split_seed``'s, unchanged), an ensemble's doubt instead of an early teacher's.

    python benchmarks/teacher_epoch_labels.py --set RUN/distill/soft --out /tmp/ens --ensemble 3 \\
        -- experiment=cpu seed=0 synthetic.seed=0

The Hydra overrides after ``--`` must be the set's own run's (seed, data), or the teacher differs.
One torch thread; cost: one teacher per seed (``eval.baselines.real``: about 90 s for the cpu preset).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytorch_lightning as pl
import torch
from study_config import composed, prepared_data  # benchmarks/study_config.py


class EpochWeights(pl.Callback):
    """A Lightning callback keeping a copy of ``module.net``'s weights and the validation balanced
    accuracy after every training epoch: ``{epoch (1-based): (state_dict, score)}``."""

    def __init__(self) -> None:
        super().__init__()
        self.by_epoch: dict[int, tuple[dict[str, torch.Tensor], float]] = {}

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Lightning hook: copy the weights of the epoch just validated."""
        if not trainer.sanity_checking:
            score = float(trainer.callback_metrics["val_balanced_accuracy"])
            self.by_epoch[trainer.current_epoch + 1] = (copy.deepcopy(module.net.state_dict()), score)


def label_summary(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, list]:
    """Mean entropy (nats) of the rows of ``probs`` ``[N, K]`` and the mean row of each class of
    ``labels`` ``[N]`` (rounded to 3 digits)."""
    entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum(1).mean())
    means = [[round(float(v), 3) for v in probs[labels == c].mean(0)] for c in range(num_classes)]
    return entropy, means


def write_relabelled(source: Path, logits: torch.Tensor, dest: Path) -> None:
    """A copy of the saved soft-label set at ``source`` in ``dest`` whose targets are ``softmax(logits)``
    (``logits`` ``[N, K]``, temperature 1; the set's images and rates unchanged)."""
    from gastrodistill.distillation.distilled_set import DistilledSet

    copy_ = DistilledSet.load(source)
    with torch.no_grad():  # the targets are softmax(label_logits / temperature)
        copy_.label_logits.copy_(logits * copy_.temperature)
    copy_.save(dest)
    print(f"  written: {dest}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", type=Path, required=True, help="a saved soft-label set (distill/soft)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the relabelled copies")
    ap.add_argument("--epochs", type=int, nargs="*", default=[], help="epochs whose labels to write")
    ap.add_argument(
        "--ensemble", type=int, default=0, help="also write labels from the mean of this many teachers (>= 2)"
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the set's run, after --")
    args = ap.parse_args(argv)
    if args.ensemble == 1 or args.ensemble < 0:
        ap.error(f"--ensemble must be 0 (off) or at least 2 teachers, got {args.ensemble}")
    torch.set_num_threads(1)

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.distillation.run import network_factory, train_texture_teacher
    from gastrodistill.distillation.texture_matching import teacher_label_logits

    cfg = composed(args.overrides)
    try:
        ds = DistilledSet.load(args.set)
    except (OSError, ValueError) as exc:  # DistilledSetError is a ValueError
        ap.error(f"--set {args.set}: {exc}")
    if ds.mode != "soft":
        ap.error(f"--set {args.set}: a {ds.mode}-label set; soft labels need a soft-label set")
    epochs = int(cfg.eval.baselines.real.epochs)
    if any(not 1 <= e <= epochs for e in args.epochs):
        ap.error(f"--epochs must lie in 1..{epochs} (eval.baselines.real.epochs), got {args.epochs}")
    copies = {e: args.out / f"e{e}" / args.set.name for e in args.epochs}
    if args.ensemble:
        copies["ensemble"] = args.out / f"ensemble{args.ensemble}" / args.set.name
    taken = [str(p) for p in copies.values() if p.exists()]
    if taken:  # the input set itself among them when --out holds it
        ap.error(f"{', '.join(taken)} exist(s): choose another --out or delete them first")
    dm = prepared_data(cfg)
    factory = network_factory(cfg, dm)
    kept = EpochWeights()
    teacher = train_texture_teacher(cfg, dm, factory, callbacks=[kept])
    images, labels = ds.images.detach(), ds.hard_labels()

    def show(name: str, logits: torch.Tensor) -> None:
        entropy, means = label_summary(torch.softmax(logits, 1), labels, ds.num_classes)
        print(f"{name}: label entropy {entropy:.3f} nats, class-mean prediction {means}", flush=True)

    show("the set's own labels", ds.label_logits.detach() / ds.temperature)
    best = teacher_label_logits(teacher, images, 1.0)
    show("the teacher (best validation epoch)", best)
    for epoch, (state, score) in sorted(kept.by_epoch.items()):
        net = factory()
        net.load_state_dict(state)
        logits = teacher_label_logits(net, images, 1.0)
        show(f"epoch {epoch} (val balanced accuracy {score:.3f})", logits)
        if epoch in args.epochs:
            write_relabelled(args.set, logits, copies[epoch])
    if args.ensemble:
        probs = [torch.softmax(best, 1)]
        for seed in range(int(cfg.seed) + 1, int(cfg.seed) + args.ensemble):
            other = composed([*args.overrides, f"seed={seed}"])
            dm_other = prepared_data(other)
            net = train_texture_teacher(other, dm_other, network_factory(other, dm_other))
            probs.append(torch.softmax(teacher_label_logits(net, images, 1.0), 1))
            show(f"the teacher of seed {seed}", probs[-1].log())
        mean = torch.stack(probs).mean(0)
        show(f"the mean of {args.ensemble} teachers", mean.log())
        write_relabelled(args.set, mean.clamp_min(1e-12).log(), copies["ensemble"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
