"""Embedded datasets: generated once, through a temporary path, never half-written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import litlab.datamodules.synthetic.ckplus as synthetic_ckplus
import litlab.datamodules.synthetic.fer2013 as synthetic_fer2013
import pytest
from litlab.datamodules.cache import cache_root
from litlab.datamodules.embedded import (
    embedded_ckplus_folder,
    embedded_fer2013_csv,
    materialise,
)


def test_generated_once_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Path] = []

    def write(path: Path) -> None:
        calls.append(path)
        path.joinpath("a.txt").write_text("x")

    with caplog.at_level(logging.INFO, logger="litlab.datamodules.embedded"):
        first = materialise("toy-v1", "toy set", write, folder=True)
        second = materialise("toy-v1", "toy set", write, folder=True)
    assert first == second == cache_root() / "data" / "toy-v1"
    assert len(calls) == 1 and calls[0] != first  # written under a temporary name
    assert caplog.text.count("generating the embedded toy set") == 1


@pytest.mark.parametrize("kind", ["ckplus", "fer2013"])
def test_a_writer_that_fails_leaves_no_dataset(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def crash(path: Path, *args, **kwargs) -> None:
        seen.append(Path(path))
        if kind == "fer2013":
            Path(path).write_text("half")
        else:
            Path(path, "anger").mkdir()
        raise KeyboardInterrupt  # killed mid-write

    module, make = {
        "ckplus": (synthetic_ckplus, lambda: embedded_ckplus_folder(n_subjects=7, seed=3)),
        "fer2013": (synthetic_fer2013, lambda: embedded_fer2013_csv(n_rows=10, seed=3)),
    }[kind]
    name = {"ckplus": "write_ckplus_folder", "fer2013": "write_fer2013_csv"}[kind]
    monkeypatch.setattr(module, name, crash)
    with pytest.raises(KeyboardInterrupt):
        make()
    data = cache_root() / "data"
    assert seen and not seen[0].exists()
    assert not [p for p in data.iterdir() if "-n7-s3" in p.name or "-n10-s3" in p.name]
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no temporary left


def test_embedded_files_are_the_real_formats() -> None:
    csv = embedded_fer2013_csv(n_rows=20, seed=4)
    assert csv.read_text().splitlines()[0] == "emotion,pixels,Usage"
    assert len(csv.read_text().splitlines()) == 21
    folder = embedded_ckplus_folder(n_subjects=7, seed=4)
    assert sorted(os.listdir(folder)) == sorted(synthetic_ckplus.STYLE_OF_CLASS)
