"""The classifier trainer's named choices, importable without torch: the Recipe validates against them
(before any heavy import) and models/classify.py and models/augment.py implement them."""

AUGMENTATIONS = ("none", "flip", "flip_rotate", "trivial")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
