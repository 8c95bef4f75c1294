"""Reading checkpoints safely: ``torch.load(weights_only=True)`` with clear errors.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True`` and mmengine
never passes the flag, so resume, ``load_from`` and ``init_cfg=Pretrained``
stop with "Unsupported global ... HistoryBuffer".  We keep the safe loader
(we never pass ``weights_only=False`` and never set
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) and add to torch's allowlist
(``torch.serialization.add_safe_globals``) only what a Runner checkpoint
holds:

* ``mmengine.logging.HistoryBuffer`` (the message hub's log scalars);
* numpy arrays and scalars inside it: ``_reconstruct`` and ``scalar`` under
  both module spellings (``numpy._core.multiarray`` for numpy 2,
  ``numpy.core.multiarray`` for files written under numpy 1), ``ndarray``,
  ``dtype`` and the fixed-size numeric/bool/str/bytes/datetime dtype classes
  (numpy 2 rebuilds a dtype as an instance of e.g. ``Float64DType``; the
  object, void and variable-width string dtypes are left out);
* ``builtins.getattr`` -- but NOT the real one.  HistoryBuffer pickles its
  statistics methods as ``getattr(HistoryBuffer, 'min')`` (pickle protocol 2
  spells nested qualified names that way); allowlisting the real
  ``getattr`` would let a checkpoint reach any attribute of any allowlisted
  object.  :func:`restricted_getattr` is registered under that name instead
  and returns only HistoryBuffer's statistics methods
  (:data:`HISTORY_BUFFER_STATISTICS`); anything else raises.

URLs (``http(s)://``, ``file://``) are downloaded once into torch's hub cache and read the
same way (:func:`read_checkpoint`).  mmengine's own local-file loader (resume,
``load_from``) is routed through :func:`load_checkpoint_safely` by
:mod:`mmmixmae.compat.checkpoint_loader`, so a refused or broken file is reported with
:class:`~mmmixmae.checkpoint.errors.UnsafeCheckpointError` /
:class:`~mmmixmae.checkpoint.errors.InvalidCheckpointError` (naming the file and the
offending global) instead of torch's advice to turn ``weights_only`` off.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import re
import zipfile
from typing import Any, Callable, Iterator, Union

import torch

from .errors import CheckpointConversionError, InvalidCheckpointError, UnsafeCheckpointError

__all__ = [
    'load_checkpoint_safely', 'read_checkpoint', 'restricted_getattr', 'checkpoint_safe_globals',
    'install_safe_globals', 'HISTORY_BUFFER_STATISTICS'
]

#: Statistics methods that ``HistoryBuffer.__getstate__`` pickles (mmengine
#: registers exactly these four in ``HistoryBuffer._set_default_statistics``).
HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})


def restricted_getattr(obj: Any, name: str, *default: Any) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling checkpoints.

    Only ``getattr(HistoryBuffer, s)`` for ``s`` in
    :data:`HISTORY_BUFFER_STATISTICS` is answered (with the plain function
    ``HistoryBuffer.<s>``, exactly what the real ``getattr`` returns); every
    other call raises :class:`pickle.UnpicklingError`, which torch's
    weights-only loader reports as a failed load.
    """
    from mmengine.logging import HistoryBuffer
    if (not default and obj is HistoryBuffer and type(name) is str
            and name in HISTORY_BUFFER_STATISTICS):
        return getattr(HistoryBuffer, name)
    shown = (obj.__qualname__
             if isinstance(obj, type) else f'<{type(obj).__name__} object>')
    raise pickle.UnpicklingError(
        f'mmmixmae restricted getattr refused getattr({shown}, {name!r}): a '
        'checkpoint may only fetch the HistoryBuffer statistics methods '
        f'{sorted(HISTORY_BUFFER_STATISTICS)}')


_SAFE_DTYPE_CLASS_NAMES = (
    'BoolDType', 'Int8DType', 'UInt8DType', 'Int16DType', 'UInt16DType',
    'Int32DType', 'UInt32DType', 'Int64DType', 'UInt64DType', 'ByteDType',
    'UByteDType', 'ShortDType', 'UShortDType', 'IntDType', 'UIntDType',
    'LongDType', 'ULongDType', 'LongLongDType', 'ULongLongDType',
    'Float16DType', 'Float32DType', 'Float64DType', 'LongDoubleDType',
    'Complex64DType', 'Complex128DType', 'CLongDoubleDType', 'BytesDType',
    'StrDType', 'DateTime64DType', 'TimeDelta64DType')


def checkpoint_safe_globals() -> list:
    """The entries :func:`install_safe_globals` passes to
    ``torch.serialization.add_safe_globals`` (objects or
    ``(object, 'module.name')`` pairs)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]

    entries: list = [HistoryBuffer, np.ndarray, np.dtype]
    for spelling in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries.append((multiarray._reconstruct, f'{spelling}._reconstruct'))
        entries.append((multiarray.scalar, f'{spelling}.scalar'))
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        for cls_name in _SAFE_DTYPE_CLASS_NAMES:
            cls = getattr(dtypes, cls_name, None)
            if cls is not None and cls not in entries:
                entries.append(cls)
    entries.append((restricted_getattr, 'builtins.getattr'))
    return entries


_GLOBAL_PATTERNS = (
    re.compile(r'GLOBAL (\S+) was not an allowed global'),
    re.compile(r'unsupported GLOBAL (\S+) whose module'),
    re.compile(r'reduce for unrecognized function (.+?)(?:\n|$)'),
    re.compile(r'(restricted getattr refused getattr\(.*?\))'),
    re.compile(r'Can only (?:create new object for|build) .*?got (.+?)(?:\n|$)'),
)


def _offending_globals(message: str) -> list:
    found = []
    for pattern in _GLOBAL_PATTERNS:
        for match in pattern.finditer(message):
            item = match.group(1).strip()
            if item.startswith('restricted getattr'):
                item = 'builtins.getattr (' + item + ')'
            if item not in found:
                found.append(item)
    return found


def _merge_offending(source: Any, start: int, from_message: list) -> list:
    """Prefer torch's static listing of the non-allowlisted globals of a zip
    checkpoint (it spells ``builtins.eval`` in full, where the error message
    says ``eval``); keep message-only items such as a refused getattr."""
    try:
        if not isinstance(source, str):
            source.seek(start)
        listed = sorted(
            torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:  # best effort only; the load already failed
        return from_message
    finally:
        if not isinstance(source, str):
            source.seek(start)
    merged = list(listed)
    for item in from_message:
        if not any(full == item or full.endswith('.' + item)
                   for full in listed):
            merged.append(item)
    return merged


def _torch_detail(message: str) -> str:
    """The line of torch's weights-only message that says what went wrong."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for line in lines:
        if ('GLOBAL' in line or 'refused' in line or 'Unsupported' in line
                or 'unrecognized' in line or 'Can only' in line):
            return line.replace('WeightsUnpickler error: ', '')
    return lines[-1] if lines else message


_PICKLE_PROTO = b'\x80'  # first opcode of the legacy (non-zip) torch format
_ZIP_MAGIC = b'PK\x03\x04'


def load_checkpoint_safely(filename: Union[str, os.PathLike, io.IOBase],
                           map_location: Any = 'cpu') -> Any:
    """``torch.load(filename, map_location, weights_only=True)`` with clear
    errors.

    Args:
        filename: path (``~`` is expanded) or a binary file object.
        map_location: as for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        Whatever the checkpoint holds (usually a dict).

    Raises:
        FileNotFoundError: the path does not exist.
        UnsafeCheckpointError: the checkpoint needs a global that is not
            allowlisted (the message names file and global(s)).
        InvalidCheckpointError: not a ``torch.save`` file, or truncated or
            corrupt.
    """
    # (re)install the allowlist every time: torch.serialization.clear_safe_globals() or
    # leaving a safe_globals([...]) block that named one of our entries
    # removes it from torch's set
    install_safe_globals()
    if isinstance(filename, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(filename))
        if not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint file not found: {path}')
        if path.endswith('.safetensors'):  # torch.load handles these itself
            return torch.load(path, map_location=map_location,
                              weights_only=True)
        with open(path, 'rb') as f:
            head = f.read(4)
        source: Any = path
        start = 0
    else:
        path = getattr(filename, 'name', None) or '<file object>'
        start = filename.tell()
        head = filename.read(4)
        filename.seek(start)
        source = filename

    if not head:
        raise InvalidCheckpointError(
            f'{path} is not a checkpoint: the file is empty', path)
    is_zip = head == _ZIP_MAGIC
    if not is_zip and not head.startswith(_PICKLE_PROTO):
        raise InvalidCheckpointError(
            f'{path} is not a checkpoint written by torch.save (it is neither '
            'a torch zip archive nor a legacy torch pickle; first bytes '
            f'{head!r})', path)

    if is_zip:
        _check_torch_zip(source, start, path)
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        offending = _offending_globals(message)
        if is_zip:
            offending = _merge_offending(source, start, offending)
        if offending or 'GLOBAL' in message:
            raise UnsafeCheckpointError(path, offending,
                                        _torch_detail(message)) from None
        raise InvalidCheckpointError(
            f'{path} could not be unpickled; it is corrupt or not a '
            f'checkpoint: {_torch_detail(message)}', path) from None
    except (EOFError, zipfile.BadZipFile) as err:
        raise InvalidCheckpointError(
            f'{path} is truncated or corrupt ({type(err).__name__}: {err})',
            path) from None
    except RuntimeError as err:
        text = str(err)
        if is_zip and ('zip archive' in text or 'PytorchStreamReader' in text
                       or 'miniz' in text or 'inline_container' in text):
            first = text.splitlines()[0] if text else ''
            raise InvalidCheckpointError(
                f'{path} is truncated or corrupt, or a zip file that is not a '
                f'torch checkpoint: {first}', path) from None
        raise
    except (KeyError, ValueError, TypeError, IndexError) as err:
        if is_zip:
            raise
        # the legacy-format reader trips over arbitrary pickles like this
        raise InvalidCheckpointError(
            f'{path} is not a readable torch checkpoint '
            f'({type(err).__name__}: {err})', path) from None


def _check_torch_zip(source: Any, start: int, path: str) -> None:
    """Raise InvalidCheckpointError unless ``source`` is a complete zip
    archive with a ``<dir>/data.pkl`` record (what torch.save writes)."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise InvalidCheckpointError(
            f'{path} is truncated or corrupt: the zip archive cannot be read '
            f'({err})', path) from None
    finally:
        if not isinstance(source, str):
            source.seek(start)
    if not any(name.count('/') == 1 and name.endswith('/data.pkl')
               for name in names):
        raise InvalidCheckpointError(
            f'{path} is a zip archive but not a torch.save checkpoint (no '
            '<archive>/data.pkl record)', path)


def install_safe_globals() -> None:
    """Add :func:`checkpoint_safe_globals` to torch's allowlist (entries already there are
    skipped, so it is cheap to call before every load)."""
    from torch.serialization import add_safe_globals, get_safe_globals
    present = get_safe_globals()
    missing = [g for g in checkpoint_safe_globals() if g not in present]
    if missing:
        add_safe_globals(missing)


@contextlib.contextmanager
def _official_globals() -> Iterator[None]:
    """Allow ``argparse.Namespace`` (the official checkpoints' ``args``) while loading.

    ``Namespace`` is rebuilt from a plain attribute dict and runs no code; nothing
    else is added to torch's weights-only allowlist.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        yield


_URL_SCHEMES = ('http://', 'https://', 'file://')


def _download(url: str) -> str:
    """Download ``url`` into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) once."""
    from urllib.parse import urlparse
    from torch.hub import download_url_to_file, get_dir
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise CheckpointConversionError(f'{url} does not name a file')
    cache = os.path.join(get_dir(), 'checkpoints')
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, name)
    if not os.path.exists(target):
        download_url_to_file(url, target, progress=False)
    return target


def read_checkpoint(path: str, map_location='cpu'):
    """Load a checkpoint with ``torch.load(weights_only=True)`` and clear errors.

    Local files go through :func:`load_checkpoint_safely`
    (``FileNotFoundError``, ``UnsafeCheckpointError`` for a pickle that would
    run code, ``InvalidCheckpointError`` for a file that is not a checkpoint).
    ``http(s)://`` and ``file://`` URLs are downloaded to torch's hub cache first
    and then read the same way (mmengine's URL loader would call
    ``torch.hub.load_state_dict_from_url``, whose default is ``weights_only=False``).
    """
    path = os.fspath(path)
    if '://' in path:
        if not path.startswith(_URL_SCHEMES):
            raise CheckpointConversionError(
                f'{path}: only local files and {", ".join(_URL_SCHEMES)} URLs are supported')
        path = _download(path)
    with _official_globals():
        return load_checkpoint_safely(path, map_location=map_location)
