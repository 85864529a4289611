"""ONNX export of SAM models: encoder, official-interface decoder, batched decoder, variants, manifest."""
