"""CrystalGF G: LLM constraint generators (LoRA fine-tuning, constrained decoding)."""
