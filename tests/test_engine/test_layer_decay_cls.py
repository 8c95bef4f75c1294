"""Fine-tuning configs (configs/mixmae/benchmarks): the layer-wise lr decay and weight decay
built by mmpretrain's LearningRateDecayOptimWrapperConstructor equal the official
util/lr_decay.py, and the lr schedule equals the official util/lr_sched.py."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'configs', 'mixmae', 'benchmarks')
BASE_224 = osp.join(BENCH, 'mixmae-swin-base-w14_8xb128-amp-coslr-100e_in1k.py')
BASE_384 = osp.join(BENCH, 'mixmae-swin-base-w16_16xb64-amp-coslr-100e_in1k-384px.py')
LARGE_224 = osp.join(BENCH, 'mixmae-swin-large-w14_8xb128-amp-coslr-50e_in1k.py')
LARGE_384 = osp.join(BENCH, 'mixmae-swin-large-w16_16xb64-amp-coslr-50e_in1k-384px.py')
DEPTHS = [2, 2, 18, 2]


def official_layer_id(name, num_layers):
    """util/lr_decay.py get_layer_id_for_mixmim, re-typed from the official source."""
    if name in ('cls_token', 'pos_embed', 'absolute_pos_embed'):
        return 0
    if name.startswith('patch_embed'):
        return 0
    if name.startswith('layers'):
        stage = int(name.split('.')[1])
        if 'downsample' in name:
            return sum(num_layers[:stage + 1]) + 1
        return sum(num_layers[:stage]) + int(name.split('.')[3]) + 1
    return sum(num_layers)


def official_name(param_name):
    """Our ImageClassifier names -> the official MixMIM fine-tuning model's names."""
    if param_name.startswith('backbone.'):
        return param_name[len('backbone.'):]
    assert param_name.startswith('head.fc.'), param_name
    return 'head.' + param_name[len('head.fc.'):]


@pytest.fixture(scope='module')
def base_optimizer():
    cfg = Config.fromfile(BASE_224)
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    return cfg, model, wrapper


def test_base_scale_table_has_the_issue_numbers(base_optimizer):
    cfg, model, wrapper = base_optimizer
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    rate = 0.7
    scale = {name: g['lr_scale'] for name, g in groups.items()}
    assert scale['backbone.patch_embed.proj.weight'] == pytest.approx(rate**25, rel=1e-12)
    assert scale['backbone.patch_embed.norm.bias'] == pytest.approx(rate**25, rel=1e-12)
    assert scale['backbone.layers.0.downsample.reduction.weight'] == pytest.approx(rate**22)
    assert abs(scale['backbone.layers.0.downsample.norm.weight'] - 3.91e-4) < 5e-7
    assert scale['backbone.layers.2.downsample.reduction.weight'] == pytest.approx(0.49)
    for name in ('head.fc.weight', 'head.fc.bias', 'backbone.norm.weight', 'backbone.norm.bias'):
        assert scale[name] == pytest.approx(0.7), name
    # block j of stage i has id sum(depths[:i]) + j + 1, scale rate^(25 - id)
    for stage, depth in enumerate(DEPTHS):
        for block in range(depth):
            layer_id = sum(DEPTHS[:stage]) + block + 1
            key = f'backbone.layers.{stage}.blocks.{block}.attn.qkv.weight'
            assert groups[key]['layer_id'] == layer_id
            assert scale[key] == pytest.approx(rate**(25 - layer_id), rel=1e-12)
    assert scale['backbone.layers.0.blocks.0.mlp.fc1.weight'] == pytest.approx(rate**24)
    assert scale['backbone.layers.3.blocks.1.norm2.weight'] == pytest.approx(rate)
    # lr = 5e-4 x 1024 / 256 times the scale
    for g in groups.values():
        assert g['lr'] == pytest.approx(2e-3 * g['lr_scale'], rel=1e-12)


def test_base_every_parameter_matches_official_lr_decay(base_optimizer):
    _, model, wrapper = base_optimizer
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    # the frozen sin-cos table gets no group, like in the official code
    assert 'backbone.absolute_pos_embed' not in groups
    assert set(groups) == set(trainable)
    # 24 blocks x 13 (norm1 2, qkv 2, proj 2, table 1, norm2 2, fc1 2, fc2 2) + patch embed 4
    # + 3 downsamples x 3 + final norm 2 + head 2
    assert len(groups) == 24 * 13 + 4 + 9 + 2 + 2 == 329
    total = sum(DEPTHS) + 1
    for name, group in groups.items():
        layer_id = official_layer_id(official_name(name), DEPTHS)
        assert group['lr_scale'] == pytest.approx(0.7**(total - layer_id), rel=1e-12), name
        # official: no decay for 1-D parameters, 0.05 for everything else
        expected_wd = 0.0 if trainable[name].ndim == 1 else 0.05
        assert group['weight_decay'] == expected_wd, name
        assert len(group['params']) == 1 and group['params'][0] is trainable[name]
    # 2-D parameters that official keeps decayed
    assert groups['backbone.layers.1.blocks.0.attn.relative_position_bias_table'][
        'weight_decay'] == 0.05
    assert groups['head.fc.weight']['weight_decay'] == 0.05
    assert groups['head.fc.bias']['weight_decay'] == 0.0
    assert wrapper.optimizer.defaults['betas'] == (0.9, 0.999)
    assert type(wrapper.optimizer).__name__ == 'AdamW'


def official_lr(step, iters_per_epoch, lr, min_lr, warmup, epochs):
    """util/lr_sched.py adjust_learning_rate at the fractional epoch of iteration `step`."""
    epoch = step / iters_per_epoch
    if epoch < warmup:
        return lr * epoch / warmup
    return min_lr + (lr - min_lr) * 0.5 * (1. + math.cos(math.pi * (epoch - warmup) /
                                                         (epochs - warmup)))


@pytest.mark.parametrize('path,epochs', [(BASE_224, 100), (LARGE_224, 50)])
def test_schedule_equals_official_per_group(path, epochs):
    """Cosine phase: equal to the official per-iteration schedule, min_lr scaled by each
    group's lr_scale like official lr_sched.  Warm-up: mmengine's LinearLR reaches the peak
    one iteration early, so it may lead the official ramp by at most 1/T of the peak
    (T = warm-up iterations; 1/6255 on ImageNet at batch 1024)."""
    cfg = Config.fromfile(path)
    iters = 20  # iterations per epoch
    warmup_iters = 5 * iters
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    base_lr = cfg.optim_wrapper.optimizer.lr
    scales = (1.0, 0.7**25)
    opt = torch.optim.SGD([dict(params=[p], lr=base_lr * s) for p, s in zip(params, scales)],
                          lr=base_lr)
    schedulers = [
        PARAM_SCHEDULERS.get(c['type']).build_iter_from_epoch(
            opt, epoch_length=iters, **{k: v for k, v in c.items()
                                        if k not in ('type', 'convert_to_iter_based')})
        for c in cfg.param_scheduler
    ]
    warm, cosine = 0.0, 0.0
    for step in range(epochs * iters):
        official = official_lr(step, iters, base_lr, 1e-6, 5, epochs)
        for group, s in zip(opt.param_groups, scales):
            # official lr_sched multiplies the schedule (min_lr included) by lr_scale
            err = abs(group['lr'] - official * s) / (base_lr * s)
            if step < warmup_iters:
                warm = max(warm, err)
            else:
                cosine = max(cosine, err)
        opt.step()
        for sched in schedulers:
            sched.step()
    assert cosine < 1e-6
    assert 0 < warm <= 1 / warmup_iters + 1e-6
    # the last step ends near min_lr x scale for every group
    last = official_lr(epochs * iters - 1, iters, base_lr, 1e-6, 5, epochs)
    assert last < 1.01e-6
    assert opt.param_groups[1]['lr'] == pytest.approx(last * scales[1], rel=1e-4)


def test_configs_carry_the_official_recipe():
    base = Config.fromfile(BASE_224)
    b = base.model.backbone
    assert (b.type, b.arch, b.img_size, tuple(b.window_size), b.drop_path_rate, b.out_type) == \
        ('MixMAESwin', 'base', 224, (14, 14, 14, 7), 0.1, 'avg_featmap')
    assert b.init_cfg == dict(type='Pretrained', checkpoint='', prefix='backbone.')
    assert base.model.head.init_cfg == dict(type='TruncNormal', layer='Linear', std=2e-5, bias=0.)
    assert base.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                        mode='original')
    assert base.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8),
                                             dict(type='CutMix', alpha=1.0)]
    assert base.train_dataloader.batch_size * 8 == 1024 and base.train_cfg.max_epochs == 100
    assert base.optim_wrapper.optimizer.lr == pytest.approx(5e-4 * 1024 / 256)
    assert base.optim_wrapper.optimizer.weight_decay == 0.05
    steps = {t['type']: t for t in base.train_pipeline}
    assert steps['RandAugment']['magnitude_level'] == 9 and \
        steps['RandAugment']['magnitude_std'] == 0.5 and \
        steps['RandAugment']['policies'] == 'timm_increasing'
    assert steps['RandomErasing']['erase_prob'] == 0.25 and steps['RandomErasing']['mode'] == 'rand'
    assert base.test_pipeline[1]['scale'] == 256 and base.test_pipeline[2]['crop_size'] == 224

    for path, arch, epochs, rate, channels in ((BASE_384, 'base', 100, 0.7, 1024),
                                               (LARGE_224, 'large', 50, 0.75, 1536),
                                               (LARGE_384, 'large', 50, 0.75, 1536)):
        cfg = Config.fromfile(path)
        size = 384 if path.endswith('384px.py') else 224
        assert cfg.model.backbone.arch == arch and cfg.model.head.in_channels == channels
        assert cfg.model.backbone.img_size == size
        assert tuple(cfg.model.backbone.window_size) == \
            ((16, 16, 24, 12) if size == 384 else (14, 14, 14, 7))
        assert cfg.train_cfg.max_epochs == epochs
        assert cfg.param_scheduler[1]['end'] == epochs
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == rate
        assert cfg.train_dataloader.batch_size * (8 if size == 224 else 16) == 1024
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-3)
        # crop ratio 1.0 at 384: resize 384, crop 384; otherwise the base pipelines
        eval_sizes = (cfg.val_dataloader.dataset.pipeline[1]['scale'],
                      cfg.val_dataloader.dataset.pipeline[2]['crop_size'])
        assert eval_sizes == ((384, 384) if size == 384 else (256, 224))
        if size == 384:
            for mine, ref in zip(cfg.train_pipeline, base.train_pipeline):
                ref = dict(ref)
                if ref['type'] == 'RandomResizedCrop':
                    ref['scale'] = 384
                assert dict(mine) == ref
