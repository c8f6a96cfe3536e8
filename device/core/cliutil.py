"""One small dispatcher shared by the three CLIs (``python -m device|trainer|convert``).

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported when the parser is built, so they
must stay light at import time: TensorFlow and hardware libraries are imported
inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from device.core.errors import AtopiscanError
from device.core.nativelog import filtered_stderr


class UserError(AtopiscanError):
    """An error a person can act on: printed as one line, exit status 2, no traceback."""


def build_parser(prog: str, description: str, commands: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in commands.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(prog: str, description: str, commands: dict[str, tuple[str, str]],
         argv: Sequence[str] | None = None) -> int:
    parser = build_parser(prog, description, commands)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with filtered_stderr(enabled=not args.verbose):
            return int(args._module.run(args) or 0)
    except AtopiscanError as exc:  # UserError and the typed failures: a person can act on these
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
