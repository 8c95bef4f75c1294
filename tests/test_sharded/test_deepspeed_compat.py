"""mmmixmae.compat.deepspeed_strategy: the fixes mmengine 0.10.7's DeepSpeedStrategy needs
with deepspeed 0.19 (fast; the 2-rank runs are in test_deepspeed_toy.py)."""
import importlib
import sys

import pytest

from _sharded_env import require_deepspeed

deepspeed = require_deepspeed()

from mmmixmae.compat import CompatVersionError, deepspeed_strategy  # noqa: E402
from mmmixmae.compat._guard import MARK  # noqa: E402


class _Built(AssertionError):
    """Raised by the stubbed op builder: a C++ build was attempted."""


def _comm_torch():
    import deepspeed.comm.torch  # noqa: F401
    return sys.modules['deepspeed.comm.torch']  # the attribute deepspeed.comm.torch is torch


def test_patches_are_installed():
    from mmengine._strategy import deepspeed as mm_deepspeed
    assert getattr(_comm_torch().build_shm_op, MARK, False)
    assert mm_deepspeed.register_deepspeed_optimizers is \
        deepspeed_strategy.register_deepspeed_optimizers
    for name in ('save_checkpoint', 'resume', 'load_checkpoint'):
        assert getattr(getattr(mm_deepspeed.DeepSpeedStrategy, name), MARK, False), name
    deepspeed_strategy.apply()  # idempotent
    assert not hasattr(_comm_torch().build_shm_op.__wrapped__, MARK)


def test_init_distributed_builds_no_cpp_op(monkeypatch):
    """deepspeed's own build_shm_op JIT-compiles csrc/cpu/comm/shm*.cpp (the silent start-up
    'hang'); the patched one returns None without touching the op builder."""
    from deepspeed.ops.op_builder.builder import OpBuilder

    def no_build(self, *args, **kwargs):
        raise _Built(f'JIT build of {self.name}')

    monkeypatch.setattr(OpBuilder, 'jit_load', no_build)
    # skip deepspeed's compiler probe of every op: say the shm op is buildable here
    monkeypatch.setattr(deepspeed.ops, '__compatible_ops__', {'deepspeed_shm_comm': True},
                        raising=False)
    monkeypatch.setattr(deepspeed_strategy, 'shm_op_prebuilt', lambda: False)
    patched = _comm_torch().build_shm_op
    with pytest.raises(_Built, match='deepspeed_shm_comm'):
        patched.__wrapped__()  # deepspeed 0.19 unpatched: compiles
    assert patched() is None


def test_removed_one_bit_optimizers_are_not_imported():
    """mmengine's register_deepspeed_optimizers imports deepspeed.runtime.fp16.onebit, which
    deepspeed 0.19 does not have; the patched one registers what exists."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module('deepspeed.runtime.fp16.onebit')
    from mmengine.registry import OPTIMIZERS
    names = deepspeed_strategy.register_deepspeed_optimizers()
    assert names == ['DeepSpeedCPUAdam', 'FusedAdam', 'FusedLamb']
    assert deepspeed_strategy.register_deepspeed_optimizers() == names  # again: no KeyError
    assert OPTIMIZERS.get('FusedAdam').__module__.startswith('deepspeed.')


def test_checkpoint_callbacks_see_the_client_state():
    """mmengine's DeepSpeedStrategy drops ``callback``; the patched methods call it with the
    dict deepspeed stores (save: before, so a hook's additions are saved; load: after)."""
    calls = []

    def save(self, filename, *, save_optimizer=True, save_param_scheduler=True,
             extra_ckpt=None):
        calls.append(('save', filename, dict(extra_ckpt)))

    def resume(self, filename, **kwargs):
        calls.append(('resume', filename, kwargs))
        return {'meta': {'iter': 4}, 'rng_state': [1]}

    def add_rng(checkpoint):
        checkpoint['rng_state'] = [0]

    seen = []
    deepspeed_strategy._save_with_callback(save)(None, 'w/iter_4.pth', extra_ckpt={'meta': {}},
                                                 callback=add_rng)
    out = deepspeed_strategy._load_with_callback(resume)(None, 'w/iter_4.pth',
                                                         resume_optimizer=True,
                                                         callback=seen.append)
    assert calls[0] == ('save', 'w/iter_4.pth', {'meta': {}, 'rng_state': [0]})
    assert calls[1] == ('resume', 'w/iter_4.pth', {'resume_optimizer': True})
    assert seen == [out] and out['rng_state'] == [1]


def test_unknown_deepspeed_version_is_refused():
    deepspeed_strategy.check_deepspeed_version('0.19.8')
    with pytest.raises(CompatVersionError, match=r'deepspeed 0\.20\.0 is installed'):
        deepspeed_strategy.check_deepspeed_version('0.20.0')


@pytest.mark.parametrize('env_kwargs', [None, dict(launcher='none')])
def test_refused_without_a_launcher(env_kwargs, tmp_path):
    """Without --launcher, deepspeed would fall back to MPI discovery and die on a missing
    mpi4py; the strategy stops first, naming itself and the setting."""
    from mmengine._strategy import DeepSpeedStrategy
    kwargs = dict(work_dir=str(tmp_path))
    if env_kwargs is not None:
        kwargs['env_kwargs'] = env_kwargs
    with pytest.raises(RuntimeError) as err:
        DeepSpeedStrategy(**kwargs)
    text = str(err.value)
    assert "strategy=DeepSpeedStrategy (runner_type='FlexibleRunner')" in text
    assert "launcher='none'" in text and 'tools/dist_train.sh CONFIG N' in text
    init = DeepSpeedStrategy.__init__
    deepspeed_strategy.apply()  # idempotent: not wrapped twice
    assert DeepSpeedStrategy.__init__ is init


class _Payload:
    """A class no allowlist names: unpickling it would be arbitrary code."""


def test_resume_reads_weights_only(tmp_path):
    """deepspeed's TorchCheckpointEngine.load (every file of a --resume) unpickles with
    weights_only=False; the patched one reads weights-only with the deepspeed allowlist."""
    import torch
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from mmengine.config.config import ConfigDict

    from mmmixmae.checkpoint import UnsafeCheckpointError
    assert getattr(TorchCheckpointEngine.load, MARK, False)
    engine = TorchCheckpointEngine()
    good = tmp_path / 'mp_rank_00_model_states.pt'
    torch.save({'module': {'w': torch.arange(3.)}, 'ds_config': ConfigDict(a=1),
                'zero_stage': ZeroStageEnum.gradients}, good)
    data = engine.load(str(good), map_location=lambda storage, loc: storage)
    assert torch.equal(data['module']['w'], torch.arange(3.))
    assert data['ds_config'] == {'a': 1} and data['zero_stage'] == ZeroStageEnum.gradients
    bad = tmp_path / 'zero_pp_rank_0_mp_rank_00_optim_states.pt'
    torch.save({'optimizer_state_dict': _Payload()}, bad)
    with pytest.raises(UnsafeCheckpointError) as err:
        engine.load(str(bad), map_location=torch.device('cpu'))
    assert str(bad) in str(err.value) and '_Payload' in str(err.value)


def test_universal_checkpoints_are_refused(tmp_path):
    """Universal checkpoints go through deepspeed loaders that unpickle with
    weights_only=False: the patched DeepSpeedEngine.load_checkpoint refuses them, naming the
    folder and the setting, before opening anything; other loads reach deepspeed's code."""
    from deepspeed.runtime.engine import DeepSpeedEngine

    from mmmixmae.checkpoint import CheckpointError
    patched = DeepSpeedEngine.load_checkpoint
    assert getattr(patched, MARK, False)
    calls = []

    class _Engine:
        def __init__(self, universal):
            self.universal = universal

        def load_universal_checkpoint(self):
            return self.universal

    wrapped = deepspeed_strategy._refuse_universal(
        lambda self, load_dir, *a, **k: calls.append((load_dir, a, k)) or 'loaded')
    folder = tmp_path / 'iter_4.pth'
    with pytest.raises(CheckpointError) as err:
        wrapped(_Engine(True), folder, tag='', load_module_only=True)
    assert str(folder) in str(err.value) and 'load_universal' in str(err.value)
    assert err.value.path == str(folder) and calls == []
    assert wrapped(_Engine(False), folder, tag='') == 'loaded'
    assert calls == [(folder, (), dict(tag=''))]
    # the installed patch wraps deepspeed's own method
    with pytest.raises(CheckpointError):
        patched(_Engine(True), folder)
