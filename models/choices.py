"""The named choices, importable without torch: the Recipe validates against them (before any heavy import),
models/classify.py and models/augment.py implement the trainer's, and tracking/ reads the real-only one."""

AUGMENTATIONS = ("none", "flip", "flip_rotate", "trivial")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
# The generator choice of a real-only recipe (no generator, nothing synthetic); a real-only recipe logs it as its
# `generator` param, which is how tracking/ reads real-only back from MLflow.
NO_GENERATOR = "none"
