"""LightningModules only: classification, triplet embedding, segmentation.

Each owns its loss, optimiser and torchmetrics; the networks, metrics and plots it uses live in
:mod:`litlab.networks`, :mod:`litlab.metrics` and :mod:`litlab.plots`. Chains of runs (the
segment-then-classify workflow) live with the orchestrators, in :mod:`litlab.workflows`.
"""
