"""The named choices, importable without torch: the Recipe validates against them (before any heavy import),
models/classify.py and models/augment.py implement the trainer's, and tracking/ reads the real-only one."""

AUGMENTATIONS = ("none", "flip", "flip_rotate", "trivial")
LR_SCHEDULES = ("onecycle", "cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
# The trainer's defaults, in one place: TrainSettings (models/classify.py) and the Recipe (search/recipe.py)
# both read them.
TRAINER_DEFAULTS = {"batch_size": 128, "weight_decay": 1e-4, "lr_schedule": "onecycle", "augment": "flip_rotate",
                    "class_weight": "none", "select_metric": "val_auc"}
# The generator choice of a real-only recipe (no generator, nothing synthetic); a real-only recipe logs it as its
# `generator` param, which is how tracking/ reads real-only back from MLflow.
NO_GENERATOR = "none"
# The classifier families (models/classifiers.py registers them; tests/test_families.py keeps both equal), so
# the Recipe judges `classifier` without importing torch.
CLASSIFIER_NAMES = ("resnet18", "small_cnn")
