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
CLASSIFIER_NAMES = ("convnext_tiny", "efficientnet_b0", "resnet18", "resnet50", "small_cnn")

PRETRAINED = ("none", "imagenet")
# Classifier family -> (torchvision builder, its weights enum). `resnet18` with pretrained "none" stays the
# from-scratch 3x3-stem network of models/classifiers.py (old recipes run as they ran); with "imagenet" it is
# torchvision's own ResNet-18 with its ImageNet stem and weights.
BACKBONES: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights"),
    "convnext_tiny": ("convnext_tiny", "ConvNeXt_Tiny_Weights"),
}
# The size an ImageNet backbone gets by default: the one its weights were trained at.
PRETRAINED_SIZE = 224
# Below this a backbone's last stage has nothing left (ConvNeXt downsamples by 32 without padding).
MIN_BACKBONE_SIZE = {"convnext_tiny": 32}
