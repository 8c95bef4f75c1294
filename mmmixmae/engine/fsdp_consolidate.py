"""Turn a sharded FSDP checkpoint (``iter_N.pth/rank{i}.pth``) into one ordinary file.

A ``state_dict_cfg='local'`` checkpoint holds, per rank, that rank's slice of each FSDP flat
parameter; the slices only make sense together with the model and wrap policy that wrote them.
:func:`consolidate` therefore does what the training run did, with the same number of ranks:
it builds the model and the ``FSDPStrategy`` from the training config, loads the shards (all
the checks of :mod:`mmmixmae.compat_fsdp` apply: world size, wrap units, shard files), asks
FSDP for the full state dict (gathered to rank 0, on CPU) and writes an mmengine checkpoint
``{'state_dict', 'meta'}`` with the original parameter names.  That file is what
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``, ``load_from``,
fine-tuning and the Mask R-CNN / UperNet configs read.  The optimizer state is not kept.
"""
import copy
import os.path as osp
from typing import Optional

__all__ = ['consolidate']


def consolidate(config: str, shards: str, out: str, launcher: str = 'pytorch',
                cfg_options: Optional[dict] = None) -> Optional[str]:
    """Gather ``shards`` (a folder of ``rank{i}.pth``) into ``out`` (one file).

    Must run under a distributed launcher with as many processes as wrote ``shards``.

    Returns:
        str | None: ``out`` on rank 0, None on the other ranks.
    """
    import torch
    from mmengine.config import Config
    from mmengine.dist import barrier, get_rank
    from mmengine.registry import DefaultScope, STRATEGIES
    from mmengine.runner.checkpoint import save_checkpoint
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from mmmixmae.compat_fsdp import check_shard_folder  # noqa: F401  (documents the checks)

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    strategy_cfg = cfg.get('strategy')
    if not strategy_cfg or strategy_cfg.get('type') not in ('FSDPStrategy', 'mmengine.FSDPStrategy'):
        raise ValueError(f'{config} has no strategy=dict(type=\'FSDPStrategy\', ...); '
                         'a sharded checkpoint is gathered with the config that wrote it')
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmpretrain')
    DefaultScope.get_instance(f'fsdp_consolidate_{osp.basename(shards)}', scope_name=scope)
    strategy_cfg = copy.deepcopy(strategy_cfg.to_dict())
    strategy_cfg['state_dict_cfg'] = 'local'
    strategy_cfg.pop('activation_checkpointing', None)  # no backward here
    strategy_cfg.setdefault('env_kwargs', dict(launcher=launcher,
                                               **cfg.get('env_cfg', {})))
    strategy_cfg.setdefault('work_dir', osp.dirname(osp.abspath(out)))
    strategy = STRATEGIES.build(strategy_cfg)
    model_cfg = cfg.model.to_dict()
    backbone = model_cfg.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict) and backbone['init_cfg'].get('type') == 'Pretrained':
        backbone.pop('init_cfg')  # the shards hold every weight
    strategy.prepare(model_cfg)
    checkpoint = strategy.load_checkpoint(shards)
    with FSDP.state_dict_type(strategy.model, StateDictType.FULL_STATE_DICT,
                              FullStateDictConfig(rank0_only=True, offload_to_cpu=True)):
        state = strategy.model.state_dict()
    if get_rank() == 0:
        meta = dict(checkpoint.get('meta') or {})
        meta['consolidated_from'] = osp.abspath(shards)
        state = type(state)((k, v.detach().to('cpu', copy=True)) for k, v in state.items())
        save_checkpoint(dict(state_dict=state, meta=meta), out)
    barrier()
    del torch
    return out if get_rank() == 0 else None
