"""Taking embeddings out of mmbind: a tower as an ONNX or TorchScript graph (``tower``) and a
store collection in the TensorBoard embedding projector's format (``projector``)."""
