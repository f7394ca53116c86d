"""Files on disk: atomic writes, output folders, NIfTI label maps, dataset tables, safetensors checkpoints."""
