"""The command line of ``tools/model_converters/*``: ``PROG SRC DST``.

Read SRC weights-only, convert with one of :mod:`mmmixmae.checkpoint.convert`'s functions,
write DST (mmengine layout ``{'meta', 'state_dict'}``) and print what every rule did.
User errors (missing / unsafe / invalid file, unknown or missing keys, DST = SRC) follow the
tools' convention (:func:`mmmixmae.utils.errors.run_tool`): one stderr line, exit status 2.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, Optional, Sequence, Tuple

from mmmixmae.checkpoint import (CheckpointConversionError, StateDict, find_state_dict,
                                 format_conversion_summary, read_checkpoint)
from mmmixmae.checkpoint.convert import ConversionResult, save_converted
from mmmixmae.utils.errors import run_tool

__all__ = ['run_converter', 'run_folder_converter']


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
    return _exit_status(lambda a: _main(convert, description, prog, a), prog, argv)


def _exit_status(main: Callable[[Optional[Sequence[str]]], int], prog: str,
                 argv: Optional[Sequence[str]]) -> int:
    """``main(argv)`` under :func:`~mmmixmae.utils.errors.run_tool`, as an exit status."""
    try:
        return run_tool(main, prog)(argv)
    except SystemExit as done:  # run_tool's exit 2, or argparse's
        return int(done.code or 0)


def _main_folder(consolidate: Callable[[str], Tuple[StateDict, dict]],
                 describe: Callable[[dict], str], check_src: Optional[Callable[[str], None]],
                 description: str, src_help: str, prog: str,
                 argv: Optional[Sequence[str]]) -> int:
    from mmmixmae.checkpoint.sharded import save_full_checkpoint
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='the full checkpoint file to write')
    args = parser.parse_args(argv)
    if check_src is not None:
        check_src(args.src)
    if os.path.abspath(args.dst).startswith(os.path.abspath(args.src) + os.sep):
        raise CheckpointConversionError('DST must not be inside the checkpoint folder', args.src)
    state_dict, meta = consolidate(args.src)
    try:
        save_full_checkpoint(state_dict, meta, args.dst)
    except OSError as err:
        raise CheckpointConversionError(f'cannot write {args.dst}: {err}', args.src) from None
    numel = sum(v.numel() for v in state_dict.values())
    print(f'{args.src}: {describe(meta["consolidated_from"])} -> {args.dst}: '
          f'{len(state_dict)} tensors, {numel:,} elements')
    return 0


def run_folder_converter(consolidate: Callable[[str], Tuple[StateDict, dict]],
                         describe: Callable[[dict], str], description: str, src_help: str,
                         prog: str, argv: Optional[Sequence[str]] = None,
                         check_src: Optional[Callable[[str], None]] = None) -> int:
    """The command line ``PROG SRC_DIR DST`` of the converters from a checkpoint *folder*
    (sharded FSDP, DeepSpeed ZeRO) to the one full file fine-tuning and transfer read.

    Args:
        consolidate: ``SRC_DIR -> (state_dict, meta)``; ``meta['consolidated_from']`` says
            what was read. It raises the user error that names a broken folder.
        describe: ``meta['consolidated_from'] -> str`` for the summary line.
        check_src: optional early check of ``SRC_DIR`` (raises a user error).

    Returns the exit status like :func:`run_converter`.
    """
    return _exit_status(
        lambda a: _main_folder(consolidate, describe, check_src, description, src_help, prog, a),
        prog, argv)
