"""pi-inspect: train an image model on a workstation, run it int8 on a Raspberry Pi.

The one top-level name this distribution installs. Its parts live in the repository's top
folders and install beneath it: ``pi_inspect.edge`` (the Pi side and the contract),
``pi_inspect.train`` and ``pi_inspect.convert`` (the workstation).
"""
