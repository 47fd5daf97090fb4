"""Training checkpoints in ``OUT/checkpoint-<step>``: complete or absent, never half-written.

A checkpoint holds what Accelerate's ``save_state`` writes (model, optimizer, the registered
scheduler, every process's RNG states, the fp16 grad scaler) plus ``trainer_state.json`` (step,
data-stream position, tokens seen). It is written into a hidden temporary folder and renamed into
place by the main process once every process has finished writing, so a run killed at any moment
resumes from the last complete checkpoint and loses only the steps since.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.errors import InputError

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator: Any, output_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Save the full training state at ``step`` (call on every process); keep the newest ``keep`` checkpoints."""
    out = Path(output_dir)
    final = out / f"{PREFIX}{step:08d}"
    tmp = out / f".{final.name}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(tmp / STATE_FILE, json.dumps({**state, "step": step}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, output_dir: str | Path) -> dict[str, Any]:
    """Restore the newest checkpoint of ``output_dir`` into the prepared objects; return its trainer state."""
    ckpt = latest_checkpoint(output_dir)
    if ckpt is None:
        raise InputError(f"--resume: no checkpoint found in {output_dir} (expected a {PREFIX}<step> folder); "
                         "run without --resume to start fresh")
    accelerator.load_state(str(ckpt))
    return json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
