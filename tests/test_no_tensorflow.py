"""The device has no TensorFlow: every device module must import without it."""

import pkgutil
import subprocess
import sys

import device


def test_every_device_module_imports_with_tensorflow_blocked():
    names = [m.name for m in pkgutil.walk_packages(device.__path__, "device.")]
    assert "device.grading.interpreter" in names
    code = (
        "import sys\n"
        "for blocked in ('tensorflow', 'keras', 'tf_keras'):\n"
        "    sys.modules[blocked] = None  # any import of it now raises ImportError\n"
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not any(k.split('.')[0] in ('tensorflow', 'keras') and sys.modules[k] is not None for k in sys.modules)\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
