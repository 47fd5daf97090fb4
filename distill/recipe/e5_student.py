"""``python -m distill recipe e5-student``: KoMiniLM-23M distilled from multilingual-e5-small on two CPU cores.

teacher (``e5-small-ko``: e5-small with the Korean-pruned vocabulary) -> diet (Korean sentences and questions with
the query prompt, passages and some sentences with the document prompt; never an evaluation split) -> the
teacher's pooled, prompted vectors of the diet (cached) -> the student (the KoMiniLM-23M shape with the teacher's
vocabulary, initialised from the teacher's embeddings and every other layer, or at random) trained to reproduce
those vectors (the multilingual-distillation recipe of Reimers & Gurevych 2020) -> evaluation -> the packaged
model. KoMiniLM's own objective, the MiniLM attention-distribution and value-relation KL of mapped layers, can be
added to (or replace) the embedding loss (``minilm_weight``), and an optional last stage fine-tunes on KorSTS train
(``sts_epochs``); docs/recipe.md has what each did.

Every stage writes ``<stage>/stage.json`` when it finishes; a rerun skips finished stages, the teacher's vectors
are written in resumable shards, and training resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill.recipe.corpus import iter_source
from distill.recipe.e5_diet import DIET, DOCUMENT, QUERY
from koembed.atomic import atomic_write_text
from koembed.errors import InputError
from koembed.paths import data_dir as default_data_dir


@dataclass
class E5StudentConfig:
    """Every setting of the recipe; ``distill/recipe/recipes/<name>.json`` holds the committed values."""

    kind: str = "e5-student"
    name: str = "e5-student"
    output_dir: str = "runs/e5-student"
    data_dir: str | None = None
    teacher: str = "e5-small-ko"  # a koembed model name or folder with E5 prompts
    teacher_layers: list[int] = field(default_factory=lambda: [1, 3, 5, 7, 9, 11])  # one per student layer
    init: str = "teacher"  # "teacher": embeddings + teacher_layers copied; "random": same shape, random weights
    freeze_embeddings: bool = True  # the word table (most parameters; rare pieces see few updates) stays the teacher's
    embedding_weight: float = 1.0  # weight of the sentence-embedding loss (MSE to the teacher's prompted vectors)
    minilm_weight: float = 0.0  # KoMiniLM's attention + value-relation KL (0 = off; runs the teacher in torch)
    minilm_pairs: list[list[int]] | None = None  # [student, teacher] layer pairs; None = each layer and its source
    student: dict[str, Any] = field(default_factory=lambda: {"num_hidden_layers": 6, "hidden_size": 384,
                                                             "num_attention_heads": 12, "intermediate_size": 1536})
    diet_sources: list[str] | None = None  # names of DIET sources to use; None = all
    teacher_backend: str = "onnx"  # koembed backend that computes the teacher's vectors
    eval_backend: str = "onnx"
    max_rows: int = 0  # use only the first N rows of the (shuffled) diet; 0 = all. Sizes the run to the session
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-4
    warmup: float = 0.05
    seed: int = 0
    checkpoint_every: int = 200
    sts_epochs: float = 0.0  # optional last stage on KorSTS train (CoSENT, the query prompt); 0 = skipped
    sts_lr: float = 2e-5
    sts_batch_size: int = 16
    sts_max_samples: int | None = None  # KorSTS train pairs used by that stage (sampled with the seed); None = all
    log_every: int = 50
    teacher_batch: int = 64
    reuse_from: str | None = None  # another run folder whose diet and teacher vectors this run uses (same rows)
    package_dir: str | None = None  # where `package` writes the model (e.g. koembed/models/NAME); None = no package
    threads: int = 0
    quiet: bool = False
    eval_max_samples: int | None = None  # None: every pair/question of each task
    evaluate_initial: bool = True  # row (e): the same for every run with the same init, so a rerun may skip it
    eval_tasks: list[str] = field(default_factory=lambda: ["korsts-dev", "korsts", "klue-sts", "korquad-retrieval"])

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> E5StudentConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)


class E5StudentRecipe:
    STAGES = ("diet", "teacher_vectors", "initial", "train", "sts", "evaluate", "package")

    def __init__(self, cfg: E5StudentConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.data = default_data_dir(cfg.data_dir)
        self.log = log
        if not self.data.is_dir():
            raise InputError(f"recipe: data folder {self.data} not found (set --data-dir or KOEMBED_DATA_DIR)")

    def run(self, only: list[str] | None = None) -> dict[str, Any]:
        unknown = sorted(set(only or []) - set(self.STAGES))
        if unknown:
            raise InputError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(self.STAGES)}")
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "recipe.json", json.dumps(asdict(self.cfg), indent=2) + "\n")
        results = {}
        for stage in self.STAGES:
            marker = self.out / stage / "stage.json"
            if only and stage not in only:
                continue
            if marker.is_file():
                results[stage] = json.loads(marker.read_text(encoding="utf-8"))
                self.log(f"[{stage}] done before, skipped")
                continue
            why_not = self._not_configured(stage)
            if why_not:  # no marker: a later run that configures the stage runs it
                results[stage] = {"skipped": why_not}
                self.log(f"[{stage}] not configured ({why_not}), skipped")
                continue
            t0 = time.time()
            self.log(f"[{stage}] starting")
            (self.out / stage).mkdir(parents=True, exist_ok=True)
            result = getattr(self, f"stage_{stage}")()
            result["seconds"] = round(time.time() - t0, 1)
            atomic_write_text(marker, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            results[stage] = result
            self.log(f"[{stage}] finished in {result['seconds']} s")
        return results

    def _not_configured(self, stage: str) -> str | None:
        """Why an optional stage does not run under this configuration (None: it runs)."""
        if stage == "sts" and self.cfg.sts_epochs <= 0:
            return "sts_epochs is 0"
        if stage == "package" and not self.cfg.package_dir:
            return "no package_dir in the recipe"
        return None

    # -- stages ---------------------------------------------------------------------------------------------
    def _reuse(self, stage: str) -> dict[str, Any] | None:
        """Copy a finished stage from ``reuse_from`` (a baseline trained on the very same rows and vectors)."""
        if not self.cfg.reuse_from:
            return None
        import shutil

        src = Path(self.cfg.reuse_from) / stage
        if not (src / "stage.json").is_file():
            raise InputError(f"reuse_from: {src} has not finished the {stage} stage; run that recipe first")
        shutil.rmtree(self.out / stage, ignore_errors=True)
        shutil.copytree(src, self.out / stage, ignore=shutil.ignore_patterns("stage.json"))
        return json.loads((src / "stage.json").read_text(encoding="utf-8")) | {"reused_from": str(src)}

    def stage_diet(self) -> dict[str, Any]:
        """diet/diet.jsonl: {"text", "role", "max_length", "source"} rows, shuffled with the seed."""
        reused = self._reuse("diet")
        if reused is not None:
            return reused
        rng = random.Random(self.cfg.seed)
        rows, counts = [], {}
        unknown = set(self.cfg.diet_sources or []) - {d.source.name for d in DIET}
        if unknown:
            raise InputError(f"diet_sources: unknown source(s) {', '.join(sorted(unknown))}")
        for d in DIET:
            if self.cfg.diet_sources is not None and d.source.name not in self.cfg.diet_sources:
                continue
            texts = list(dict.fromkeys(iter_source(self.data, d.source)))
            if d.cap and len(texts) > d.cap:
                texts = random.Random(f"{self.cfg.seed}-{d.source.name}").sample(texts, d.cap)
            rows += [{"text": t, "role": d.role, "max_length": d.max_length, "source": d.source.name} for t in texts]
            counts[d.source.name] = len(texts)
        rng.shuffle(rows)
        path = self.out / "diet" / "diet.jsonl"
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return {"rows": len(rows), "per_source": counts,
                "by_role": {r: sum(1 for x in rows if x["role"] == r) for r in (QUERY, DOCUMENT)}}

    def _diet(self) -> list[dict]:
        path = self.out / "diet" / "diet.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return rows[: self.cfg.max_rows] if self.cfg.max_rows else rows

    def stage_teacher_vectors(self) -> dict[str, Any]:
        """The teacher's normalised vectors of every diet row (its prompt, its max length), in resumable shards."""
        reused = self._reuse("teacher_vectors")
        if reused is not None:
            return reused
        from koembed.encoder import KoMiniLMEncoder

        rows = self._diet()
        folder = self.out / "teacher_vectors"
        shard_size = 2048
        from tokenizers import Tokenizer

        from koembed.model_source import resolve_model

        enc = KoMiniLMEncoder(self.cfg.teacher, backend=self.cfg.teacher_backend)
        tok = Tokenizer.from_file(str(resolve_model(self.cfg.teacher).path / "tokenizer.json"))
        t0, done = time.time(), 0
        for start in range(0, len(rows), shard_size):
            shard = folder / f"shard-{start // shard_size:05d}.npy"
            part = rows[start : start + shard_size]
            if shard.is_file():
                continue
            vecs = np.zeros((len(part), enc.dim), dtype=np.float32)
            for role in (QUERY, DOCUMENT):
                idx = [i for i, r in enumerate(part) if r["role"] == role]
                if idx:
                    prompt = enc.prompt_for(role)
                    texts = [_cut(tok, prompt, part[i]["text"], part[i]["max_length"]) for i in idx]
                    vecs[idx] = enc.encode(texts, batch_size=self.cfg.teacher_batch, show_progress=False,
                                           prompt_name=role)
            _save_npy(shard, vecs)
            done += len(part)
            self.log(f"[teacher_vectors] {start + len(part):,}/{len(rows):,} rows "
                     f"({done / (time.time() - t0):.1f} rows/s this run)")
        return {"rows": len(rows), "dim": enc.dim, "teacher": self.cfg.teacher, "teacher_fingerprint": enc.fingerprint}

    def _teacher_matrix(self) -> np.ndarray:
        shards = sorted((self.out / "teacher_vectors").glob("shard-*.npy"))
        vecs = np.concatenate([np.load(s) for s in shards])
        return vecs[: self.cfg.max_rows] if self.cfg.max_rows else vecs

    def stage_initial(self) -> dict[str, Any]:
        """The student before any training (row (e) of docs/recipe.md's table when ``init`` is "teacher")."""
        from distill.recipe.e5_train import save_initial_student

        return save_initial_student(self.cfg, self.out / "initial" / "model")

    def stage_train(self) -> dict[str, Any]:
        from distill.recipe.e5_train import train_student

        return train_student(self.cfg, self._diet(), self._teacher_matrix(), self.out / "train", self.log)

    def stage_sts(self) -> dict[str, Any]:
        """Optional: the distilled student fine-tuned on KorSTS train (CoSENT) with the query prompt it is used with.

        koembed's own training (:func:`koembed.training.run.train`); docs/recipe.md says whether it is kept, measured
        on KorSTS and on retrieval (a stage that buys STS with retrieval is not).
        """
        from koembed.training.run import StageConfig, TrainConfig, train

        tc = TrainConfig(base_model=str(self.out / "train" / "model"), output_dir=str(self.out / "sts" / "model"),
                         stages=["sts"], data_dir=str(self.data), use_hub=False, prompt_name="query",
                         sts=StageConfig(epochs=self.cfg.sts_epochs, batch_size=self.cfg.sts_batch_size,
                                         lr=self.cfg.sts_lr, max_train_samples=self.cfg.sts_max_samples),
                         seed=self.cfg.seed, eval_steps=0, report_test=False, resume=True, quiet=self.cfg.quiet,
                         device="cpu")
        return {"model": tc.output_dir, **train(tc).as_dict()}

    def final_model(self) -> Path:
        """The model this run ships: after the STS stage when it ran, else after distillation."""
        sts = self.out / "sts" / "model"
        return sts if self.cfg.sts_epochs > 0 and (sts / "modules.json").is_file() else self.out / "train" / "model"

    def stage_evaluate(self) -> dict[str, Any]:
        """The student before and after each training stage on the catalogue's embedding tasks (local files)."""
        from koembed.encoder import KoMiniLMEncoder
        from koembed.evaluate import run_task

        results: dict[str, Any] = {}
        models = {"trained": self.out / "train" / "model"}
        if self.cfg.evaluate_initial:
            models = {"initial": self.out / "initial" / "model"} | models
        if self.cfg.sts_epochs > 0:
            models["sts"] = self.out / "sts" / "model"
        for which, folder in models.items():
            enc = KoMiniLMEncoder(str(folder), backend=self.cfg.eval_backend)
            for task in self.cfg.eval_tasks:
                try:
                    res = run_task(enc, task, data_dir=self.data, max_samples=self.cfg.eval_max_samples,
                                   use_hub=False)
                except InputError as exc:
                    res = {"skipped": str(exc)}
                results.setdefault(which, {})[task] = res
                self.log(f"[evaluate] {which} {task}: {res}")
        return results

    def stage_package(self) -> dict[str, Any]:
        from distill.recipe.e5_package import package_student

        return package_student(self.out, self.final_model(), Path(self.cfg.package_dir), self.cfg, self.log)


def _cut(tok, prompt: str, text: str, max_length: int) -> str:
    """``text`` cut to what ``max_length`` tokens (prompt and the two specials included) hold, on a piece boundary,
    so that the teacher embeds exactly what the student will be trained on."""
    if len(prompt) + len(text) + 2 <= max_length:  # a piece covers at least one character
        return text
    enc = tok.encode(prompt + text, add_special_tokens=False)
    if len(enc.ids) <= max_length - 2:
        return text
    end = enc.offsets[max_length - 3][1] - len(prompt)
    return text[: max(end, 1)]


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp, array)
    tmp.replace(path)


def run_e5_student(cfg: E5StudentConfig, only: list[str] | None = None) -> dict[str, Any]:
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    return E5StudentRecipe(cfg, log=lambda m: print(m, file=sys.stderr, flush=True)).run(only)
