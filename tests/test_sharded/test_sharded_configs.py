"""The sharded L/H configs differ from their DDP parents only in what sharding changes."""
import os.path as osp

import pytest
from mmengine.config import Config

from _sharded_env import REPO

MIXMAE = osp.join(REPO, 'configs', 'mixmae')
SHARDED = {  # sharded config -> its DDP parent
    'mixmae_swin-large-w14_16xb128-fsdp-amp-coslr-300e_in1k.py':
        'mixmae_swin-large-w14_16xb128-amp-coslr-300e_in1k.py',
    'mixmae_swin-huge-w14_16xb128-fsdp-amp-coslr-300e_in1k.py':
        'mixmae_swin-huge-w14_16xb128-amp-coslr-300e_in1k.py',
    'benchmarks/mixmae-swin-large-w14_8xb128-fsdp-amp-coslr-50e_in1k.py':
        'benchmarks/mixmae-swin-large-w14_8xb128-amp-coslr-50e_in1k.py',
}
#: the top-level keys sharding changes
CHANGED = {'runner_type', 'strategy', 'optim_wrapper', 'default_hooks'}


def load(name):
    return Config.fromfile(osp.join(MIXMAE, name)).to_dict()


@pytest.mark.parametrize('name', sorted(SHARDED))
def test_sharded_config_changes_only_sharding(name):
    ours, parent = load(name), load(SHARDED[name])
    assert set(ours) - set(parent) == {'runner_type', 'strategy'}
    assert {k for k in parent if ours[k] != parent[k]} == CHANGED - {'runner_type', 'strategy'}
    assert ours['runner_type'] == 'FlexibleRunner' and 'runner_type' not in parent
    # the optimizer, its parameter groups and (fine-tuning) layer decay are the parent's
    ow, pw = ours['optim_wrapper'], parent['optim_wrapper']
    assert pw['type'] == 'AmpOptimWrapper'
    assert ow == dict({k: v for k, v in pw.items() if k not in ('dtype', 'loss_scale')},
                      type='OptimWrapper')
    # only the checkpoint hook differs: mmengine's (folders of shards), same interval/keep
    hooks, phooks = ours['default_hooks'], parent['default_hooks']
    assert {k for k in phooks if hooks[k] != phooks[k]} == {'checkpoint'}
    assert phooks['checkpoint']['type'] == 'AtomicCheckpointHook'
    assert hooks['checkpoint'] == dict(phooks['checkpoint'], type='CheckpointHook')


@pytest.mark.parametrize('name', sorted(SHARDED))
def test_sharded_strategy(name):
    strategy = load(name)['strategy']
    assert strategy == dict(
        type='FSDPStrategy',
        model_wrapper=dict(type='MMFullyShardedDataParallel', sharding_strategy='FULL_SHARD',
                           auto_wrap_policy='mixmae_block_wrap_policy', use_orig_params=True,
                           sync_module_states=True,
                           mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                                                buffer_dtype='float32',
                                                cast_forward_inputs=True)),
        activation_checkpointing=dict(check_fn='mixmae_block_checkpoint_fn'),
        state_dict_cfg='local')
    import mmmixmae.engine  # noqa: F401  (registers the two functions)
    from mmengine.registry import FUNCTIONS
    assert FUNCTIONS.get(strategy['model_wrapper']['auto_wrap_policy']) is not None
    assert FUNCTIONS.get(strategy['activation_checkpointing']['check_fn']) is not None


def test_sharded_configs_build_the_parents_model():
    """Same model dict as the parent: the config-consistency test builds each model once."""
    for name, parent in SHARDED.items():
        assert load(name)['model'] == load(parent)['model'], name
