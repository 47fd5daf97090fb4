"""Request and response bodies of the HTTP API (they are also its OpenAPI schema, ``docs/openapi.json``).

Limits that depend on the server's settings (texts per request, characters per text, k) are checked
by :mod:`koembed.server.service` against :class:`~koembed.server.config.ServeConfig`, not here, so that
the error names the setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator

from koembed.index.modes import DEFAULT_FUSION, FUSIONS, MODES

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None
# The names come from koembed.index.modes and koembed.lexical.fusion (one home each); pydantic needs Literals.
Mode = Literal[MODES]  # type: ignore[valid-type]
FusionName = Literal[FUSIONS]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- /search ---------------------------------------------------------------------------------------------
class SearchRequest(_Strict):
    queries: list[StrictStr] = Field(..., min_length=1, description="Query texts (at least one).",
                                     examples=[["맛있는 한국 음식"]])
    k: StrictInt = Field(10, description="Hits per query (1 to the server's max_k).")
    mode: Mode | None = Field(None, description="hybrid, dense or lexical; default: each index's own (hybrid where "
                                                "it has a lexical part, else dense). /info lists each index's modes.")
    dense_weight: float | None = Field(None, ge=0.0, le=1.0, description="Hybrid only: the dense side's weight "
                                       "in the fusion (default: the one the model records).")
    fusion: FusionName | None = Field(None, description="Hybrid only: how the two sides are fused "
                                                        f"(default: {DEFAULT_FUSION}).")
    filters: dict[str, Scalar | list[Scalar]] | None = Field(
        None, description="Metadata filter: every key must equal its value (a list matches any of its values).",
        examples=[{"lang": "ko", "year": [2023, 2024]}])
    index: StrictStr | list[StrictStr] | None = Field(
        None, description="Index name, or several; default: every index the server serves.")
    highlight: StrictBool = Field(False, description="koembed: give each hit `highlights`, the [start, end) "
                                  "character spans of its text that hold the query's words (the index's analyser's "
                                  "tokens), as the search page marks them.")


class SearchHit(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    score: float | None = Field(..., description="What the mode ranks by: cosine similarity (dense), BM25 "
                                                 "(lexical) or the fused score (hybrid).")
    scores: dict[str, float | None] = Field(
        default_factory=dict, description="The signals behind it: dense, lexical, fused (null where the mode did "
                                          "not compute one).")
    highlights: list[list[int]] | None = Field(None, description="With highlight: true, the [start, end) spans of "
                                                 "text matching the query's words.")


class QueryResult(BaseModel):
    query: str
    hits: list[SearchHit]


class IndexResults(BaseModel):
    name: str
    mode: str = Field(..., description="The mode this index answered in.")
    generation: int = Field(..., description="The committed generation of the index that answered.")
    count: int = Field(..., description="Documents in that generation.")
    results: list[QueryResult] = Field(..., description="One entry per query, in request order.")


class SearchResponse(BaseModel):
    mode: str | None = Field(..., description="The mode asked for (null: each index's default).")
    k: int
    indexes: list[IndexResults]


# -- /v1/embeddings (OpenAI's shape) ----------------------------------------------------------------------
class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. Fields OpenAI defines and this server has no use for are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    # Token arrays pass validation so that the route can refuse them with a 400 that says what to send instead.
    input: str | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] = Field(
        ..., description="A text or a list of texts. Token arrays (OpenAI's lists of token ids) are refused with a "
                         "400: this server's model has its own tokenizer; send the text.", examples=["안녕하세요"])
    model: str | None = Field(None, description="Ignored: the server has one model, named in the response and in "
                                                "/v1/models.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes, base64-encoded.")
    dimensions: int | None = Field(None, description="Must equal the model's dimension if given (no shortening).")
    input_type: Literal["query", "document"] | None = Field(
        None, description="koembed: encode the inputs as search queries or as documents, with the model's prompt "
                          "for that role (for example 'query: ' / 'passage: '); default: the model's default prompt.")
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: Any) -> Any:
        if is_token_array(value):
            return value
        if isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            raise ValueError("must be a string or a list of strings")
        if not isinstance(value, str | list):
            raise ValueError("must be a string or a list of strings")
        return value


def is_token_array(value: Any) -> bool:
    """Whether an embeddings ``input`` is OpenAI's token form: a list of ints, or a list of such lists."""
    def ints(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)

    return isinstance(value, list) and bool(value) and (ints(value) or all(ints(v) for v in value))


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
    truncated: int = Field(0, description="koembed: inputs longer than the model's token limit, cut to it.")


# -- /encode -------------------------------------------------------------------------------------------------
class EncodeRequest(_Strict):
    texts: list[StrictStr] = Field(..., min_length=1, description="Texts to encode.", examples=[["안녕하세요"]])


class EncodeResponse(BaseModel):
    model: str
    fingerprint: str
    dim: int
    vectors: list[list[float]] = Field(..., description="L2-normalised float32 vectors, row i for texts[i].")
    tokens: int = Field(..., description="Tokens the model saw (each text capped at max_seq_length).")
    truncated: int = Field(..., description="Texts longer than max_seq_length tokens, cut to it.")


# -- /info, /healthz -----------------------------------------------------------------------------------------
class ModelInfo(BaseModel):
    name: str
    fingerprint: str
    dim: int
    max_seq_length: int
    backend: str


class IndexInfo(BaseModel):
    name: str
    generation: int
    count: int
    type: str = Field(..., description="The FAISS index type (factory string).")
    index_type: str = Field(..., description="The type as requested when the index was built.")
    dim: int
    model: dict[str, Any]
    updated: str
    modes: list[str] = Field(..., description="The modes this index can answer in.")
    default_mode: str


class InfoResponse(BaseModel):
    version: str
    model: ModelInfo
    modes: list[str]
    indexes: list[IndexInfo]
    limits: dict[str, int]
    auth: bool


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- /v1/models (OpenAI's shape) ---------------------------------------------------------------------------
class ModelCard(BaseModel):
    id: str = Field(..., description="The model's name (koembed's name, a Hub id, or a model folder's name).")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "koembed"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- the write API (/v1/indexes/{index}/documents; off unless --allow-writes) -------------------------------
class Document(_Strict):
    id: StrictStr = Field(..., description="The document's id; an existing id is replaced.")
    text: StrictStr
    metadata: dict[str, Any] | None = Field(None, description="A JSON object stored with the document (filters).")


class UpsertRequest(_Strict):
    documents: list[Document] = Field(..., min_length=1, description="Documents to add or replace (at most "
                                      "max_batch).", examples=[[{"id": "d1", "text": "서울은 맑음"}]])


class DeleteRequest(_Strict):
    ids: list[StrictStr] = Field(..., min_length=1, description="Ids to delete; unknown ids are ignored.")


class WriteResponse(BaseModel):
    index: str
    added: int = 0
    replaced: int = 0
    removed: int = 0
    generation: int = Field(..., description="The generation the write committed (now served).")
    count: int = Field(..., description="Documents in that generation.")
