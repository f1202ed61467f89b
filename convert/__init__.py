"""pi-inspect convert: workstation side (imports edge and TensorFlow)."""
