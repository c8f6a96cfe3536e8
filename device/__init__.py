"""atopiscan device side: what runs on the Pi/Jetson, and the contracts everyone shares.

Nothing in this package may import TensorFlow or Keras: the device has only a
LiteRT interpreter. ``tests/test_no_tensorflow.py`` proves it.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("atopiscan")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
