"""Generator and classifier families behind small registries. No Ray, no MLflow."""
