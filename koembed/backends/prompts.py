"""A model folder's prompts: text put before each input, by role (query, document), as sentence-transformers does.

A sentence-transformers folder may name prompts in ``config_sentence_transformers.json``
(``{"prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": null}``). Both
backends honour them the same way, because the encoder applies them before tokenising: the prompt is
put before the (NFC-normalised) text and counts toward ``max_seq_length`` like any other token, which
is what ``SentenceTransformer.encode(..., prompt_name=...)`` does.

Roles follow sentence-transformers' ``encode_query`` / ``encode_document``: a query uses the prompt
named ``query``, a document the first of ``document``, ``passage``, ``corpus``; a role the model names
no prompt for gets the default prompt (``default_prompt_name``), else none. No prompt is the empty
string throughout, so that "none" is one value in manifests and comparisons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from koembed.errors import InputError, KoembedError

Role = Literal["query", "document"]
QUERY: Role = "query"
DOCUMENT: Role = "document"
ROLES: tuple[Role, ...] = (QUERY, DOCUMENT)
# The prompt names each role takes, first found wins (sentence-transformers' encode_query / encode_document).
ROLE_PROMPT_NAMES: dict[str, tuple[str, ...]] = {QUERY: ("query",), DOCUMENT: ("document", "passage", "corpus")}
CONFIG_FILE = "config_sentence_transformers.json"


@dataclass(frozen=True)
class ModelPrompts:
    """The prompts a model folder names, and the one used when a call names none."""

    prompts: dict[str, str] = field(default_factory=dict)
    default_name: str | None = None

    @property
    def default(self) -> str:
        return self.prompts.get(self.default_name, "") if self.default_name else ""

    def resolve(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The text put before each input: ``prompt`` itself, the prompt called ``prompt_name``, or the default."""
        if prompt is not None:
            if prompt_name is not None:
                raise InputError("pass a prompt name or a literal prompt, not both")
            return prompt
        if prompt_name is None:
            return self.default
        if prompt_name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise InputError(f"unknown prompt name {prompt_name!r}; this model's prompts: {known}")
        return self.prompts[prompt_name]

    def for_role(self, role: str) -> str:
        """The prompt of ``role`` (``query`` or ``document``): its named prompt, else the default, else ``""``."""
        if role not in ROLE_PROMPT_NAMES:
            raise InputError(f"unknown input role {role!r}; choose one of: {', '.join(ROLES)}")
        for name in ROLE_PROMPT_NAMES[role]:
            if name in self.prompts:
                return self.prompts[name]
        return self.default


def read_prompts(folder: str | Path | None, kind: str = "sentence-transformers") -> ModelPrompts:
    """The prompts of the model in ``folder`` (none for a bare encoder or a folder without the config file)."""
    if folder is None or kind != "sentence-transformers":
        return ModelPrompts()
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return ModelPrompts()
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KoembedError(f"model file {path} is not valid JSON ({exc})") from None
    prompts = config.get("prompts") or {} if isinstance(config, dict) else {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise KoembedError(f"model file {path}: 'prompts' must map names to strings")
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise KoembedError(f"model file {path}: default_prompt_name {default!r} is not one of its prompts "
                           f"({', '.join(sorted(prompts)) or 'none'})")
    return ModelPrompts(dict(prompts), default)
