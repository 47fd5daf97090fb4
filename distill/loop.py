"""The generic pretraining loop on Hugging Face Accelerate, shared by MiniLM distillation and masked-LM pretraining.

The same code runs on one CPU, one GPU or ``accelerate launch`` / ``torchrun`` across GPUs and
nodes: DDP on the trained model, bf16/fp16 autocast where the hardware has it. One optimizer step =
``grad_accum`` micro-batches of ``batch_size`` segments per process; AdamW, linear warmup then linear
decay to zero, gradient clipping. Every ``checkpoint_every`` steps the full state is saved (see
:mod:`distill.checkpoint`) and ``resume=True`` continues exactly where the last checkpoint left off.

Outputs in ``output_dir`` besides what ``save_final`` writes: the run's config JSON, ``log.jsonl``
(one line per logged step: ``loss``, each loss part, ``pair_<name>`` per layer pair, ``lr``,
``tokens_per_s``...), ``final_losses.json`` and ``loss.png``.

:func:`run_loop` is the loop itself; :mod:`distill.minilm` drives it with MiniLM's relation losses,
:mod:`distill.mlm` with a masked-LM objective.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.errors import InputError

LOG_FILE, FINAL_FILE, PLOT_FILE = "log.jsonl", "final_losses.json", "loss.png"


@dataclass
class LoopConfig:
    """What every pretraining loop here shares (distillation and masked-LM)."""

    corpus: list[str] = field(default_factory=list)  # files (txt/jsonl/tsv/csv/parquet) or Hub dataset names
    output_dir: str = "distilled"
    max_steps: int = 1000
    batch_size: int = 32  # segments per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = -1  # -1: 4% of max_steps
    max_grad_norm: float = 1.0
    max_length: int = 128  # tokens per packed segment
    text_field: str = "text"
    shard: str = "documents"  # documents (each process tokenises its share) | stream (same batches for any #processes)
    data_workers: int = 0  # DataLoader worker processes tokenising per process (0: one background thread)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 42
    mixed_precision: str = "auto"  # auto (bf16/fp16 on GPU, bf16 on CPUs with AMX-BF16, else none), no, bf16, fp16
    resume: bool = False
    quiet: bool = False


def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on CPUs with AMX-BF16 tiles, where bf16 matmuls beat fp32 (docs/distill.md has the measurement).

    Elsewhere (AVX2-only parts) bf16 is emulated and several times slower than fp32.
    """
    from koembed.system import cpu_info

    return "amx_bf16" in cpu_info(cpuinfo).flags


def resolve_mixed_precision(requested: str) -> str:
    """``auto`` -> what is fast on this machine: bf16/fp16 on a GPU, bf16 on an AMX CPU, else none."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # KOEMBED_CPU_BF16=0 keeps CPU runs in fp32 (the tests do, so results match on any CPU).
    return "bf16" if os.environ.get("KOEMBED_CPU_BF16", "1") != "0" and cpu_has_fast_bf16() else "no"


def make_accelerator(cfg: LoopConfig):
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    mp = resolve_mixed_precision(cfg.mixed_precision)
    # The taps stop the forward after the last mapped layer's projections, so later weights get no gradient.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Without an accelerator, Accelerate only sets up gloo DDP under torchrun when told it runs on CPU.
    has_accel = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    return Accelerator(mixed_precision=mp, kwargs_handlers=[ddp], step_scheduler_with_optimizer=False,
                       cpu=not has_accel)


def prepare_output(cfg: LoopConfig, config_name: str) -> Path:
    """Create ``output_dir``, refuse to overwrite a run without ``resume``, and save the config beside it."""
    from distill.checkpoint import latest_checkpoint

    out = Path(cfg.output_dir)
    if cfg.resume and latest_checkpoint(out) is None:
        raise InputError(f"--resume: no checkpoint found in {out} (expected a checkpoint-<step> folder); "
                         "run without --resume to start fresh")
    if not cfg.resume and latest_checkpoint(out) is not None:
        raise InputError(f"{out} already holds checkpoints of a run; pass --resume to continue it or choose a new "
                         "--output-dir")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / config_name, json.dumps(asdict(cfg), indent=2, ensure_ascii=False) + "\n")
    return out


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (BERT's convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def run_loop(cfg: LoopConfig, accelerator: Any, model: Any, step_fn: Callable, tokenizer: Any,
             save_final: Callable[[Path], None]) -> dict[str, Any]:
    """Train ``model`` for ``cfg.max_steps`` optimizer steps; ``step_fn(model, ids, mask) -> LossOutput``."""
    import torch
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    from distill.checkpoint import load_checkpoint, save_checkpoint
    from distill.data import open_batches

    out = Path(cfg.output_dir)
    warmup = cfg.warmup_steps if cfg.warmup_steps >= 0 else int(0.04 * cfg.max_steps)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (cfg.max_steps - step) / max(1, cfg.max_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    step, tokens, data_position = 0, 0, None
    if cfg.resume:
        state = load_checkpoint(accelerator, out)
        step, tokens = state["step"], state["tokens"]
        data_position = _rank_data_position(state, cfg, accelerator)
        if accelerator.is_main_process:
            _truncate_log(out / LOG_FILE, step)
    elif accelerator.is_main_process:
        (out / LOG_FILE).unlink(missing_ok=True)

    batches, position = open_batches(cfg.corpus, tokenizer, cfg.max_length, cfg.batch_size,
                                     accelerator.process_index, accelerator.num_processes, cfg.text_field, cfg.shard,
                                     cfg.data_workers, data_position)
    try:
        device = accelerator.device
        bar = tqdm(total=cfg.max_steps, initial=step, disable=cfg.quiet or not accelerator.is_local_main_process,
                   desc="train", unit="step", dynamic_ncols=True)
        model.train()
        names: list[str] | None = None
        sums, last_log, t_log, tok_log = None, None, time.perf_counter(), tokens
        start = time.perf_counter()
        while step < cfg.max_steps:
            for micro in range(cfg.grad_accum):
                ids, mask, st = next(batches)
                ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
                # Gradients are all-reduced once per optimizer step, on the last micro-batch.
                sync = micro == cfg.grad_accum - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss = step_fn(model, ids, mask)
                    accelerator.backward(loss.total / cfg.grad_accum)
                values = torch.stack([loss.total, *loss.parts.values(), *loss.pairs.values()]).detach().float()
                names = names or ["loss", *loss.parts, *(f"pair_{k}" for k in loss.pairs)]
                sums = values if sums is None else sums + values
                tokens += ids.numel() * accelerator.num_processes
            lr = scheduler.get_last_lr()[0]
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                mean = accelerator.reduce(sums / cfg.grad_accum, reduction="mean").tolist()
                now = time.perf_counter()
                record = {"step": step, **{k: round(v, 6) for k, v in zip(names, mean, strict=True)}, "lr": lr,
                          "grad_norm": float(grad_norm), "tokens": tokens,
                          "tokens_per_s": round((tokens - tok_log) / max(now - t_log, 1e-9), 1),
                          "elapsed_s": round(now - start, 2), "epoch": st.epoch}
                t_log, tok_log, last_log = now, tokens, record
                if accelerator.is_main_process:
                    with (out / LOG_FILE).open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            sums = None
            if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
                data = gather_object([position()])
                save_checkpoint(accelerator, out, step, {"tokens": tokens, "shard": cfg.shard, "data": data},
                                cfg.keep_checkpoints)
        bar.close()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _publish(out, save_final)
            atomic_write_text(out / FINAL_FILE, json.dumps(last_log or {}, indent=2) + "\n")
            write_loss_plot(out / LOG_FILE, out / PLOT_FILE)
        accelerator.wait_for_everyone()
    finally:
        # Stop the tokenising thread and tear the process group down while the interpreter is whole: a gloo
        # group left to interpreter shutdown can abort a rank ("terminate called without an active exception").
        batches.close()
        accelerator.end_training()
    return last_log or {}


def _rank_data_position(state: dict[str, Any], cfg: LoopConfig, accelerator: Any) -> dict[str, Any]:
    """This process's data position: its own under ``documents`` sharding, the common one under ``stream``."""
    streams, shard = state["data"], state.get("shard", cfg.shard)
    if shard != cfg.shard:
        raise InputError(f"--resume: the checkpoint was made with --shard {shard}, this run asks for {cfg.shard}")
    if shard == "documents" and len(streams) != accelerator.num_processes:
        raise InputError(f"--resume: the checkpoint was made by {len(streams)} processes and --shard documents "
                         f"splits the data per process; resume with {len(streams)} processes")
    return streams[accelerator.process_index if shard == "documents" else 0]


def _publish(out: Path, save_final: Callable[[Path], None]) -> None:
    """Write the model into a temporary folder, then move each file into ``out`` with an atomic rename."""
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_final(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines after the checkpoint being resumed: those steps will run (and be logged) again."""
    if path.is_file():
        keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and json.loads(ln)["step"] <= step]
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def read_log(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(ln) for ln in p.read_text(encoding="utf-8").splitlines() if ln] if p.is_file() else []


def write_loss_plot(log_path: Path, png_path: Path) -> None:
    """A PNG of the total loss and each relation part against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    if not rows:
        return
    keys = [k for k in rows[0] if k in ("loss", "attention", "value_relation", "qq", "kk", "vv", "mlm")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        ax.plot([r["step"] for r in rows], [r[k] for r in rows], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
