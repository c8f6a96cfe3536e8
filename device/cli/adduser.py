"""``python -m device adduser NAME --role staff|technician|admin``: add a dashboard user.

The password is asked twice on the terminal, or read from the first line of
standard input with ``--password-stdin`` (for scripts; never on the command line,
where other users of the machine could see it in the process list).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from device.config import load_config_arg
from device.core.cliutil import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="user name (letters, digits, '.', '_', '-')")
    parser.add_argument("--role", required=True, choices=["staff", "technician", "admin"],
                        help="staff: scans and visits; technician: status and model packs; "
                             "admin: everything")
    parser.add_argument("--config", type=Path,
                        help="device config (YAML) naming storage.data_dir; default: the "
                             "packaged default_config.yaml")
    parser.add_argument("--data-dir", type=Path, help="data folder (overrides storage.data_dir)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).expanduser()
    return Path(load_config_arg(args.config).storage.data_dir).expanduser()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UserError("--password-stdin: standard input gave no password")
        return password
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask the password on; use --password-stdin")
    first = getpass.getpass(f"password for {args.name}: ")
    if first != getpass.getpass("again: "):
        raise UserError("the two passwords differ; nothing changed")
    return first


def run(args: argparse.Namespace) -> int:
    from device.web.users import UserError as BadUser
    from device.web.users import UserStore

    store = UserStore.in_data_dir(_data_dir(args))
    password = _password(args)
    try:
        user = store.add(args.name, password, args.role)
    except BadUser as exc:
        raise UserError(str(exc)) from exc
    print(f"added {user.role.value} user {user.username} in {store.path}")
    return 0
