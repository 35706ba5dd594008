"""Training of the default model: data (DAVIS folders, generated sequences) and the loop."""
