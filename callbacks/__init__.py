"""Callbacks: the papers' rules and the run records that are not Lightning built-ins."""
