"""The command line of ``tools/model_converters/*``: ``PROG SRC DST``.

Read SRC weights-only, convert with one of :mod:`mmmixmae.checkpoint.convert`'s functions,
write DST (mmengine layout ``{'meta', 'state_dict'}``) and print what every rule did.
User errors (missing / unsafe / invalid file, unknown or missing keys, DST = SRC) follow the
tools' convention (:func:`mmmixmae.utils.errors.run_tool`): one stderr line, exit status 2.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, Optional, Sequence

from mmmixmae.checkpoint import (CheckpointConversionError, StateDict, find_state_dict,
                                 format_conversion_summary, read_checkpoint)
from mmmixmae.checkpoint.convert import ConversionResult, save_converted
from mmmixmae.utils.errors import run_tool

__all__ = ['run_converter']


def _main(convert: Callable[[StateDict, str], ConversionResult], description: str, prog: str,
          argv: Optional[Sequence[str]]) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument('src', help='source checkpoint (local path or URL)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args(argv)
    if os.path.exists(args.dst) and os.path.exists(args.src) and \
            os.path.samefile(args.src, args.dst):
        raise CheckpointConversionError('DST must not be the source file', args.src)
    checkpoint = read_checkpoint(args.src)
    state_dict, fmt = find_state_dict(checkpoint, args.src)
    extra = [k for k in checkpoint if fmt != 'bare' and k not in ('state_dict', 'model')]
    result = convert(state_dict, args.src)
    try:
        save_converted(result, args.dst, args.src)
    except OSError as err:
        raise CheckpointConversionError(f'cannot write {args.dst}: {err}', args.src) from None
    print(format_conversion_summary(result, args.src, args.dst, fmt, extra))
    return 0


def run_converter(convert: Callable[[StateDict, str], ConversionResult], description: str,
                  prog: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run one converter's command line; returns the exit status (0, or 2 after the one-line
    error of :func:`~mmmixmae.utils.errors.run_tool`) for ``sys.exit(main())``."""
    try:
        return run_tool(lambda a: _main(convert, description, prog, a), prog)(argv)
    except SystemExit as done:  # run_tool's exit 2, or argparse's
        return int(done.code or 0)
