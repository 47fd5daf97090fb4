"""The ONNX Runtime backends (``onnx``, ``onnx-int8``) and everything that makes their model files.

- :mod:`~koembed.backends.onnx.backend`: the backends themselves (inference needs no torch);
- :mod:`~koembed.backends.onnx.pipeline`: the sentence-transformers pipeline (pooling, normalisation)
  read from a model folder without importing sentence-transformers;
- :mod:`~koembed.backends.onnx.export`: torch -> ONNX export of encoder + pooling (the only torch user);
- :mod:`~koembed.backends.onnx.quantize`: int8 quantisation, calibrated on Korean sentences;
- :mod:`~koembed.backends.onnx.cache`: exported/quantised files cached by model fingerprint.

Nothing is imported here, so choosing a backend by name loads only what it uses.
"""
