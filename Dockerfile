# koembed on CPU, slim: the inference stack (ONNX Runtime, tokenizers, FAISS) and the server; no torch.
#   docker build -t koembed .            (or: podman build -t koembed .)
#   docker run --rm -p 8000:8000 -v "$PWD/my-index:/data/my-index:ro" koembed serve /data/my-index --host 0.0.0.0
# Any koembed command runs the same way: docker run --rm -v "$PWD:/work" -w /work koembed index docs.jsonl -o ix
# Indexes record the embedded model by name (kominilm-nano-sts), so one built outside the container is searched
# inside it. docs/install.md has the sizes and what the extras add.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY koembed ./koembed
COPY distill ./distill
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.12-slim
# libgomp: FAISS's OpenMP runtime (the faiss-cpu wheel links it from the system on Debian).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/koembed-*.whl)[serve,parquet]" && rm -rf /wheels
RUN useradd --create-home koembed
USER koembed
ENV KOEMBED_CACHE=/home/koembed/.cache/koembed
EXPOSE 8000
ENTRYPOINT ["koembed"]
CMD ["--help"]
