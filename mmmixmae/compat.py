"""Run-time compatibility fixes for mmengine 0.10.7 on torch >= 2.6 and on CPU.

:func:`apply_compat` installs every fix below.  It is idempotent and cheap to
call again; ``import mmmixmae`` calls it, and so do ``tools/train.py`` and
``tools/test.py`` before they build anything.  Each fix changes behaviour only
where mmengine would otherwise fail; on a CUDA machine the distributed and AMP
code paths are left exactly as mmengine wrote them (the checkpoint loader differs
only in the errors it raises).

1. Checkpoints stay ``weights_only=True``
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

   mmengine's local-file checkpoint loader (``CheckpointLoader`` scheme
   ``''``, i.e. every plain path used by resume / ``load_from`` /
   ``Pretrained``) is re-registered to go through
   :func:`load_checkpoint_safely`, so a refused or broken file is reported with
   :class:`UnsafeCheckpointError` / :class:`InvalidCheckpointError` (naming
   the file and the offending global) instead of torch's advice to turn
   ``weights_only`` off.

2. ``init_dist`` without CUDA (``--launcher pytorch|slurm|mpi`` on CPU)
   ``mmengine.dist.utils._init_dist_pytorch`` (and the slurm and mpi
   variants) call ``torch.cuda.set_device`` unconditionally, which raises
   "Found no NVIDIA driver" on a CPU host; and the Runner's default
   ``env_cfg.dist_cfg.backend`` is ``'nccl'``, which needs GPUs.  When CUDA is
   not available the three functions are wrapped so that ``set_device`` is a
   no-op for the duration of the call and a requested ``'nccl'`` backend
   becomes ``'gloo'`` (with a warning).  The functions are looked up as module
   globals by ``mmengine.dist.utils.init_dist``, so replacing them there is
   enough.

3. ``Runner.wrap_model`` without CUDA
   With a launcher, the Runner wraps the model in ``MMDistributedDataParallel``
   with ``device_ids=[LOCAL_RANK]`` (both when ``model_wrapper_cfg`` is None
   and as a default argument otherwise); DDP refuses ``device_ids`` for a CPU
   module.  When the Runner is distributed and CUDA is not available, the
   patched ``wrap_model`` passes an explicit ``device_ids=None`` (a default
   argument never overrides an explicit one) and, for ``model_wrapper_cfg=None``,
   the same settings mmengine would use (``broadcast_buffers=False``,
   ``find_unused_parameters`` from the config).  User-given ``device_ids`` and
   non-DDP wrappers are left alone.

4. ``AmpOptimWrapper`` on CPU (``tools/train.py --amp``)
   mmengine's ``AmpOptimWrapper.__init__`` asserts that CUDA/NPU/MLU/MUSA is
   available, although mmengine's ``autocast`` supports CPU with bfloat16.
   With no accelerator, the patched ``__init__`` accepts only
   ``dtype='bfloat16'`` (the default there; CPU autocast does not do float16)
   and uses a disabled ``GradScaler``: bfloat16 has float32's exponent range,
   so loss scaling is not needed, and a disabled scaler makes ``backward``,
   ``step`` and the ``loss_scaler`` state-dict entry plain pass-throughs.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import pickle
import re
import warnings
import zipfile
from typing import Any, Callable, Iterator, Optional, Union

import torch

__all__ = [
    'apply_compat', 'load_checkpoint_safely', 'restricted_getattr',
    'CheckpointError', 'UnsafeCheckpointError', 'InvalidCheckpointError',
    'HISTORY_BUFFER_STATISTICS', 'checkpoint_safe_globals'
]

#: Statistics methods that ``HistoryBuffer.__getstate__`` pickles (mmengine
#: registers exactly these four in ``HistoryBuffer._set_default_statistics``).
HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'mean', 'current'})

_MARK = '_mmmixmae_compat_patched'
_applied = False


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
class CheckpointError(RuntimeError):
    """Base class of the checkpoint errors raised by mmmixmae.

    Attributes:
        path (str): the file that could not be loaded.
    """

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class UnsafeCheckpointError(CheckpointError):
    """The file asks the unpickler for something not on the allowlist.

    Attributes:
        path (str): the file.
        offending (list[str]): the globals (``module.name``) that were
            refused, as far as they could be determined.
    """

    def __init__(self, path: str, offending: list, detail: str):
        self.offending = list(offending)
        what = ', '.join(self.offending) or 'an object that is not allowed'
        message = (
            f'Refusing to load checkpoint {path}: it contains {what}, which '
            'is not allowed by torch.load(weights_only=True) and the '
            'mmmixmae allowlist (mmmixmae.compat); unpickling it could run '
            'code. If you trust the file, re-save only its tensors (e.g. the '
            'state_dict) where you trust it.')
        if detail:
            message += f' [torch: {detail}]'
        super().__init__(message, path)


class InvalidCheckpointError(CheckpointError):
    """The file is not a ``torch.save`` checkpoint, or it is truncated or
    corrupt."""


# ---------------------------------------------------------------------------
# 1. weights_only allowlist
# ---------------------------------------------------------------------------
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
    """The entries :func:`apply_compat` passes to
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
    apply_compat()
    # re-check the allowlist: torch.serialization.clear_safe_globals() or
    # leaving a safe_globals([...]) block that named one of our entries
    # removes it from torch's set
    _install_safe_globals()
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


def _load_from_local(filename, map_location):
    """mmengine ``CheckpointLoader`` scheme ``''`` (local paths), rewritten to
    report refused/broken files with mmmixmae's errors."""
    return load_checkpoint_safely(filename, map_location=map_location)


setattr(_load_from_local, _MARK, True)


def _install_safe_globals() -> None:
    from torch.serialization import add_safe_globals, get_safe_globals
    present = get_safe_globals()
    missing = [g for g in checkpoint_safe_globals() if g not in present]
    if missing:
        add_safe_globals(missing)


def _install_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader._schemes.get('')
    if getattr(current, _MARK, False):
        return
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)


# ---------------------------------------------------------------------------
# 2. init_dist without CUDA
# ---------------------------------------------------------------------------
def _no_cuda() -> bool:
    return not torch.cuda.is_available()


@contextlib.contextmanager
def _cuda_set_device_disabled() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block (CPU hosts
    only; restored on exit)."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _cpu_safe_init(init_fn: Callable) -> Callable:

    @functools.wraps(init_fn)
    def wrapper(backend, *args, **kwargs):
        if not _no_cuda():
            return init_fn(backend, *args, **kwargs)
        if backend == 'nccl':
            warnings.warn(
                'mmmixmae.compat: CUDA is not available, using the gloo '
                "distributed backend instead of 'nccl'", stacklevel=2)
            backend = 'gloo'
        with _cuda_set_device_disabled():
            return init_fn(backend, *args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def _patch_init_dist() -> None:
    from mmengine.dist import utils as dist_utils
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        fn = getattr(dist_utils, name, None)
        if fn is not None and not getattr(fn, _MARK, False):
            setattr(dist_utils, name, _cpu_safe_init(fn))


# ---------------------------------------------------------------------------
# 3. Runner.wrap_model without CUDA
# ---------------------------------------------------------------------------
def _patch_wrap_model() -> None:
    from mmengine.model import is_model_wrapper
    from mmengine.registry import MODEL_WRAPPERS
    from mmengine.runner import Runner
    from torch.nn.parallel import DistributedDataParallel

    original = Runner.wrap_model
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def wrap_model(self, model_wrapper_cfg: Optional[dict], model):
        if (self.distributed and _no_cuda() and not is_model_wrapper(model)):
            if model_wrapper_cfg is None:
                model_wrapper_cfg = dict(
                    type='MMDistributedDataParallel',
                    broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get(
                        'find_unused_parameters', False))
            else:
                model_wrapper_cfg = model_wrapper_cfg.copy()
            wrapper_type = model_wrapper_cfg.get('type',
                                                 'MMDistributedDataParallel')
            if isinstance(wrapper_type, str):
                wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
            if (isinstance(wrapper_type, type)
                    and issubclass(wrapper_type, DistributedDataParallel)):
                model_wrapper_cfg.setdefault('device_ids', None)
        return original(self, model_wrapper_cfg, model)

    setattr(wrap_model, _MARK, True)
    Runner.wrap_model = wrap_model


# ---------------------------------------------------------------------------
# 4. AmpOptimWrapper on CPU
# ---------------------------------------------------------------------------
def _has_accelerator() -> bool:
    from mmengine import device
    return any(
        getattr(device, fn, lambda: False)()
        for fn in ('is_cuda_available', 'is_npu_available',
                   'is_mlu_available', 'is_musa_available'))


def _patch_amp_optim_wrapper() -> None:
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    original = AmpOptimWrapper.__init__
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp=False,
                 **kwargs):
        if _has_accelerator():
            return original(self, loss_scale=loss_scale, dtype=dtype,
                            use_fsdp=use_fsdp, **kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype is None:
            dtype = torch.bfloat16
        if dtype != torch.bfloat16:
            raise ValueError(
                'AmpOptimWrapper on CPU supports only dtype="bfloat16" (CPU '
                f'autocast does not do float16); got dtype={dtype!r}')
        if loss_scale != 'dynamic':
            warnings.warn(
                'mmmixmae.compat: loss_scale is ignored for bfloat16 AMP on '
                'CPU (no loss scaling is needed)', stacklevel=2)
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = dtype

    setattr(__init__, _MARK, True)
    AmpOptimWrapper.__init__ = __init__


# ---------------------------------------------------------------------------
def apply_compat() -> None:
    """Install all fixes described in the module docstring (idempotent)."""
    global _applied
    if _applied:
        return
    _install_safe_globals()
    _install_checkpoint_loader()
    _patch_init_dist()
    _patch_wrap_model()
    _patch_amp_optim_wrapper()
    from . import compat_fsdp; compat_fsdp.apply()  # sharded training (FlexibleRunner + FSDP)
    _applied = True
