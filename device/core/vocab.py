"""The shared vocabulary: signs, grades and EASI body regions.

Every other module names these through the enums below, never as bare strings.
The string values are what goes on disk (folder names, CSV columns, JSON keys).
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Sign(str, Enum):
    """The EASI signs. Papulation is entered by the clinician only: a 2D photo
    cannot show swelling height, so no model grades it (Yoon et al. 2017)."""

    ERYTHEMA = "erythema"
    EXCORIATION = "excoriation"
    LICHENIFICATION = "lichenification"
    PAPULATION = "papulation"

    def __str__(self) -> str:
        return self.value


#: The signs a model grades from a photo, in the order used everywhere.
MODEL_SIGNS: tuple[Sign, ...] = (Sign.ERYTHEMA, Sign.EXCORIATION, Sign.LICHENIFICATION)

#: Signs the clinician enters by hand.
CLINICIAN_SIGNS: tuple[Sign, ...] = (Sign.PAPULATION,)


class Grade(IntEnum):
    NONE = 0
    MILD = 1
    MODERATE = 2
    SEVERE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


GRADES: tuple[Grade, ...] = tuple(Grade)
NUM_GRADES = len(GRADES)


class Region(str, Enum):
    """The four EASI body regions (genitals count with the trunk, buttocks with
    the lower limbs)."""

    HEAD_NECK = "head_neck"
    UPPER_LIMBS = "upper_limbs"
    TRUNK = "trunk"
    LOWER_LIMBS = "lower_limbs"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {
            Region.HEAD_NECK: "Head and neck",
            Region.UPPER_LIMBS: "Upper limbs",
            Region.TRUNK: "Trunk",
            Region.LOWER_LIMBS: "Lower limbs",
        }[self]


REGIONS: tuple[Region, ...] = tuple(Region)


def parse_sign(text: str, *, model_only: bool = False) -> Sign:
    """Parse a sign name, case-insensitively, with an error that lists the choices."""
    choices = MODEL_SIGNS if model_only else tuple(Sign)
    key = text.strip().lower()
    for sign in choices:
        if sign.value == key:
            return sign
    names = ", ".join(s.value for s in choices)
    raise ValueError(f"unknown sign {text!r}: expected one of {names}")


def parse_grade(text: str | int) -> Grade:
    """Parse a grade given as 0-3 or as its name (none, mild, moderate, severe)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if 0 <= text < NUM_GRADES:
            return Grade(text)
    else:
        key = str(text).strip().lower()
        if key.isdigit() and 0 <= int(key) < NUM_GRADES:
            return Grade(int(key))
        for grade in GRADES:
            if grade.label == key:
                return grade
    raise ValueError(
        f"unknown grade {text!r}: expected 0, 1, 2, 3 or none, mild, moderate, severe"
    )


def parse_region(text: str) -> Region:
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    for region in REGIONS:
        if region.value == key:
            return region
    names = ", ".join(r.value for r in REGIONS)
    raise ValueError(f"unknown body region {text!r}: expected one of {names}")


class CropMode(str, Enum):
    """How a scan's crop square was chosen. The configuration (``crop.mode``) and the
    pipeline choose among the first three (``CONFIG_CROP_MODES``); the store also records
    a square staff moved on the frozen frame and one registered to a followed lesion's
    last photo (device.vision.register)."""

    GUIDE = "guide"
    AUTO = "auto"
    BOX = "box"
    MOVED = "moved"
    REGISTERED = "registered"


#: The crop modes a configuration may choose (the others are recorded, not chosen).
CONFIG_CROP_MODES = (CropMode.GUIDE, CropMode.AUTO, CropMode.BOX)


class CropDoubt(str, Enum):
    """Why the auto crop is unsure of its square and used the guide square instead."""

    NOT_SKIN = "not_skin"                # the body part is small or not skin-coloured
    NO_SQUARE_ALLOWED = "no_square_allowed"    # every square breaks a rule (device.vision.avoid)
    NOTHING_STANDS_OUT = "nothing_stands_out"  # no square's lesion score stands out

    @property
    def label(self) -> str:
        """The doubt in a few words, for a contact sheet or the result page."""
        return self.value.replace("_", " ")


class Role(str, Enum):
    """Who may see what on the device (device.web.users keeps the users). Admin may do
    everything the other two may. Recorded beside each override and review."""

    STAFF = "staff"            # clinic staff: scans, visits, exports
    TECHNICIAN = "technician"  # device status, model packs
    ADMIN = "admin"            # everything, including users

    def __str__(self) -> str:
        return self.value
