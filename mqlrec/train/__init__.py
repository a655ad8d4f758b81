"""Training stages (tokenize → pre-train → train → test), checkpoints, DDP evaluation."""
