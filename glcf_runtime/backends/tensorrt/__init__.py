"""Native TensorRT: the engine builder (on the target GPU), the runner and its CUDA seam."""
