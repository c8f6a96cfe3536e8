"""``python -m convert``: Keras to TFLite, the accuracy gate, cards and packs."""

from __future__ import annotations

import sys

from device.core.cliutil import main as _main

COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("convert.cli.model", "convert a training run to TFLite through the accuracy gate"),
    "pack": ("convert.cli.pack", "build a model pack from three runs or a sweep"),
    "verify": ("convert.cli.verify", "check a model pack as the device will"),
    "bench": ("convert.cli.bench", "per sign: TFLite vs Keras latency and the pack's figures"),
    "keygen": ("convert.cli.keygen", "make an Ed25519 key pair for signing packs"),
    "device-crops": ("convert.cli.device_crops",
                     "synthetic training crops cut from full photos as the device cuts them"),
}


def main(argv: list[str] | None = None) -> int:
    return _main("python -m convert", "atopiscan converter", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
