"""The one user-error type of mmmixmae and the one way tools report it.

A :class:`UserError` is a problem the user can fix (a missing or unreadable file, a config
without ``model``, a checkpoint that does not fit, an argument out of range); the checkpoint
errors of :mod:`mmmixmae.checkpoint.errors` are user errors too.  Every tool and converter
wraps its ``main(argv)`` in :func:`run_tool`: a user error (or a ``FileNotFoundError``)
becomes one line on stderr, ``<tool>: error: <message>``, and exit status 2, without a
traceback.  Programming errors stay ordinary exceptions and keep their traceback.
"""
from __future__ import annotations

import functools
import os.path as osp
import sys
from typing import Callable, NoReturn, Optional

__all__ = ['UserError', 'fail', 'run_tool']


class UserError(Exception):
    """A user error; the message names the file, key or value that is wrong."""


def fail(message: object, prog: Optional[str] = None) -> NoReturn:
    """Print ``prog: error: message`` as one line on stderr and exit with status 2."""
    prog = prog or osp.basename(sys.argv[0]) or 'mmmixmae'
    print(f'{prog}: error: {" ".join(str(message).split())}', file=sys.stderr)
    raise SystemExit(2)


def run_tool(main: Callable, prog: Optional[str] = None) -> Callable:
    """Wrap a tool's ``main(argv)``: user errors become one stderr line and exit status 2."""

    @functools.wraps(main)
    def wrapped(argv=None):
        try:
            return main(argv)
        except (UserError, FileNotFoundError) as err:
            fail(err, prog)

    return wrapped
