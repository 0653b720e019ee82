"""Workflows built from runs: each unit of work is a child ``litlab`` process with its own folder.

``litlab workflow segment-then-classify`` (:mod:`~.segment_then_classify`) fits the face
segmenter, writes the background-removed copy (:mod:`~.remove_background`) and fits the
classifier on it; :mod:`~.steps` holds what every workflow shares (a step's state read from its
folder, resume in place, running steps over device slots), which ``litlab cv`` uses too. A
workflow never nests a Trainer in its own process.
"""
