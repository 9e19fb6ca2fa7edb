"""The whole study in one run folder: the stages of ``gastrodistill-reproduce``, run in order.

A value follows this path: :mod:`~gastrodistill.pipeline.stages` (the stage names and the study's config
error) → :mod:`~gastrodistill.pipeline.context` (what the stages hand each other: the config, the data
module, the distilled sets) → :mod:`~gastrodistill.pipeline.preflight` (every check made before any stage
runs) → :mod:`~gastrodistill.pipeline.pipeline` (the stages and the driver), which uses
:mod:`~gastrodistill.pipeline.workers` (the label modes' child processes),
:mod:`~gastrodistill.pipeline.run_record` (a folder's earlier run record kept and put back) and
:mod:`~gastrodistill.pipeline.summary` (``SUMMARY.md``'s recipe, targets and paths). The command line is
:mod:`gastrodistill.cli.reproduce`.
"""
