"""kopf controllers: `handlers` registers them, `run` runs them; kopf is imported nowhere else."""
