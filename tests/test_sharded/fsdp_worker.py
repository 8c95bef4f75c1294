"""One rank of the FSDP-vs-DDP checks (run by tests/test_sharded with torch.distributed.run).

    python -m torch.distributed.run --nproc_per_node=2 fsdp_worker.py OUT_DIR

On every rank: the same tiny MixMAE (seed 0) is trained for ``STEPS`` steps twice, once
wrapped by mmengine's ``DDPStrategy`` and once by ``FSDPStrategy`` with the shipped block wrap
policy and per-block activation checkpointing, on the same per-rank images and masks (the
torch RNG is re-seeded per step and rank).  Then a tiny ImageClassifier is wrapped both ways
with the layer-decay constructors (ours and mmpretrain's), and the tiny MixMAE trains under
the strategy the L/H sharded configs ship (bfloat16 mixed precision).  Rank 0 writes ``OUT_DIR/results.pt`` (plain tensors and
numbers only) and ``OUT_DIR/fsdp_full.pth`` (the FSDP full state dict as an mmengine
checkpoint); both ranks try a sharded checkpoint on a different wrap policy and record the
error message.
"""
import copy
import os
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STEPS = 3
ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
LR = 1e-3


def pretrain_model() -> dict:
    return dict(
        type='MixMAE', mask_ratio=0.5,
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2)),
        neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=1, num_heads=2,
                  img_size=64),
        head=dict(type='MixMAEPretrainHead', patch_size=32, norm_pix=True))


def classifier_model() -> dict:
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=5),
        backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2),
                      out_indices=(3, ), out_type='avg_featmap', drop_path_rate=0.1),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=128,
                  loss=dict(type='CrossEntropyLoss')))


def env() -> dict:
    return dict(launcher='pytorch', dist_cfg=dict(backend='gloo'))


def fsdp_strategy(policy='mixmae_block_wrap_policy', work_dir='/tmp'):
    from mmengine._strategy import FSDPStrategy
    return FSDPStrategy(
        model_wrapper=dict(type='MMFullyShardedDataParallel', auto_wrap_policy=policy,
                           use_orig_params=True, sync_module_states=True),
        activation_checkpointing=dict(check_fn='mixmae_block_checkpoint_fn'),
        state_dict_cfg='local', env_kwargs=env(), work_dir=work_dir)


def shipped_strategy(work_dir: str):
    """The strategy of the L/H sharded configs (configs/mixmae/_base_/fsdp_block_bf16.py)."""
    from mmengine.config import Config
    from mmengine.registry import STRATEGIES
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mixmae', '_base_', 'fsdp_block_bf16.py'))
    return STRATEGIES.build(dict(cfg.strategy, env_kwargs=env(), work_dir=work_dir))


def shipped_run(base, rank: int, out_dir: str) -> dict:
    """``STEPS`` steps of the tiny model under the shipped strategy (bf16 mixed precision)."""
    strategy = shipped_strategy(out_dir)
    losses = train(strategy, copy.deepcopy(base), rank)
    state = full_state(strategy)
    return dict(losses=losses, dtypes=sorted({str(v.dtype) for v in state.values()}),
                moved=max((state[k] - v).abs().max().item()
                          for k, v in base.state_dict().items() if k in state
                          and v.is_floating_point()))


def ddp_strategy():
    from mmengine._strategy import DDPStrategy
    return DDPStrategy(env_kwargs=env())


def batch(step: int, rank: int) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(1000 * step + rank)
    imgs = [torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=[torch.stack(imgs)], data_samples=[DataSample() for _ in imgs])


def pretrain_optim() -> dict:
    return dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=LR, betas=(0.9, 0.95),
                                                    weight_decay=0.05),
                paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                   flat_decay_mult=0.0))


def train(strategy, model, rank: int):
    strategy.prepare(model, optim_wrapper=pretrain_optim())
    losses = []
    for step in range(STEPS):
        torch.manual_seed(10 * step + rank)  # same masks on this rank in both runs
        log = strategy.model.train_step(batch(step, rank), strategy.optim_wrapper)
        losses.append(float(log['loss']))
    return losses


def full_state(strategy) -> dict:
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    with FSDP.state_dict_type(strategy.model, StateDictType.FULL_STATE_DICT,
                              FullStateDictConfig(rank0_only=False, offload_to_cpu=True)):
        return {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}


def lr_table(strategy) -> dict:
    """name -> (lr, weight_decay) from the optimizer's groups, names without wrapper parts."""
    names = {id(p): n for n, p in strategy.model.named_parameters()}
    out = {}
    for group in strategy.optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            for part in ('_fsdp_wrapped_module.', '_checkpoint_wrapped_module.'):
                name = name.replace(part, '')
            name = name[len('module.'):] if name.startswith('module.') else name
            out[name] = (group['lr'], group['weight_decay'])
    return out


def main(out_dir: str) -> None:
    import mmmixmae  # noqa: F401  (registers modules, applies compat)
    import mmmixmae.engine  # noqa: F401  (wrap policy, layer-decay constructor)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmmixmae.compat.fsdp import ShardedCheckpointError
    DefaultScope.get_instance('i14_fsdp_worker', scope_name='mmpretrain')
    rank = int(os.environ['RANK'])

    torch.manual_seed(0)
    base = MODELS.build(pretrain_model())
    ddp_losses = train(ddp_strategy(), copy.deepcopy(base), rank)
    ddp = ddp_strategy()  # reuse the trained module: the strategy of the first call holds it
    fsdp = fsdp_strategy(work_dir=out_dir)
    fsdp_losses = train(fsdp, copy.deepcopy(base), rank)
    ddp_state = None  # filled below from a fresh DDP run kept by reference
    del ddp

    # DDP weights: train again keeping the strategy (cheap at this size)
    strat = ddp_strategy()
    train(strat, copy.deepcopy(base), rank)
    ddp_state = {k: v.detach().clone() for k, v in strat.model.module.state_dict().items()}
    fsdp_state = full_state(fsdp)

    # sharded checkpoint, then load it into a run with another wrap policy
    ckpt = osp.join(out_dir, 'sharded.pth')
    fsdp.save_checkpoint(ckpt)
    other = fsdp_strategy(policy=None, work_dir=out_dir)
    other.prepare(copy.deepcopy(base), optim_wrapper=pretrain_optim())
    try:
        other.load_checkpoint(ckpt)
        policy_error = ''
    except ShardedCheckpointError as err:
        policy_error = str(err)

    # layer-wise lr decay, DDP vs FSDP
    torch.manual_seed(0)
    cls = MODELS.build(classifier_model())
    optim = dict(type='OptimWrapper', constructor='MixMAELayerDecayOptimWrapperConstructor',
                 optimizer=dict(type='AdamW', lr=LR, weight_decay=0.05),
                 paramwise_cfg=dict(layer_decay_rate=0.7))
    s_ddp = ddp_strategy()
    s_ddp.prepare(copy.deepcopy(cls), optim_wrapper=copy.deepcopy(optim))
    s_fsdp = fsdp_strategy(work_dir=out_dir)
    s_fsdp.prepare(copy.deepcopy(cls), optim_wrapper=copy.deepcopy(optim))
    lr_ddp, lr_fsdp = lr_table(s_ddp), lr_table(s_fsdp)
    # the fine-tuning configs' constructor (mmpretrain's), as the sharded L config keeps it
    optim['constructor'] = 'LearningRateDecayOptimWrapperConstructor'
    optim['paramwise_cfg']['flat_decay_mult'] = 0.0
    m_ddp, m_fsdp = ddp_strategy(), fsdp_strategy(work_dir=out_dir)
    m_ddp.prepare(copy.deepcopy(cls), optim_wrapper=copy.deepcopy(optim))
    m_fsdp.prepare(copy.deepcopy(cls), optim_wrapper=copy.deepcopy(optim))
    mm_ddp, mm_fsdp = lr_table(m_ddp), lr_table(m_fsdp)
    shipped = shipped_run(base, rank, out_dir)

    if rank == 0:
        from mmengine.runner.checkpoint import save_checkpoint
        torch.save(dict(ddp_losses=ddp_losses, fsdp_losses=fsdp_losses, ddp_state=ddp_state,
                        fsdp_state=fsdp_state, policy_error=policy_error, lr_ddp=lr_ddp,
                        lr_fsdp=lr_fsdp, mm_ddp=mm_ddp, mm_fsdp=mm_fsdp, shipped=shipped,
                        world_size=int(os.environ['WORLD_SIZE'])),
                   osp.join(out_dir, 'results.pt'))
        save_checkpoint(dict(state_dict=fsdp_state, meta=dict(source='fsdp_worker')),
                        osp.join(out_dir, 'fsdp_full.pth'))
    from mmmixmae.utils.dist_teardown import close_process_group
    close_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
