"""mmengine 0.10.7's ``DeepSpeedStrategy`` (FlexibleRunner) with deepspeed 0.19 on CPU hosts.

:func:`apply` is called from :func:`mmmixmae.compat.apply_compat`.  Without deepspeed installed
it does nothing (mmengine's strategy then stops with "DeepSpeed is not installed").  On an
mmengine, torch (:data:`SUPPORTED`) or deepspeed (:data:`SUPPORTED_DEEPSPEED`) it was not written
for it raises :class:`~mmmixmae.compat.CompatVersionError`.

1. **The silent start-up "hang": a C++ build inside ``init_distributed``.**
   ``DeepSpeedStrategy._setup_distributed`` calls mmengine's ``init_dist(...,
   init_backend='deepspeed')`` -> ``deepspeed.init_distributed`` -> ``TorchBackend.__init__``
   -> ``deepspeed.comm.torch.build_shm_op()``.  With deepspeed's CPU accelerator (chosen on a
   host without GPUs) that returns the ``ShareMemCommBuilder`` op, and since a registry install
   (``DS_BUILD_OPS=0``) has no prebuilt ops, ``OpBuilder.load`` JIT-compiles
   ``csrc/cpu/comm/shm*.cpp`` with ninja and g++ into ``~/.cache/torch_extensions``: one rank
   compiles, the others wait on the build's file lock, and nothing is printed until it ends
   (126 s wall on the 2-core machine this was written on, several minutes under load; py-spy
   shows ``_jit_compile`` / ``FileLock.__enter__`` under ``build_shm_op``).  Before compiling,
   ``deepspeed.ops.__compatible_ops__`` also probes every op builder with compiler
   subprocesses.  That op serves only ``inference_all_reduce`` (tensor-parallel inference):
   training's collectives (all_reduce, reduce_scatter, all_gather of ZeRO) are
   ``torch.distributed`` calls over gloo.  The patched ``build_shm_op`` therefore loads the op
   only when it was installed prebuilt (``DS_BUILD_SHM_COMM=1``) and otherwise returns None,
   deepspeed's own "no shm op" value (``inference_all_reduce`` then uses
   ``torch.distributed.all_reduce``), and says so once in the log.
2. **``register_deepspeed_optimizers`` imports modules deepspeed no longer has.**  Every
   ``DeepSpeedStrategy.__init__`` calls it, and it imports ``deepspeed.runtime.fp16.onebit``
   (OnebitAdam, OnebitLamb, ZeroOneAdam), which deepspeed 0.19 does not ship: the strategy
   fails with ``ModuleNotFoundError``.  The patched function registers the optimizers of that
   list which the installed deepspeed has (``DeepSpeedCPUAdam``, ``FusedAdam``, ``FusedLamb``
   in 0.19) and returns their names; a config naming one of the missing ones fails when the
   optimizer is built, with mmengine's "not in the optimizer registry".
3. **Checkpoint hooks never run.**  ``FlexibleRunner`` fires ``before_save_checkpoint`` and
   ``after_load_checkpoint`` through a ``callback`` argument of the strategy's
   ``save_checkpoint`` / ``resume`` / ``load_checkpoint``; ``DeepSpeedStrategy`` accepts and
   ignores it ("callback parameter is not supported yet").  So under DeepSpeed no hook can
   add to a checkpoint or read it back, silently: :class:`~mmmixmae.engine.hooks.ExactResumeHook`
   stores no RNG state and a resumed run draws other mixing masks than the uninterrupted one.
   The patched methods call ``callback`` with the dict deepspeed stores as ``client_state``:
   before saving (what a hook adds is saved with it) and after loading (deepspeed's engine has
   then loaded the module, strictly, and the optimizer partitions; the hooks see mmengine's
   ``meta``, ``message_hub`` and whatever they saved).
4. **No launcher, no clear error.**  Started without ``--launcher`` (``launcher='none'``),
   ``DeepSpeedStrategy`` calls ``deepspeed.init_distributed``, which falls back to MPI
   discovery and dies with ``ModuleNotFoundError: No module named 'mpi4py'``.  The patched
   ``__init__`` stops first with the message of the FSDP strategy
   (:func:`~.fsdp.refuse_without_launcher`): it names the strategy, ``launcher='none'`` and
   the commands that start a distributed run.
5. **Resume unpickles with ``weights_only=False``.**  deepspeed 0.19's
   ``TorchCheckpointEngine.load`` (every model-state and optimizer-partition file of
   ``DeepSpeedEngine.load_checkpoint``, so every ``--resume`` and ``load_from`` of a ZeRO config)
   calls ``torch.load(path, weights_only=False)``: any file placed in a checkpoint folder could
   run code.  The patched ``load`` reads weights-only through
   :func:`mmmixmae.checkpoint.deepspeed_zero.read_deepspeed_file`, the reader of the converter:
   the project's allowlist plus the four deepspeed / mmengine classes these files hold, and
   the project's errors naming the file and the refused global.  A *universal* checkpoint
   (deepspeed config ``checkpoint=dict(load_universal=True)``) is read by other loaders of
   deepspeed (``_load_universal_checkpoint`` of the ZeRO optimizers, ``torch.load(...,
   weights_only=False)`` again), so the patched ``DeepSpeedEngine.load_checkpoint`` refuses
   it before any file is opened, naming the folder and the setting.
"""
from __future__ import annotations

import functools
import importlib
import logging
from typing import Callable, List, Optional, Tuple

from ._guard import MARK, CompatVersionError, _matches, check_versions

__all__ = ['SUPPORTED', 'SUPPORTED_DEEPSPEED', 'DEEPSPEED_OPTIMIZERS', 'apply',
           'deepspeed_version']

#: mmengine: the release whose _strategy/deepspeed.py this was written against
SUPPORTED = dict(mmengine=('0.10.7', ), torch=('2.14', ))
#: deepspeed: the releases whose comm/torch.py and op builders were read
SUPPORTED_DEEPSPEED = ('0.19', )

#: (module, class) of every optimizer mmengine 0.10.7's ``register_deepspeed_optimizers``
#: registers, in its order
DEEPSPEED_OPTIMIZERS: Tuple[Tuple[str, str], ...] = (
    ('deepspeed.ops.adam', 'DeepSpeedCPUAdam'),
    ('deepspeed.ops.adam', 'FusedAdam'),
    ('deepspeed.ops.lamb', 'FusedLamb'),
    ('deepspeed.runtime.fp16.onebit', 'OnebitAdam'),
    ('deepspeed.runtime.fp16.onebit', 'OnebitLamb'),
    ('deepspeed.runtime.fp16.onebit', 'ZeroOneAdam'),
)

_SHM_OP = 'deepspeed_shm_comm'
_logger = logging.getLogger(__name__)


def deepspeed_version() -> Optional[str]:
    """The installed deepspeed's version, or None when it is not installed."""
    try:
        import deepspeed
    except ImportError:
        return None
    return deepspeed.__version__


def check_deepspeed_version(found: str) -> None:
    """Raise :class:`CompatVersionError` unless ``found`` is one of :data:`SUPPORTED_DEEPSPEED`."""
    if not any(_matches(found, known) for known in SUPPORTED_DEEPSPEED):
        raise CompatVersionError(
            f'{__name__} was written for deepspeed {", ".join(SUPPORTED_DEEPSPEED)} but '
            f'deepspeed {found} is installed; check that version\'s deepspeed/comm/torch.py and '
            f'mmengine\'s register_deepspeed_optimizers, then extend '
            f'{__name__}.SUPPORTED_DEEPSPEED or drop the patch')


# ---------------------------------------------------------------------------
# 1. no JIT build of the shared-memory inference all-reduce
# ---------------------------------------------------------------------------
def shm_op_prebuilt() -> bool:
    """Whether deepspeed was installed with its shared-memory comm op compiled in."""
    from deepspeed.git_version_info import installed_ops
    return bool(installed_ops.get(_SHM_OP, False))


def _no_jit_build_shm_op(original: Callable[[], object]) -> Callable[[], object]:
    """``build_shm_op`` that never compiles: the prebuilt op, or None."""

    @functools.wraps(original)
    def build_shm_op():
        if shm_op_prebuilt():
            return original()
        if not getattr(build_shm_op, '_told', False):
            build_shm_op._told = True
            _logger.info(
                'mmmixmae.compat.deepspeed_strategy: deepspeed\'s shared-memory all-reduce '
                '(%s, used only by inference_all_reduce) is not prebuilt; it is not JIT-compiled '
                'and torch.distributed.all_reduce serves instead', _SHM_OP)
        return None

    setattr(build_shm_op, MARK, True)
    return build_shm_op


# ---------------------------------------------------------------------------
# 2. register the deepspeed optimizers that exist
# ---------------------------------------------------------------------------
def available_deepspeed_optimizers() -> List[type]:
    """The classes of :data:`DEEPSPEED_OPTIMIZERS` that the installed deepspeed has."""
    found = []
    for module_name, class_name in DEEPSPEED_OPTIMIZERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is None or not module_name.startswith(err.name):
                raise  # a dependency of an existing module is missing: not ours to hide
            continue
        if hasattr(module, class_name):
            found.append(getattr(module, class_name))
    return found


def register_deepspeed_optimizers() -> List[str]:
    """Register the available deepspeed optimizers in mmengine's ``OPTIMIZERS`` registry
    (mmengine's function, minus the classes this deepspeed lacks); returns their names."""
    from mmengine.registry import OPTIMIZERS
    names = []
    for cls in available_deepspeed_optimizers():
        existing = OPTIMIZERS.module_dict.get(cls.__name__)
        if existing is None:
            OPTIMIZERS.register_module(module=cls)
        elif existing is not cls:
            raise KeyError(f'optimizer name {cls.__name__} is registered in mmengine\'s '
                           f'OPTIMIZERS for {existing.__module__}.{existing.__qualname__}, not '
                           f'for deepspeed\'s {cls.__module__}.{cls.__qualname__}')
        names.append(cls.__name__)
    return names


setattr(register_deepspeed_optimizers, MARK, True)


# ---------------------------------------------------------------------------
# 3. the checkpoint callbacks
# ---------------------------------------------------------------------------
def _save_with_callback(original: Callable) -> Callable:
    """``save_checkpoint`` that lets ``callback`` see (and add to) the saved client state."""

    @functools.wraps(original)
    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable[[dict], None]] = None) -> None:
        extra_ckpt = dict() if extra_ckpt is None else extra_ckpt
        if callback is not None:
            callback(extra_ckpt)
        return original(self, filename, save_optimizer=save_optimizer,
                        save_param_scheduler=save_param_scheduler, extra_ckpt=extra_ckpt)

    setattr(save_checkpoint, MARK, True)
    return save_checkpoint


def _load_with_callback(original: Callable) -> Callable:
    """``resume`` / ``load_checkpoint`` that hand the loaded client state to ``callback``."""

    @functools.wraps(original)
    def load(self, filename: str, *, callback: Optional[Callable[[dict], None]] = None,
             **kwargs) -> dict:
        checkpoint = original(self, filename, **kwargs)
        if callback is not None:
            callback(checkpoint)
        return checkpoint

    setattr(load, MARK, True)
    return load


# ---------------------------------------------------------------------------
# 5. weights-only resume
# ---------------------------------------------------------------------------
def _weights_only_load(original: Callable) -> Callable:
    """``TorchCheckpointEngine.load`` reading weights-only (see the module docstring, 5)."""

    @functools.wraps(original)
    def load(self, path: str, map_location=None):
        from mmmixmae.checkpoint.deepspeed_zero import read_deepspeed_file
        return read_deepspeed_file(path, map_location)

    setattr(load, MARK, True)
    return load


def _refuse_universal(original: Callable) -> Callable:
    """``DeepSpeedEngine.load_checkpoint`` that refuses universal checkpoints (docstring, 5)."""

    @functools.wraps(original)
    def load_checkpoint(self, load_dir, *args, **kwargs):
        if self.load_universal_checkpoint():
            from mmmixmae.checkpoint import CheckpointError
            raise CheckpointError(
                f'Refusing to load {load_dir} as a universal checkpoint (deepspeed config '
                'checkpoint.load_universal=True): deepspeed 0.19 reads universal checkpoint '
                'files with torch.load(weights_only=False), so a file in that folder could run '
                'code. Resume from the ZeRO checkpoint folder the run saved (read weights-only) '
                'without load_universal, or consolidate it with '
                'tools/model_converters/deepspeed_to_full.py.', str(load_dir))
        return original(self, load_dir, *args, **kwargs)

    setattr(load_checkpoint, MARK, True)
    return load_checkpoint


def apply() -> None:
    """Install the five fixes (idempotent); nothing without deepspeed."""
    check_versions(__name__, SUPPORTED)
    found = deepspeed_version()
    if found is None:
        return
    check_deepspeed_version(found)
    import sys

    import deepspeed.comm.torch  # noqa: F401  (the module; the attribute is torch itself)
    from mmengine._strategy import deepspeed as mm_deepspeed
    comm_torch = sys.modules['deepspeed.comm.torch']
    if not getattr(comm_torch.build_shm_op, MARK, False):
        comm_torch.build_shm_op = _no_jit_build_shm_op(comm_torch.build_shm_op)
    if not getattr(mm_deepspeed.register_deepspeed_optimizers, MARK, False):
        mm_deepspeed.register_deepspeed_optimizers = register_deepspeed_optimizers
    strategy = mm_deepspeed.DeepSpeedStrategy
    if not getattr(strategy.save_checkpoint, MARK, False):
        strategy.save_checkpoint = _save_with_callback(strategy.save_checkpoint)
    for name in ('resume', 'load_checkpoint'):
        if not getattr(getattr(strategy, name), MARK, False):
            setattr(strategy, name, _load_with_callback(getattr(strategy, name)))
    from .fsdp import refuse_without_launcher
    refuse_without_launcher(strategy)  # idempotent itself
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    if not getattr(TorchCheckpointEngine.load, MARK, False):
        TorchCheckpointEngine.load = _weights_only_load(TorchCheckpointEngine.load)
    from deepspeed.runtime.engine import DeepSpeedEngine
    if not getattr(DeepSpeedEngine.load_checkpoint, MARK, False):
        DeepSpeedEngine.load_checkpoint = _refuse_universal(DeepSpeedEngine.load_checkpoint)
