"""Optimisers and learning-rate schedules by short name, shared by every LightningModule."""
