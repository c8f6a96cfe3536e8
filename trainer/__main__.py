"""``python -m trainer``: the workstation's training tools."""

from __future__ import annotations

import sys

from device.core.cliutil import main as _main

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("trainer.cli.synth", "generate a synthetic lesion data set"),
    "synth-card": ("trainer.cli.synth_card",
                   "full photos with a colour card, for python -m device bench-colour"),
    "data-summary": ("trainer.cli.data_summary", "count images per sign, grade and split"),
    "backbones": ("trainer.cli.backbones", "list the registered backbones"),
    "train": ("trainer.cli.train", "train one sign's classifier"),
    "evaluate": ("trainer.cli.evaluate", "re-evaluate a run on its held-out split"),
    "sweep": ("trainer.cli.sweep", "train every (sign, backbone) pair and write a Table 3 report"),
    "bench-pipeline": ("trainer.cli.bench_pipeline",
                       "measure the tf.data input pipeline against images in memory"),
    "bench-labels": ("trainer.cli.bench_labels",
                     "consensus against soft labels on simulated raters: accuracy and ECE"),
    "label": ("trainer.label.cli", "the labelling studio: photos -> boxes, grades -> crops"),
}


def main(argv: list[str] | None = None) -> int:
    return _main("python -m trainer", "atopiscan trainer", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
