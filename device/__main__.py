"""``python -m device``: what a technician runs on the device."""

from __future__ import annotations

import sys

from device.core.cliutil import main as _main

COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("device.cli.scan", "grade one image and print the result as JSON"),
    "bench": ("device.cli.bench", "time each scan stage"),
    "bench-followup": ("device.cli.bench_followup",
                       "find a lesion again over synthetic follow-up visits"),
    "bench-stream": ("device.cli.bench_stream",
                     "measure the live preview's frame rate and CPU share"),
    "run": ("device.cli.run", "run the device service and its dashboard"),
    "check-config": ("device.cli.check_config", "validate a configuration file"),
    "flash": ("device.cli.flash", "verify and install a model pack"),
    "rollback": ("device.cli.rollback", "switch back to the previous model pack"),
    "packs": ("device.cli.packs", "list installed model packs"),
    "crop-eval": ("device.cli.crop_eval", "measure the auto crop on photos with known boxes"),
    "adduser": ("device.cli.adduser", "add a dashboard user"),
    "export-dataset": ("device.cli.export_dataset",
                       "export reviewed scans as a training data set (crops + manifest)"),
    "evaluate-photos": ("device.cli.evaluate_photos",
                        "run the scan pipeline on a folder of photos and summarise"),
    "bench-colour": ("device.cli.bench_colour",
                     "does the colour card keep the erythema grade under other lights"),
    "colour-card": ("device.cli.colour_card", "write the printable colour card (PNG and PDF)"),
}


def main(argv: list[str] | None = None) -> int:
    return _main("python -m device", "atopiscan device", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
