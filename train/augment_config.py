"""Which augmentations run (no TensorFlow here, so ``pi-inspect train --help`` stays cheap)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

NAMES = ("brightness", "roll", "hflip", "vflip", "rotation", "zoom", "shift", "blur")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, and how strongly. All off is the identity."""

    # Defaults for any part: lighting changes and small shifts happen on every line. A flip, a
    # turn or a periodic roll is true only of some parts (a seam, not a digit or a connector):
    # the user switches them on with --augment where the part allows.
    brightness: bool = True
    roll: bool = False
    hflip: bool = False
    vflip: bool = False
    rotation: bool = False
    zoom: bool = False
    shift: bool = True
    blur: bool = False
    brightness_p: float = 0.7
    rotation_deg: float = 10.0
    zoom_range: float = 0.1
    shift_range: float = 0.1
    blur_p: float = 0.3
    blur_sigma_max: float = 1.2

    @classmethod
    def from_names(cls, names: str) -> AugmentConfig:
        """``"brightness,roll,blur"`` -> only those on; ``"none"`` -> all off."""
        from pi_inspect.edge.errors import ConfigError

        chosen = {n.strip() for n in names.split(",") if n.strip()} - {"none"}
        unknown = chosen - set(NAMES)
        if unknown:
            raise ConfigError(
                f"unknown augmentation(s) {sorted(unknown)}; choose from {', '.join(NAMES)}"
            )
        return cls(**{name: name in chosen for name in NAMES})

    def enabled(self) -> list[str]:
        return [name for name in NAMES if getattr(self, name)]

    def to_dict(self) -> dict:
        return asdict(self)
