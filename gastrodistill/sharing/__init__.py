"""Stage 4b: the shareable artifact (safetensors, JSON card, PNG grid) and training from it elsewhere."""
