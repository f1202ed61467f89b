"""pi-inspect train: workstation side (imports edge and TensorFlow)."""
