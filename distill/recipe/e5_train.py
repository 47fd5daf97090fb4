"""The e5-student recipe's training loop: one readable loop, resumable from its last checkpoint.

Each step embeds a batch of diet texts with the student (prompt prepended, mean pooling, L2 normalisation) and
pulls the vectors towards the teacher's: loss = mean squared distance of the normalised vectors (= 2 - 2 cos).
The teacher's vectors are cached, so the teacher does not run here unless KoMiniLM's own objective is switched on
(``minilm_weight > 0``): then the teacher, in torch, gives the self-attention distributions and value relations of
its mapped layers on the same batch, and their KL (:class:`distill.losses.MiniLMLoss`) is added to the loss.
Batches hold texts of similar length (sorted within shuffled pools of 50 batches), so little is padding.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

POOL_BATCHES = 50


def build_initial_student(cfg):
    """The student before training: (model, its BertConfig, the teacher's folder, tensors copied, prompts)."""
    from transformers import BertModel

    from distill.student import build_student, student_config
    from koembed.backends.prompts import DOCUMENT, QUERY, read_prompts
    from koembed.model_source import resolve_model

    source = resolve_model(cfg.teacher)
    teacher_dir = source.path
    # The prompts from the folder's config alone: loading the teacher's encoder just to read them cost a session.
    folder_prompts = read_prompts(source.path, source.kind)
    prompts = {role: p for role in (QUERY, DOCUMENT) if (p := folder_prompts.for_role(role))}
    teacher = BertModel.from_pretrained(teacher_dir)
    s_cfg = student_config(dict(cfg.student), teacher.config)
    pairs = list(enumerate(cfg.teacher_layers))
    model, copied = build_student(s_cfg, teacher if cfg.init == "teacher" else None,
                                  pairs if cfg.init == "teacher" else None, seed=cfg.seed)
    return model, s_cfg, teacher_dir, copied, prompts


def save_initial_student(cfg, folder: Path) -> dict[str, Any]:
    """Row (e) of the evidence table: the layer-dropped (or random) student saved as it starts, untrained."""
    model, _, teacher_dir, copied, _ = build_initial_student(cfg)
    model.eval()
    _save_sentence_model(model, teacher_dir, folder)
    return {"model": str(folder), "copied_tensors": len(copied), "init": cfg.init}


def train_student(cfg, diet: list[dict], teacher_vecs: np.ndarray, out: Path,
                  log: Callable[[str], None]) -> dict[str, Any]:
    import torch
    from tokenizers import Tokenizer

    if len(diet) != len(teacher_vecs):
        raise RuntimeError(f"diet has {len(diet)} rows but the teacher's vectors {len(teacher_vecs)}: rerun both")
    model, s_cfg, teacher_dir, copied, prompts = build_initial_student(cfg)
    tok = Tokenizer.from_file(str(teacher_dir / "tokenizer.json"))
    if cfg.freeze_embeddings and cfg.init == "teacher":
        model.embeddings.word_embeddings.weight.requires_grad_(False)

    # Tokenise once: each row with its prompt, cut at its max length.
    ids: list[list[int]] = []
    for row in diet:
        enc = tok.encode(prompts.get(row["role"], "") + row["text"])
        seq = enc.ids
        if len(seq) > row["max_length"]:
            seq = seq[: row["max_length"] - 1] + [seq[-1]]
        ids.append(seq)
    targets = torch.from_numpy(teacher_vecs)
    s_tap, t_tap, minilm = _minilm_parts(cfg, model, teacher_dir)

    total = steps_for(len(diet), cfg.batch_size, cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    step, losses = 0, []
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, losses = state["step"], state["losses"]
        log(f"[train] resumed at step {step}/{total}")
    order = _batches(ids, cfg.batch_size, total, cfg.seed)
    model.train()
    pad = s_cfg.pad_token_id
    t0, seen = time.time(), 0
    log_path = out / "log.jsonl"
    while step < total:
        batch = order[step]
        L = max(len(ids[i]) for i in batch)
        inp = torch.full((len(batch), L), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for r, i in enumerate(batch):
            inp[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.warmup, cfg.lr)
        if s_tap is None:
            hidden = model(input_ids=inp, attention_mask=mask).last_hidden_state
        else:
            s_taps, output = s_tap.forward_with_output(inp, mask)
            hidden = output.last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1)
        vec = torch.nn.functional.normalize(pooled, dim=-1)
        emb = ((vec - targets[batch]) ** 2).sum(-1).mean()
        parts = {"embedding": emb.item()}  # logged even at weight 0: the runs of the ablation compare on it
        loss = cfg.embedding_weight * emb
        if minilm is not None:
            with torch.no_grad():
                t_taps = t_tap(inp, mask)
            relations = minilm(t_taps, s_taps, mask)
            loss = loss + cfg.minilm_weight * relations.total
            parts |= {k: v.item() for k, v in relations.parts.items()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        seen += len(batch)
        losses.append(parts)
        if step % cfg.log_every == 0 or step == total:
            recent = losses[-cfg.log_every:]
            mean = {k: round(float(np.mean([x[k] for x in recent])), 5) for k in recent[0]}
            rate = seen / (time.time() - t0)
            log(f"[train] step {step}/{total} loss {mean} lr {lr_at(step - 1, total, cfg.warmup, cfg.lr):.2e} "
                f"{rate:.1f} texts/s")
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, **mean, "texts_per_s": round(rate, 1)}) + "\n")
        if step % cfg.checkpoint_every == 0 or step == total:
            tmp = ckpt.with_name("checkpoint.tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "losses": losses}, tmp)
            tmp.replace(ckpt)
    model.eval()
    folder = out / "model"
    _save_sentence_model(model, teacher_dir, folder)
    window = max(1, min(50, total // 10))  # the first and last tenth of the run, at most 50 steps each
    first = {k: round(float(np.mean([x[k] for x in losses[:window]])), 5) for k in losses[-1]}
    last = {k: round(float(np.mean([x[k] for x in losses[-window:]])), 5) for k in losses[-1]}
    return {"steps": total, "rows": len(diet), "copied_tensors": len(copied), "init": cfg.init,
            "teacher_layers": cfg.teacher_layers, "embedding_loss_first": first["embedding"],
            "embedding_loss_last": last["embedding"], "loss_window_steps": window, "model": str(folder),
            "parameters": sum(p.numel() for p in model.parameters()),
            "objective": {"embedding_weight": cfg.embedding_weight, "minilm_weight": cfg.minilm_weight,
                          "minilm_pairs": [list(p) for p in minilm.layer_map] if minilm else None},
            "first_parts": first, "last_parts": last,
            "texts_per_s": round(seen / max(time.time() - t0, 1e-9), 1)}


def _minilm_parts(cfg, student, teacher_dir: Path):
    """(student tap, teacher tap, MiniLMLoss) when KoMiniLM's attention/value-relation KL is on, else Nones.

    The layer pairs default to each student layer with the teacher layer it was initialised from.
    """
    if cfg.minilm_weight <= 0:
        return None, None, None
    from transformers import BertModel

    from distill.losses import MiniLMLoss
    from distill.taps import TappedBert

    pairs = [tuple(p) for p in cfg.minilm_pairs] if cfg.minilm_pairs else list(enumerate(cfg.teacher_layers))
    teacher = BertModel.from_pretrained(teacher_dir, attn_implementation="sdpa").eval()
    teacher.requires_grad_(False)
    t_tap = TappedBert(teacher, [t for _, t in pairs])
    s_tap = TappedBert(student, [s for s, _ in pairs], stop_early=False)
    return s_tap, t_tap, MiniLMLoss(pairs)


def _batches(ids: list[list[int]], batch_size: int, total: int, seed: int) -> list[list[int]]:
    """``total`` batches over the rows (more than one pass if needed), each of similar lengths."""
    rng = random.Random(seed)
    out: list[list[int]] = []
    while len(out) < total:
        order = list(range(len(ids)))
        rng.shuffle(order)
        pool = batch_size * POOL_BATCHES
        for p in range(0, len(order), pool):
            chunk = sorted(order[p : p + pool], key=lambda i: len(ids[i]))
            batches = [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
            rng.shuffle(batches)
            out += batches
    return out[:total]


def _save_sentence_model(model, teacher_dir: Path, folder: Path) -> None:
    """The student as a sentence-transformers folder with the teacher's tokenizer, pooling, Normalize and prompts."""
    import shutil

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for rel in ("tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json",
                "config_sentence_transformers.json", "modules.json", "1_Pooling/config.json"):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(teacher_dir / rel, tmp / rel)
    # As sentence-transformers saves Normalize (a folder with a file survives git and wheels; an empty one does not).
    (tmp / "2_Normalize").mkdir(exist_ok=True)
    (tmp / "2_Normalize" / "config.json").write_text(
        json.dumps({"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}, indent=4),
        encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def lr_at(step: int, total: int, warmup: float, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` of the steps, then linear decay to 0."""
    w = max(1, int(total * warmup))
    if step < w:
        return peak * (step + 1) / w
    return peak * max(0.0, (total - step) / max(1, total - w))


def steps_for(rows: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(rows * epochs / batch_size))
