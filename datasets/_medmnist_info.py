"""Class names of the supported MedMNIST 2D flags, copied from medmnist 3.0.2 ``INFO[flag]["label"]``.

Embedded so that reading a local .npz needs neither the medmnist package nor the network;
tests compare this table with the installed package when it imports.
"""

from __future__ import annotations

_ORGAN_LABELS = (
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
)

# Ordered by label index; only single-label 2D tasks (chestmnist is multi-label).
MEDMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "pathmnist": (
        "adipose",
        "background",
        "debris",
        "lymphocytes",
        "mucus",
        "smooth muscle",
        "normal colon mucosa",
        "cancer-associated stroma",
        "colorectal adenocarcinoma epithelium",
    ),
    "dermamnist": (
        "actinic keratoses and intraepithelial carcinoma",
        "basal cell carcinoma",
        "benign keratosis-like lesions",
        "dermatofibroma",
        "melanoma",
        "melanocytic nevi",
        "vascular lesions",
    ),
    "octmnist": ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
    "pneumoniamnist": ("normal", "pneumonia"),
    "retinamnist": ("0", "1", "2", "3", "4"),
    "breastmnist": ("malignant", "normal, benign"),
    "bloodmnist": (
        "basophil",
        "eosinophil",
        "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ),
    "tissuemnist": (
        "Collecting Duct, Connecting Tubule",
        "Distal Convoluted Tubule",
        "Glomerular endothelial cells",
        "Interstitial endothelial cells",
        "Leukocytes",
        "Podocytes",
        "Proximal Tubule Segments",
        "Thick Ascending Limb",
    ),
    "organamnist": _ORGAN_LABELS,
    "organcmnist": _ORGAN_LABELS,
    "organsmnist": _ORGAN_LABELS,
}

MEDMNIST_FLAGS: tuple[str, ...] = tuple(MEDMNIST_CLASSES)

# Flags medmnist knows that ganmix deliberately refuses, with the reason shown to the user.
UNSUPPORTED_FLAGS: dict[str, str] = {
    "chestmnist": "chestmnist is multi-label, which ganmix does not support yet "
    "(ganmix needs exactly one class per image); pick a single-label flag such as pneumoniamnist",
}

# MedMNIST+ ships every 2D flag at these sizes; 28 px is `<flag>.npz`, the others `<flag>_<size>.npz`.
MEDMNIST_SIZES = (28, 64, 128, 224)
NATIVE_SIZE = 28

# Where users fetch a file by hand (the same Zenodo record medmnist 3 downloads from).
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{file}?download=1"


def medmnist_file(flag: str, size: int | None) -> str:
    """MedMNIST's own file name for `flag` at `size` px (None: 28 px)."""
    return f"{flag}.npz" if size in (None, NATIVE_SIZE) else f"{flag}_{size}.npz"
