"""The ADE20K label set (SceneParsing 150 classes + "other") and its default region groups.

Index k is channel k of DeepLab's ADE20K logits; labels 1..150 follow CSAILVision's
``objectInfo150.txt`` (short names: the first synonym), 0 is "other/unlabelled".
"""

__all__ = ["ADE20K_LABELS", "DEFAULT_ADE20K_GROUPS"]

# fmt: off
ADE20K_LABELS: tuple[str, ...] = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair",
    "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base",
    "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
# fmt: on

# Regions whose contents share colour and texture statistics, so one style (Gram
# matrices) or one histogram serves all of them. Terrain (mountain, hill, rock) goes with
# the ground: seen from afar it is a textured, earth-coloured surface, not foliage.
# Labels not listed here (objects, furniture, "other") form the final region "other".
# fmt: off
DEFAULT_ADE20K_GROUPS: dict[str, list[str]] = {
    "sky": ["sky"],
    "vegetation": ["tree", "grass", "plant", "field", "flower", "palm"],
    "building": [
        "wall", "building", "ceiling", "windowpane", "door", "house", "fence", "railing", "column",
        "skyscraper", "grandstand", "screen door", "bridge", "hovel", "tower", "awning", "bannister",
        "canopy", "booth", "pier",
    ],
    "ground": [
        "floor", "road", "sidewalk", "earth", "mountain", "rug", "rock", "sand", "path", "stairs",
        "runway", "stairway", "hill", "dirt track", "land", "step",
    ],
    "water": ["water", "sea", "river", "swimming pool", "waterfall", "fountain", "lake"],
    "person": ["person"],
    "vehicle": ["car", "boat", "bus", "truck", "airplane", "van", "ship", "minibike", "bicycle"],
}
# fmt: on
