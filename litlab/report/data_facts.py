"""Split sizes, leakage and duplicate counts of a run's data, from its saved config.

The run folder records the DataModule and every argument it had (``config.yaml``). Built again
from them, with the same seed, it splits the data exactly as the run did; no model is built and
nothing is trained. What is counted:

- ``sizes``: images (slices) per part;
- ``exact``: held-out images pixel-identical to a training image (md5 of the pixels), per part;
- ``near``: test images within ``max_distance`` bits (of 64) of a training image's difference
  hash (re-encoded or slightly shifted copies: the near-duplicate frames of CK+);
- ``groups``: for data whose images belong to someone (CK+ subjects, liver patients), how many
  held-out groups also appear in training, and how many held-out images belong to them.

The counts are on the images the model sees (after the DataModule's preprocessing).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from litlab.datamodules.cache import write_atomically
from litlab.errors import BadInputError

if TYPE_CHECKING:
    from torch.utils.data import Dataset
# The DataModules and the image hashes (torch, Lightning, OpenCV) load only when facts are
# counted, so a report that reuses counted facts, or skips them, answers without them.

log = logging.getLogger(__name__)

#: Hamming distance (bits of 64) at or under which a test image is a near-duplicate.
NEAR_BITS = 4
#: Where a run's counted facts are kept, in its run folder.
FACTS_FILE = "data_facts.json"
#: Raise when what :func:`data_facts` counts changes: kept facts of another version are recounted.
FACTS_VERSION = 1
_CHUNK = 256  # test hashes compared with every training hash at once


def build_datamodule(config: dict[str, Any]) -> Any:
    """The run's DataModule from its config (``data.class_path`` + ``init_args``), set up.

    Raises:
        ValueError: The config names no DataModule, or it cannot be imported.
        TypeError: The config's arguments no longer fit the DataModule.
        FileNotFoundError: The run's data is not on this machine.
    """
    data = config.get("data") or {}
    class_path = data.get("class_path")
    if not class_path:
        raise ValueError("the run's config names no data.class_path")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import the run's DataModule {class_path}: {err}") from err
    args = dict(data.get("init_args") or {})
    args["num_workers"] = 0  # reading only: no loader processes
    datamodule = cls(**args)
    datamodule.prepare_data()
    datamodule.setup("test")
    return datamodule


def _images(dataset: Dataset | None) -> np.ndarray | None:
    """The uint8 images a dataset serves (array datasets and liver slice datasets)."""
    if dataset is None:
        return None
    images = getattr(dataset, "images", None)
    if images is None:
        return None
    indices = getattr(dataset, "indices", None)  # a subset of a shared array (liver slices)
    return np.asarray(images if indices is None else images[np.asarray(indices)])


def near_duplicates(train: np.ndarray, test: np.ndarray, max_distance: int = NEAR_BITS) -> int:
    """Test images whose dHash lies within ``max_distance`` bits of a training image's."""
    if len(train) == 0 or len(test) == 0:
        return 0
    from litlab.datamodules.identity import count_near_duplicates, dhash

    train_hashes, test_hashes = dhash(train), dhash(test)
    return sum(
        count_near_duplicates(train_hashes, test_hashes[i : i + _CHUNK], max_distance)
        for i in range(0, len(test_hashes), _CHUNK)
    )


def _groups(datamodule: Any) -> dict[str, np.ndarray] | None:
    """Group (subject or patient) of every image of each part, where the data has them."""
    split_patients = getattr(datamodule, "split_patients", None)
    slices = getattr(datamodule, "slices", None)
    if split_patients and slices is not None:
        parts = {"train": datamodule.train_set, "val": datamodule.val_set}
        parts["test"] = datamodule.test_set
        return {name: slices.patients[ds.indices] for name, ds in parts.items()}
    index = getattr(datamodule, "index", None)
    split_indices = getattr(datamodule, "split_indices", None)
    if index is not None and split_indices:
        from litlab.datamodules.ckplus import subject_ids

        pattern = datamodule.hparams.get("subject_pattern")
        subjects = subject_ids(index.paths, pattern) if pattern else subject_ids(index.paths)
        return {name: subjects[idx] for name, idx in split_indices.items()}
    return None


def data_facts(datamodule: Any, pixels: bool = True) -> dict[str, Any]:
    """Sizes, duplicates and shared groups of a set-up DataModule (see the module docstring).

    Args:
        datamodule: After ``setup``.
        pixels: Count exact and near duplicates (off for data where pixels repeat by nature,
            such as empty CT slices).
    """
    gallery = getattr(datamodule, "gallery_set", None)  # training images without copies
    train = gallery if gallery is not None else datamodule.train_set
    parts = {"train": train, "val": datamodule.val_set, "test": datamodule.test_set}
    facts: dict[str, Any] = {
        "sizes": {name: len(ds) if ds is not None else 0 for name, ds in parts.items()},
        "test_is_val": datamodule.test_set is datamodule.val_set,
    }
    if pixels:
        from litlab.datamodules.identity import count_duplicates

        images = {name: _images(ds) for name, ds in parts.items()}
        if images["train"] is not None:
            facts["exact"] = {
                name: count_duplicates(images[name], images["train"])
                for name in ("val", "test")
                if images[name] is not None and not (name == "test" and facts["test_is_val"])
            }
            if images["test"] is not None:
                facts["near"] = near_duplicates(images["train"], images["test"])
    groups = _groups(datamodule)
    if groups is not None:
        seen = set(groups["train"].tolist())
        facts["groups"] = {
            name: {
                "groups": len(set(groups[name].tolist())),
                "shared": len(set(groups[name].tolist()) & seen),
                "images_of_shared": int(np.isin(groups[name], list(seen)).sum()),
            }
            for name in ("val", "test")
        }
    return facts


def _facts_key(config: dict[str, Any], pixels: bool) -> str:
    text = json.dumps(
        [FACTS_VERSION, config.get("data"), pixels, NEAR_BITS], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_data_facts(
    config: dict[str, Any], pixels: bool = True, run_dir: Path | None = None
) -> dict[str, Any]:
    """:func:`data_facts` of the DataModule a run's config describes; ``{"error": message}``
    when it cannot be built here (data missing, unknown class).

    With ``run_dir``, the facts are kept in ``<run_dir>/data_facts.json`` (keyed by the run's data
    config and what is counted) and read back by later reports, which then need neither the data
    nor torch: the facts describe the data the run was split from, counted once.
    """
    key = _facts_key(config, pixels)
    kept = None if run_dir is None else Path(run_dir) / FACTS_FILE
    if kept is not None and kept.is_file():
        try:
            saved = json.loads(kept.read_text())
            if saved.get("key") == key:
                return saved["facts"]
        except (OSError, ValueError, KeyError, AttributeError) as err:
            log.warning("recounting the data facts: %s is unreadable (%s)", kept, err)
    try:
        facts = data_facts(build_datamodule(config), pixels)
    except (FileNotFoundError, ValueError, ImportError, KeyError, TypeError) as err:
        log.warning("cannot rebuild the run's data to count leakage: %s", err)
        return {"error": str(err)}
    facts = json.loads(json.dumps(facts, default=_plain))  # what a later report reads back
    if kept is not None:
        text = json.dumps({"key": key, "facts": facts}, indent=1)
        try:
            write_atomically(kept, lambda tmp: tmp.write_text(text))
        except (OSError, BadInputError) as err:  # a read-only run folder: count again next time
            log.warning("data facts not kept: %s", err)
    return facts


def _plain(value: Any) -> Any:
    """JSON form of the NumPy scalars and arrays in the facts."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot keep {type(value).__name__} in {FACTS_FILE}")
