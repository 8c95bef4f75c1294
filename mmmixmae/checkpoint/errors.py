"""Checkpoint errors: every one is a :class:`~mmmixmae.utils.errors.UserError`.

``CheckpointError`` (base, carries ``path``)
  ``UnsafeCheckpointError``  -- the pickle asks for a global outside the allowlist;
  ``InvalidCheckpointError`` -- not a ``torch.save`` file, truncated, or no state dict in it;
  ``CheckpointMismatchError`` -- the weights do not fit the model (lists the keys);
  ``CheckpointConversionError`` -- a converter has no rule for a key, or its result does
  not fit the model it names.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ..utils.errors import UserError
from .report import fmt_shape, listing

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'InvalidCheckpointError',
    'CheckpointMismatchError', 'CheckpointConversionError'
]


class CheckpointError(UserError, RuntimeError):
    """Base class of the checkpoint errors.

    Attributes:
        path (str): the checkpoint concerned.
    """

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for something not on the allowlist.

    Attributes:
        offending (list[str]): the refused globals (``module.name``), as far as known.
    """

    def __init__(self, path: str, offending: Sequence[str], detail: str):
        self.offending = list(offending)
        what = ', '.join(self.offending) or 'an object that is not allowed'
        message = (
            f'Refusing to load checkpoint {path}: it contains {what}, which is not allowed '
            'by torch.load(weights_only=True) and the mmmixmae allowlist '
            '(mmmixmae.checkpoint.io); unpickling it could run code. If you trust the file, '
            're-save only its tensors (e.g. the state_dict) where you trust it.')
        if detail:
            message += f' [torch: {detail}]'
        super().__init__(message, path)


class InvalidCheckpointError(CheckpointError):
    """Not a ``torch.save`` checkpoint, truncated or corrupt, or holding no state dict."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint does not fit the model it is loaded into; nothing was copied.

    Attributes:
        missing: model keys the checkpoint lacks.
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint_shape, model_shape)`` that interpolation cannot fix.
    """

    def __init__(self, path: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mismatched: Sequence[Tuple[str, tuple, tuple]] = (), hint: str = '',
                 what: str = 'MixMAESwin backbone', message: Optional[str] = None):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        if message is None:
            lines = [f'checkpoint {path} does not fit the {what}; nothing was loaded.']
            lines += listing('missing keys', self.missing)
            lines += listing('unexpected keys', self.unexpected)
            lines += listing('shape mismatches (checkpoint vs model)', [
                f'{k}: {fmt_shape(a)} vs {fmt_shape(b)}' for k, a, b in self.mismatched])
            if hint:
                lines.append(hint)
            message = '\n'.join(lines)
        super().__init__(message, path)


class CheckpointConversionError(CheckpointError, ValueError):
    """A checkpoint cannot be converted; the message lists the offending keys."""

    def __init__(self, message: str, path: str = '<checkpoint>'):
        super().__init__(message, path)
