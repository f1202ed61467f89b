"""Maps the repository's top folders to one import namespace; the rest is in pyproject.toml.

``edge/``, ``train/`` and ``convert/`` stay where users know them and install as
``pi_inspect.edge``, ``pi_inspect.train`` and ``pi_inspect.convert``: the wheel's only
top-level name is ``pi_inspect``, so a user's own ``edge/`` or ``train.py`` shadows nothing.
"""

from setuptools import find_packages, setup

PARTS = ("edge", "train", "convert")

packages = ["pi_inspect"]
for part in PARTS:
    packages += [f"pi_inspect.{part}"]
    packages += [f"pi_inspect.{part}.{sub}" for sub in find_packages(part)]

setup(
    packages=packages,
    package_dir={"pi_inspect": "pi_inspect", **{f"pi_inspect.{part}": part for part in PARTS}},
)
