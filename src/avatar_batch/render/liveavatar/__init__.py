"""Live Avatar runner: the causal audio-driven DiT of Wan2.2-S2V-14B with the
DMD LoRA, its text/audio encoders and VAE, loaded from the official folders."""
