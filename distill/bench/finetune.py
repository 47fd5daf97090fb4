"""Fine-tune a backbone on one benchmark task with the Hugging Face ``Trainer``.

One function, :func:`finetune`, for every head: it tokenises the task's rows, trains with
``AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering}``, evaluates on the
*dev* split after every epoch, keeps the checkpoint with the best dev score, and only then scores
that one checkpoint on test. The same code runs on CPU, one GPU, or several GPUs (launch with
``torchrun`` / ``accelerate launch``: the Trainer does the distribution).

QA follows the SQuAD recipe: long contexts become overlapping windows (``stride`` tokens of
overlap), each window is trained on the answer span when it contains it (else on [CLS]), and at
evaluation the best-scoring span over all windows of a question is mapped back to the context
through the tokenizer's offset mapping.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distill.bench import metrics as M
from distill.bench.task_data import TaskData
from koembed import stats
from koembed.errors import InputError

MAX_QUERY_TOKENS = 64  # questions are cut to this many tokens, as in the SQuAD/KorQuAD scripts
MAX_ANSWER_TOKENS = 30
N_BEST = 20


@dataclass
class FinetuneConfig:
    """Hyperparameters of one fine-tuning run (the task's defaults unless overridden)."""

    max_length: int
    epochs: float
    batch_size: int
    learning_rate: float
    stride: int = 0
    seed: int = 42
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # KoMiniLM-Finetune used no warm-up
    device: str | None = None  # "cpu" forces the CPU even where a GPU exists
    quiet: bool = False


def hf_model_folder(path: str | Path) -> Path:
    """The folder holding the Hugging Face model: a sentence-transformers folder keeps it in its first module."""
    path = Path(path)
    modules = path / "modules.json"
    if modules.is_file():
        first = json.loads(modules.read_text(encoding="utf-8"))[0].get("path", "")
        return path / first if first else path
    return path


def finetune(model_path: str | Path, data: TaskData, config: FinetuneConfig, work_dir: str | Path) -> dict:
    """Fine-tune ``model_path`` on ``data``; return test metrics, the best dev metrics and run facts.

    Checkpoints go to ``work_dir`` and are deleted at the end; nothing else is written.
    """
    import torch
    import transformers
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # weight loading/saving bars; the Trainer keeps its own
    task, start = data.task, time.perf_counter()
    folder = hf_model_folder(model_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"{folder}: a fast tokenizer (tokenizer.json) is needed for offsets and word ids")
    head = _HEADS[task.head](tokenizer, data, config)
    transformers.set_seed(config.seed)  # the head's random init depends on the seed
    model = head.model(folder)
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and config.max_length > positions:
        raise InputError(f"{task.name}: max length {config.max_length} exceeds the {positions} positions of "
                         f"{model_path}; pass --max-length {positions} or less")
    train_feats, _ = head.features(data.train)
    dev_feats, dev_meta = head.features(data.dev)
    test_feats, test_meta = head.features(data.test)

    work_dir = Path(work_dir)
    args = TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the training steps
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,  # plus the best one, which the Trainer always keeps
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=task.metric,
        greater_is_better=task.greater_is_better,
        seed=config.seed,
        report_to="none",
        logging_strategy="epoch",
        disable_tqdm=config.quiet,
        use_cpu=config.device == "cpu",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available() and config.device != "cpu",
    )
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=head.collator(),
        train_dataset=train_feats,
        eval_dataset=dev_feats,
        processing_class=tokenizer,
        compute_metrics=lambda p: head.score(p.predictions, data.dev, dev_meta),
    )
    if config.quiet:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    trainer.train()
    trainer.compute_metrics = None  # predict() would otherwise score test windows with the dev scorer
    test_pred = trainer.predict(test_feats).predictions
    test_metrics = head.score(test_pred, data.test, test_meta)
    best_dev = _best_dev(trainer.state.log_history, task.metric, trainer.state.best_metric)
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    base = getattr(trainer.model, "base_model", trainer.model)
    return {
        "metrics": test_metrics,
        "dev_metrics": best_dev,
        "best_epoch": best_dev.get("epoch"),
        # Backbone size as in the KoMiniLM table: embeddings + encoder, without pooler or task head.
        "params": int(sum(p.numel() for n, p in base.named_parameters() if not n.startswith("pooler."))),
        "params_total": int(sum(p.numel() for p in trainer.model.parameters())),
        "examples": {"train": len(data.train), "dev": len(data.dev), "test": len(data.test)},
        "features": {"train": len(train_feats), "dev": len(dev_feats), "test": len(test_feats)},
        "train_steps": int(trainer.state.global_step),
        "seconds": round(time.perf_counter() - start, 2),
        "device": str(trainer.args.device),
        "config": asdict(config),
        "torch": torch.__version__,
    }


def _best_dev(history: list[dict], metric: str, best: float | None) -> dict:
    evals = [h for h in history if f"eval_{metric}" in h]
    if not evals:
        return {}
    chosen = next((h for h in evals if h[f"eval_{metric}"] == best), evals[-1])
    timing = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    return {k.removeprefix("eval_"): v for k, v in chosen.items()
            if (k.startswith("eval_") and k not in timing) or k == "epoch"}


class _Sequence:
    """Sequence classification (``labels``) or regression (one output, ``score``) over 1-2 texts."""

    def __init__(self, tokenizer, data: TaskData, config: FinetuneConfig) -> None:
        self.tok, self.data, self.config = tokenizer, data, config
        self.regression = data.task.head == "regression"

    def model(self, folder: Path):
        from transformers import AutoModelForSequenceClassification

        if self.regression:
            return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, problem_type="regression")
        labels = list(self.data.labels)
        return AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
        )

    def features(self, rows: list[dict]) -> tuple[list[dict], None]:
        fields = self.data.task.text_fields
        texts = [[r[f] for r in rows] for f in fields]
        enc = self.tok(*texts, truncation=True, max_length=self.config.max_length)
        index = {lab: i for i, lab in enumerate(self.data.labels)}
        feats = []
        for i, r in enumerate(rows):
            f = {k: enc[k][i] for k in enc}
            f["labels"] = float(r["score"]) if self.regression else index[r["label"]]
            feats.append(f)
        return feats, None

    def collator(self):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.tok)

    def score(self, predictions, rows: list[dict], _meta) -> dict:
        logits = np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)
        if self.regression:
            pred, gold = logits.reshape(len(rows), -1)[:, 0], [r["score"] for r in rows]
            return {"spearman": stats.spearman(pred, gold), "pearson": stats.pearson(pred, gold)}
        pred = [self.data.labels[i] for i in logits.argmax(-1)]
        return {"accuracy": M.accuracy(pred, [r["label"] for r in rows])}


class _Token:
    """Token classification: each word is labelled on its first sub-token; words cut by truncation count as O."""

    def __init__(self, tokenizer, data: TaskData, config: FinetuneConfig) -> None:
        self.tok, self.data, self.config = tokenizer, data, config
        self.index = {lab: i for i, lab in enumerate(data.labels)}

    def model(self, folder: Path):
        from transformers import AutoModelForTokenClassification

        labels = list(self.data.labels)
        return AutoModelForTokenClassification.from_pretrained(
            folder, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)},
        )

    def features(self, rows: list[dict]) -> tuple[list[dict], list[list[int]]]:
        enc = self.tok([r["tokens"] for r in rows], is_split_into_words=True, truncation=True,
                       max_length=self.config.max_length)
        feats, firsts = [], []
        for i, r in enumerate(rows):
            word_ids, labels, first, seen = enc.word_ids(i), [], [], set()
            for pos, w in enumerate(word_ids):
                if w is None or w in seen:
                    labels.append(-100)
                else:
                    seen.add(w)
                    first.append(pos)
                    labels.append(self.index[r["tags"][w]])
            f = {k: enc[k][i] for k in enc}
            f["labels"] = labels
            feats.append(f)
            firsts.append(first)
        return feats, firsts

    def collator(self):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(self.tok)

    def score(self, predictions, rows: list[dict], firsts: list[list[int]]) -> dict:
        ids = np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions).argmax(-1)
        preds = []
        for i, r in enumerate(rows):
            tags = [self.data.labels[ids[i, p]] for p in firsts[i]]
            preds.append(tags + ["O"] * (len(r["tags"]) - len(tags)))
        return M.entity_f1(preds, [r["tags"] for r in rows])


class _QA:
    """Extractive QA over sliding windows; see the module docstring."""

    def __init__(self, tokenizer, data: TaskData, config: FinetuneConfig) -> None:
        self.tok, self.data, self.config = tokenizer, data, config
        self.max_query = min(MAX_QUERY_TOKENS, config.max_length // 2)
        # A window must keep more context tokens than it overlaps with the previous one.
        self.stride = max(0, min(config.stride, config.max_length - self.max_query - 4))

    def model(self, folder: Path):
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering.from_pretrained(folder)

    def _questions(self, rows: list[dict]) -> list[str]:
        enc = self.tok([r["question"] for r in rows], add_special_tokens=False, return_offsets_mapping=True)
        return [r["question"][: off[self.max_query - 1][1]] if len(off) > self.max_query else r["question"]
                for r, off in zip(rows, enc["offset_mapping"], strict=True)]

    def features(self, rows: list[dict]) -> tuple[list[dict], list[tuple[int, list]]]:
        enc = self.tok(self._questions(rows), [r["context"] for r in rows], truncation="only_second",
                       max_length=self.config.max_length, stride=self.stride, return_overflowing_tokens=True,
                       return_offsets_mapping=True)
        feats, meta = [], []
        for i, offsets in enumerate(enc["offset_mapping"]):
            ex = enc["overflow_to_sample_mapping"][i]
            seq = enc.sequence_ids(i)
            f = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            # Eval windows carry positions too: the Trainer only calls compute_metrics when labels exist.
            f["start_positions"], f["end_positions"] = self._span(rows[ex], offsets, seq)
            feats.append(f)
            meta.append((ex, [o if s == 1 else None for o, s in zip(offsets, seq, strict=True)]))
        return feats, meta

    @staticmethod
    def _span(row: dict, offsets: list, seq: list) -> tuple[int, int]:
        if not row["answers"]:
            return 0, 0
        answer = row["answers"][0]
        text, start = answer["text"], answer["answer_start"]
        if row["context"][start : start + len(text)] != text:
            # The reader NFC-normalises and strips contexts, which can shift offsets: find the nearest match.
            hits = [j for j in range(len(row["context"])) if row["context"].startswith(text, j)]
            if not hits:
                return 0, 0
            start = min(hits, key=lambda j: abs(j - start))
        end = start + len(text)
        ctx = [p for p, s in enumerate(seq) if s == 1]
        if not ctx or offsets[ctx[0]][0] > start or offsets[ctx[-1]][1] < end:
            return 0, 0  # the answer is not (wholly) inside this window: point at [CLS]
        s = next(p for p in ctx if offsets[p][1] > start)
        e = next(p for p in reversed(ctx) if offsets[p][0] < end)
        return s, e

    def collator(self):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.tok)

    def score(self, predictions, rows: list[dict], meta: list[tuple[int, list]]) -> dict:
        starts, ends = (np.asarray(p) for p in predictions[:2])
        best: dict[int, tuple[float, str]] = {}
        for f, (ex, offsets) in enumerate(meta):
            n = len(offsets)
            s_idx = np.argsort(starts[f, :n])[::-1][:N_BEST]
            e_idx = np.argsort(ends[f, :n])[::-1][:N_BEST]
            for s in s_idx:
                for e in e_idx:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                        continue
                    value = float(starts[f, s] + ends[f, e])
                    if ex not in best or value > best[ex][0]:
                        best[ex] = (value, rows[ex]["context"][offsets[s][0] : offsets[e][1]])
        predictions_by_id = {rows[ex]["id"]: text for ex, (_, text) in best.items()}
        golds = {r["id"]: [a["text"] for a in r["answers"]] for r in rows}
        return M.korquad_em_f1(predictions_by_id, golds)


_HEADS = {"classification": _Sequence, "regression": _Sequence, "token": _Token, "qa": _QA}
