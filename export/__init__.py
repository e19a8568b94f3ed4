"""Laptop side: torch models (tokenizer, student tracker), training, ONNX export, bundles."""
