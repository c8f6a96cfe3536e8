"""The installed pack's models on the device's interpreter, and the two spaces that decide
whether the models may speak for an image (features and image statistics). Fitting those
statistics happens on the workstation (convert/spacefit.py, driven by convert/abstention.py)."""
