"""LightningModules only: classification, triplet embedding, segmentation.

Each owns its loss, optimiser and torchmetrics; the networks, metrics and plots it uses live in
:mod:`litlab.networks`, :mod:`litlab.metrics` and :mod:`litlab.plots`. The exception for now is
``pipeline.py``, the nested segment-then-classify chain, due to become a workflow of runs.
"""
