"""Evaluating trained detector models on a manifest through the served ONNX graphs
(`vcfad eval-detector`, `set-threshold`)."""
