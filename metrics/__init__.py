"""Metrics: the logged key names, and the custom metrics torchmetrics lacks.

Each metric keeps its math once, in :mod:`.functional`, and wraps it in a torchmetrics class whose
states sync under DDP (kNN retrieval, segmentation IoU / Dice / pixel accuracy).
"""
