"""Two CPU processes (torchrun, gloo DDP) give the losses of one process with the same global batch, and resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import distill_fixtures
import pytest
import torch
from distill_fixtures import write_student_config

from distill.loop import read_log
from distill.minilm import DistillConfig, distill

torch.set_num_threads(1)
# Shared fixtures (a tiny teacher with sharp attention, a Korean corpus file).
distill_corpus_lines = distill_fixtures.distill_corpus_lines
distill_corpus = distill_fixtures.distill_corpus
teacher_dir = distill_fixtures.teacher_dir
REPO = Path(__file__).resolve().parent.parent
STEPS = 8


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_log(out / "log.jsonl")]


def _single(teacher_dir, corpus, out, student, batch_size, grad_accum) -> list[float]:
    cfg = DistillConfig(teacher=str(teacher_dir), student=str(student), corpus=[str(corpus)], output_dir=str(out),
                        max_steps=STEPS, batch_size=batch_size, grad_accum=grad_accum, max_length=32, log_every=1,
                        checkpoint_every=0, lr=5e-3, warmup_steps=1, quiet=True)
    return _losses(distill(cfg))


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(teacher_dir, distill_corpus, tmp_path):
    # No dropout: each process draws its own masks, so only a deterministic student can match exactly.
    student = write_student_config(tmp_path / "s.json", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    one = _single(teacher_dir, distill_corpus, tmp_path / "one", student, batch_size=4, grad_accum=1)

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "distill", "run", "--teacher", str(teacher_dir), "--student", str(student),
           "--corpus", str(distill_corpus), "--max-steps", str(STEPS), "--output-dir", str(out),
           "--batch-size", "2", "--max-length", "32", "--log-every", "1", "--checkpoint-every", "4",
           "--lr", "5e-3", "--warmup-steps", "1", "--shard", "stream", "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = _losses(out)
    assert len(two) == len(one) == STEPS
    assert two == pytest.approx(one, rel=1e-4)
    # The losses must move (new data, updated weights), or the comparison above would prove little.
    assert max(one) - min(one) > 1e-2

    # Both processes' checkpoint (RNG, data position) resumes to the same losses: steps 5.. run again.
    proc = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _losses(out) == two

    # Gradient accumulation (2 micro-batches of 2) is the same optimizer step again.
    accum = _single(teacher_dir, distill_corpus, tmp_path / "accum", student, batch_size=2, grad_accum=2)
    assert accum == pytest.approx(one, rel=1e-4)


def test_a_run_ends_its_process_group_and_its_data_thread(teacher_dir, distill_corpus, tmp_path, monkeypatch):
    """The cause of a rank aborting at exit ("terminate called without an active exception"): a gloo process
    group, and a tokenising thread, left for interpreter shutdown to tear down. A run now ends both itself."""
    import threading

    from accelerate import Accelerator

    from distill.data import PREFETCH_THREAD

    ended = []
    original = Accelerator.end_training
    monkeypatch.setattr(Accelerator, "end_training", lambda self: (ended.append(True), original(self))[1])
    student = write_student_config(tmp_path / "s.json")
    _single(teacher_dir, distill_corpus, tmp_path / "out", student, batch_size=2, grad_accum=1)
    assert ended == [True]
    assert not [t for t in threading.enumerate() if t.name == PREFETCH_THREAD and t.is_alive()]


def test_closing_prefetch_stops_a_producer_blocked_on_a_full_queue():
    import threading
    import time

    from distill.data import PREFETCH_THREAD, prefetch

    def endless():
        while True:
            yield b"batch"

    before = {t for t in threading.enumerate() if t.name == PREFETCH_THREAD}
    it = prefetch(endless(), depth=2)
    assert next(it) == b"batch"
    time.sleep(0.3)  # the producer fills the queue and waits on it
    t0 = time.perf_counter()
    it.close()
    assert time.perf_counter() - t0 < 5
    assert not [t for t in threading.enumerate() if t.name == PREFETCH_THREAD and t not in before and t.is_alive()]
