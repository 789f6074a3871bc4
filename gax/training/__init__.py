"""Training: the update step every variant shares, the loop around it, the mesh, the train
state's checkpoints, populations, health signals and what a run writes to its workdir."""
