"""The math of litlab's metrics as plain functions on tensors (torchmetrics' functional style)."""
