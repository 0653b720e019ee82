"""The names of the files callbacks write into a run folder, importable without Lightning.

Reports and other light commands read these files; they import the names from here so that
knowing a file name does not load the callback (and with it torch and Lightning).
"""

from __future__ import annotations

#: Per-volume liver scores, written by :class:`~litlab.callbacks.per_volume_writer.PerVolumeWriter`.
PER_VOLUME_FILE = "per_volume.csv"
#: Test confusion matrix and predictions, written by
#: :class:`~litlab.callbacks.confusion_writer.TestConfusionWriter`.
CONFUSION_FILE = "test_confusion.json"
