"""Read an offline W&B run file (``run-<id>.wandb``) the way W&B's sync reads it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of an offline ``run-<id>.wandb`` file, in order.

    The file is a LevelDB-style log (32 KiB blocks of CRC/length/type-framed chunks after a
    7-byte header) of W&B protobuf records.
    """
    data, block, pos, buf, records = path.read_bytes(), 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            break
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            records.append(record)
    return records


def read_wandb_run(path: Path) -> tuple[str, str, dict]:
    """(run id, group, config) of the run record (what was given to ``wandb.init``).

    Raises:
        AssertionError: The file holds no run record, or no exit record (the run never ended).
    """
    records = wandb_records(path)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "run" in kinds, f"no run record in {path} (records: {kinds})"
    assert "exit" in kinds, f"no exit record in {path}: the run was not finished ({kinds})"
    run = records[kinds.index("run")].run
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    return run.run_id, run.run_group, config
