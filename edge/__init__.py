"""pi-inspect edge: the core and the contract.

This package runs on the Raspberry Pi and is imported by ``train`` and ``convert`` on the
workstation: the model bundle format, the one preprocessing function, the runtime loader,
the synthetic data generator and the daemon. It never imports TensorFlow.
"""

__version__ = "0.1.0"
