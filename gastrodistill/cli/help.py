"""``--help`` of every command: what the stage does, its main options and an example.

Hydra prints ``hydra.help.template`` (conf/hydra/default.yaml); its header is
``${gd_help:${hydra.job.name}}``, which this module resolves to the text of the command that runs
(the job name is the command module's name, e.g. ``distill`` for ``gastrodistill-distill``).
"""

from __future__ import annotations

from omegaconf import OmegaConf

_COMMON = """\
Options are Hydra overrides (key=value, group=option). Quote for the shell and, for a value holding
'=', ',' or brackets, for Hydra too (docs/data.md, "Paths on the command line"):
  'paths.data_root=/data/my xrays'   'distill.resume="/runs/lr=0.1/last.ckpt"'   'data.root="/d/a,b"'
Common: experiment=cpu|tiny|full  data=gastric|folder|npz|digits  paths.data_root=DIR  seed=N
        logger=default|csv|wandb|none  -m (sweep over comma-separated values)
Show the composed config without running: add --cfg job. Data layouts: docs/data.md."""

HELP: dict[str, str] = {
    "generate": """\
gastrodistill-generate: write the synthetic gastric X-ray collection (images, masks, manifest.csv)
to paths.data_root, in the layout of your own data (docs/data.md). Deterministic for a seed;
an existing identical collection is kept.

Main options:
  synthetic=default|tiny|full   size of the collection (full: the paper's 200/615 patients, 2048 px)
  synthetic.format=png|dicom    file format of the images
  paths.data_root=DIR           where to write (default data/synthetic/<name>)
  seed=N

Example:
  gastrodistill-generate synthetic=tiny synthetic.format=dicom paths.data_root=/tmp/xrays""",
    "build_patches": """\
gastrodistill-patches: cut every whole image of DATA_ROOT into labelled patches and store them once
(memory-mapped) for the later stages; prints patches per split and class and the grey levels used.
Every file is checked first and all problems are reported together.

Main options:
  paths.data_root=DIR      your data: manifest.csv + images/ (+ masks/, patch_labels.csv)
  data.patch_size=299 data.overlap=50   patch geometry in source pixels
  data.storage_size=64|null             stored patch side (null: keep patch_size, the paper's scale)
  data.bit_depth=12|null                bit depth of integer images (null: the files' own)
  data.test_fraction / data.split_seed   test patients when manifest.csv has no split column
  data.val_fraction                     share of the training patients kept for validation (always)

Example:
  gastrodistill-patches paths.data_root=/data/xrays data.storage_size=null data.bit_depth=12""",
    "distill": """\
gastrodistill-distill: learn a distilled set (synthetic images, soft labels, learning rates) from the
configured data, by meta-gradients through an unrolled inner training loop; saves it, its grid and
learning-rate plot, and Lightning checkpoints under the run folder.

Main options:
  distill=soft|hard|soft_cpu|hard_cpu   recipe (soft labels: the paper; hard: Wang et al.)
  distill.ipc=N distill.steps=N distill.epochs=N distill.outer_steps=N
  distill.image_init=noise|real|class_mean   distill.distribution_matching.steps=N  (0 = off; matching
      of class-mean features before the loop, Zhao & Bilen 2023)   distill.window=W  (RaT-BPTT)
  distill.texture_matching.steps=N  (0 = off; each image matched to its class's exaggerated texture
      statistics before the loop: Gram matrices of a teacher's or random networks' maps, Gatys et al. 2015)
  distill.texture_matching.teacher_labels=TAU|null  (soft labels start at the teacher's prediction; with
      the matching off set it to null: experiment=cpu uses 1.0)
  distill.texture_matching.bridges=N  (0 = off; soft sets: N images per class matched between their class
      and a partner class, labelled by the teacher; bridge_weight=BETA, bridge_partner=texture|teacher)
  distill.texture_matching.augment=true  (each matching step sees the images through distill.dsa)
  distill.texture_matching.cluster_classes=[NAME,...]  (with the matching on: each image of these classes
      matches one k-means cluster of its class's patches instead of the class mean, for a class of unlike
      patches; cluster_max_patches=N caps the patches clustered per class, 2000)
  model=convnet|lenet|alexnet|resnet18  model.head=flatten|avg  trainer=cpu|gpu|ddp|ddp_sim
  data=gastric|folder|npz|digits
  distill.resume=last|auto|RUN|FILE.ckpt   continue a stopped run (auto: else start from step 0);
      checkpoints every distill.ckpt_every outer steps
  seed=N synthetic.seed=N   seed alone also reseeds the synthetic data: sweep seeds with synthetic.seed set
  logger=default logger.wandb.name=NAME   W&B (offline) beside CSV; experiment=tiny logs CSV only

Examples:
  gastrodistill-distill experiment=cpu
  gastrodistill-distill -m experiment=tiny logger=default seed=0,1 synthetic.seed=0 distill.resume=auto
  gastrodistill-distill data=npz data.path=pneumoniamnist.npz model=lenet distill=soft_cpu""",
    "evaluate": """\
gastrodistill-evaluate: train fresh networks on saved distilled sets and on the real-data baselines
(all real patches, a random subset, class means), test them on real test data (patch and patient
level), and write results.{csv,md}, networks.csv and plots.

Main options:
  'eval.distilled_dirs={soft: RUN/distill/soft, hard: RUN/distill/hard}'  sets or artifacts to test
  eval.n_networks=N   'eval.architectures=[same,lenet]'   'eval.schedules=[replay,standard]'
  eval.baselines.n_per_class=N   (random-subset size when no distilled set is given)

Example:
  gastrodistill-evaluate experiment=cpu 'eval.distilled_dirs={soft: outputs/cpu/runs/RUN/distill/soft}'""",
    "audit": """\
gastrodistill-audit: check that distilled sets look like no patient (nearest real patches in pixel
and feature space, membership inference, burned-in text), then write shareable artifacts.

Main options:
  'audit.sets={soft: RUN/distill/soft}'   distilled-set folders or artifacts (.zip) to audit
  audit.artifact.write=true|false         also write the shareable artifacts

Example:
  gastrodistill-audit experiment=cpu 'audit.sets={soft: outputs/cpu/runs/RUN/distill/soft}'""",
    "reproduce": """\
gastrodistill-reproduce: the whole study in one run folder: generate -> patches -> distill (soft and
hard) -> evaluate -> audit -> artifact, with SUMMARY.md listing outputs and wall times.

Main options:
  experiment=cpu|tiny|full        preset (cpu: 12-25 min on 2 cores, 28-33 AVX2-only; full: paper scale, GPU)
  'stages=[distill,evaluate]'     run some stages only (in this order)
  'reproduce.distill_modes=[hard]' the label modes to distil (default soft and hard; distill.mode is
                                  refused here: it belongs to gastrodistill-distill)
  data=npz data.path=FILE         the same study on your own collection (skip generate/patches)
  distill.resume=last|auto        continue a stopped study (auto: else start from step 0); a study
                                  stopped after its distillation: the same command, hydra.run.dir=RUN,
                                  and the stages left ('stages=[evaluate,audit,artifact]')

Every distill.* value and every network (model.*, eval.architectures) is checked before any data is
generated; a bad one stops the study at once with the key named.

Examples:
  gastrodistill-reproduce experiment=cpu
  gastrodistill-reproduce experiment=cpu data=npz data.path=chest.npz 'stages=[distill,evaluate]'""",
}


def command_help(job_name: str) -> str:
    """The help text of a command, by Hydra job name (module name or console-script name)."""
    name = str(job_name).removeprefix("gastrodistill-").replace("-", "_")
    name = {"patches": "build_patches"}.get(name, name)
    text = HELP.get(name, f"{job_name}: a gastrodistill command (see README.md).")
    return f"{text}\n\n{_COMMON}\n"


def register() -> None:
    """Register the ``gd_help`` resolver used by ``hydra.help`` (idempotent)."""
    if not OmegaConf.has_resolver("gd_help"):
        OmegaConf.register_new_resolver("gd_help", command_help)
