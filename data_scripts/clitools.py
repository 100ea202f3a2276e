"""How every command of the project reports a failure: one line `error: ...`, exit status 2.

A command's body runs inside [`run_command`]: an exception that reaches it is printed as one line
naming what went wrong (our errors name the file or key; others get their type name), and the
process exits with status 2. `--debug` (added by [`add_debug_flag`]) or the environment variable
`TFSWA_DEBUG=1` prints the traceback as well. It lives in `data_scripts`, the lower layer, so that
`tfswa-data` and the `modeling_tfswa` commands share it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

#: Environment variable that turns tracebacks on for every command (`TFSWA_DEBUG=1`).
DEBUG_ENV = "TFSWA_DEBUG"
#: Exit status of a command that failed on bad input or configuration.
ERROR_STATUS = 2


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add `--debug` (print tracebacks of errors) to a command's parser."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the traceback of an error (also: {DEBUG_ENV}=1)",
    )


def debug_wanted(debug: bool = False) -> bool:
    """`--debug` was given or `TFSWA_DEBUG` is set to something other than `""`/`0`."""
    return debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(error: BaseException) -> str:
    """One line saying what went wrong; errors that are not a `ValueError`/`OSError` (ours and the
    input problems we expect) carry their type name, so that a bug still says what it is."""
    text = str(error).strip()
    message = text.splitlines()[0] if text else ""
    if not isinstance(error, (ValueError, OSError)) or not message:
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return message


def error_line(error: BaseException) -> str:
    """`error: <what went wrong>` ([`describe`])."""
    return f"error: {describe(error)}"


def read_token(source: str | None) -> str | None:
    """A Hub token from `--token SOURCE`: the content of the file `SOURCE`, or the value of the
    environment variable named `SOURCE`. A token itself is never taken from the command line (it
    would show in the process list); `None` leaves it to `HF_TOKEN` / `huggingface-cli login`."""
    if source is None:
        return None
    path = os.path.expanduser(source)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
        if not token:
            raise ValueError(f"--token: {source} is empty")
        return token
    if source.isidentifier() and os.environ.get(source):
        return os.environ[source]
    raise ValueError(
        "--token: give a file holding the token or the name of an environment variable set to it "
        "(not the token itself, which would show in the process list)"
    )


def run_command(body: Callable[[], int | None], debug: bool = False) -> int:
    """Run a command's `body`; on an exception print [`error_line`] (and the traceback when
    [`debug_wanted`]) to stderr and return [`ERROR_STATUS`]. Returns the body's status otherwise."""
    try:
        status = body()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - the one place where any failure becomes one line
        if debug_wanted(debug):
            traceback.print_exc()
        print(error_line(error), file=sys.stderr)
        return ERROR_STATUS
    return 0 if status is None else int(status)


__all__ = [
    "DEBUG_ENV",
    "ERROR_STATUS",
    "add_debug_flag",
    "debug_wanted",
    "describe",
    "error_line",
    "read_token",
    "run_command",
]
