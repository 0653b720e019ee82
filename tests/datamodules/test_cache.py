"""The atomic cache writers: whole files and folders or nothing, also with two processes racing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from litlab.datamodules.cache import atomic_directory, cache_root, write_atomically


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LITLAB_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("LITLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "litlab"


def test_file_is_written_whole_under_its_own_suffix(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "images-abc.npy"
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert not target.exists()  # nothing visible at the final path while writing
        np.save(tmp, np.arange(5))

    assert write_atomically(target, write) == target
    assert seen[0] != target and seen[0].parent == target.parent and seen[0].suffix == ".npy"
    np.testing.assert_array_equal(np.load(target), np.arange(5))
    assert sorted(p.name for p in target.parent.iterdir()) == ["images-abc.npy"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "x.csv", broken)
    with pytest.raises(RuntimeError, match="disk full"), atomic_directory(tmp_path / "d") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_finished_folder_is_kept_when_another_copy_finishes_later(tmp_path: Path) -> None:
    with atomic_directory(tmp_path / "data") as tmp:
        (tmp / "who.txt").write_text("first")
    with atomic_directory(tmp_path / "data") as tmp:
        (tmp / "who.txt").write_text("second")
    assert (tmp_path / "data" / "who.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from litlab.datamodules.cache import atomic_directory

    with atomic_directory(Path(sys.argv[1])) as tmp:
        for i in range(20):
            (tmp / f"{i:02d}.txt").write_text(sys.argv[2])
            time.sleep(0.01)
    """
)


def test_two_processes_writing_one_folder_end_with_one_whole_copy(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, str(target), tag], env=env)
        for tag in ("a", "b")
    ]
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0]
    texts = {f.read_text() for f in target.iterdir()}
    assert len(list(target.iterdir())) == 20 and len(texts) == 1  # one writer's whole copy
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]  # no temporary folder left
