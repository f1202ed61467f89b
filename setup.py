"""Maps the repository's top folders to one import namespace; the rest is in pyproject.toml.

``edge/``, ``train/`` and ``convert/`` stay where users know them and install as
``pi_inspect.edge``, ``pi_inspect.train`` and ``pi_inspect.convert``: the wheel's only
top-level name is ``pi_inspect``, so a user's own ``edge/`` or ``train.py`` shadows nothing.
The ``pi_inspect`` package itself is ``namespace/`` (a folder named ``pi_inspect`` here would
shadow the installed package for anything run from the checkout, such as the tests).
"""

from setuptools import find_packages, setup

PARTS = ("edge", "train", "convert")

packages = ["pi_inspect"]
for part in PARTS:
    packages += [f"pi_inspect.{part}"]
    packages += [f"pi_inspect.{part}.{sub}" for sub in find_packages(part)]

setup(
    packages=packages,
    package_dir={"pi_inspect": "namespace", **{f"pi_inspect.{part}": part for part in PARTS}},
)
