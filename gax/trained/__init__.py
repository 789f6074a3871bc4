"""What reads a trained run back from its workdir: its checkpoints evaluated or sampled,
and an inference network trained for its generator."""
