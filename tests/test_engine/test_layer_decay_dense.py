"""Layer-wise lr decay inside a real Mask R-CNN (mmdet) and a real UperNet (mmseg).

The expected scales come from the official MixMIM rule (util/lr_decay.py of Sense-X/MixMIM),
written out here independently of ``MixMAESwin.get_layer_depth``: with ``N = sum(depths) + 1``
a backbone parameter of layer id ``k`` gets ``rate ** (N - k)``; the neck and heads get 1.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmmixmae  # noqa: F401
from mmmixmae.engine.optimizers import MixMAELayerDecayOptimWrapperConstructor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MASK_RCNN = osp.join(REPO, 'configs', 'mask_rcnn', 'mask-rcnn_mixmae-base_fpn_amp-1x_coco.py')
UPERNET = osp.join(REPO, 'configs', 'upernet',
                   'upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py')
TOY_DET = osp.join(REPO, 'configs', 'mask_rcnn', 'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py')


def official_layer_id(name, depths):
    """Sense-X/MixMIM get_layer_id_for_mixmim, for names relative to the backbone."""
    if name in ('cls_token', 'pos_embed', 'absolute_pos_embed') or name.startswith('patch_embed'):
        return 0
    if name.startswith('layers'):
        stage = int(name.split('.')[1])
        if 'downsample' in name:
            return sum(depths[:stage + 1]) + 1
        return sum(depths[:stage]) + int(name.split('.')[3]) + 1
    return sum(depths)


def build(cfg_path, scope, **backbone):
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(backbone)
    if scope == 'mmdet':
        import mmmixmae.det  # noqa: F401
        from mmdet.registry import MODELS
    else:
        import mmmixmae.seg  # noqa: F401
        from mmseg.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return cfg, model, wrapper


def check_groups(cfg, model, wrapper):
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    base_lr = cfg.optim_wrapper.optimizer.lr
    wd = cfg.optim_wrapper.optimizer.weight_decay
    depths = model.backbone.depths
    n = sum(depths) + 1
    group_of = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in group_of, 'a parameter is in two groups'
            group_of[id(p)] = group
    seen, scales = 0, set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in group_of, f'frozen {name} was given to the optimizer'
            continue
        group = group_of.pop(id(p))
        seen += 1
        if name.startswith('backbone.'):
            scale = rate**(n - official_layer_id(name[len('backbone.'):], depths))
        else:
            scale = 1.0
        scales.add(round(scale, 12))
        assert group['lr'] == pytest.approx(base_lr * scale, rel=1e-9), name
        no_decay = p.ndim == 1 or 'relative_position_bias_table' in name
        assert group['weight_decay'] == (0. if no_decay else wd), name
    assert not group_of, 'the optimizer holds parameters the model does not have'
    assert not model.backbone.absolute_pos_embed.requires_grad
    return seen, scales


def test_scales_in_real_mask_rcnn():
    cfg, model, wrapper = build(MASK_RCNN, 'mmdet')
    seen, scales = check_groups(cfg, model, wrapper)
    # 24 blocks: ids 0..24 -> scales 0.9^25 .. 0.9^1, plus 1 for the FPN / RPN / RoI heads
    assert len(scales) == 26 and min(scales) == pytest.approx(0.9**25) and max(scales) == 1.0
    heads = [g for g in wrapper.optimizer.param_groups if g['layer_id'] == -1]
    n_head = sum(p.numel() for g in heads for p in g['params'])
    n_other = sum(p.numel() for n, p in model.named_parameters()
                  if not n.startswith('backbone.') and p.requires_grad)
    assert n_head == n_other > 1e7  # FPN + RPN + RoI heads of Mask R-CNN
    assert type(wrapper).__name__ == 'AmpOptimWrapper'


def test_scales_in_real_upernet():
    cfg, model, wrapper = build(UPERNET, 'mmseg')
    seen, scales = check_groups(cfg, model, wrapper)
    assert len(scales) == 26 and max(scales) == 1.0
    # UperNet's SyncBN weights and biases are 1-D: no weight decay, scale 1
    bn = [p for n, p in model.named_parameters() if 'decode_head' in n and 'bn.' in n]
    assert bn and all(
        g['weight_decay'] == 0 and g['lr_scale'] == 1.0 for g in wrapper.optimizer.param_groups
        for p in g['params'] if any(p is q for q in bn))


def test_frozen_stages_are_left_to_rest():
    cfg, model, wrapper = build(TOY_DET, 'mmdet', frozen_stages=1)
    check_groups(cfg, model, wrapper)
    in_optimizer = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    for name, p in model.backbone.named_parameters():
        frozen = name.startswith(('patch_embed.', 'layers.0.', 'norm0.')) \
            or name == 'absolute_pos_embed'
        assert (id(p) in in_optimizer) is not frozen, name


def test_one_sgd_step_moves_each_parameter_by_its_scaled_lr():
    """SGD (no momentum, no decay): delta = -lr * scale * grad, checked per parameter."""
    import mmmixmae.det  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(TOY_DET)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5, momentum=0., weight_decay=0.),
            constructor='MixMAELayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.5)))
    torch.manual_seed(0)
    params = dict(model.named_parameters())
    for p in params.values():
        p.grad = torch.randn_like(p) if p.requires_grad else None
    before = {n: p.detach().clone() for n, p in params.items()}
    wrapper.step()
    n = sum(model.backbone.depths) + 1
    for name in ('backbone.patch_embed.proj.weight', 'backbone.layers.0.blocks.0.attn.qkv.weight',
                 'backbone.layers.2.downsample.reduction.weight',
                 'backbone.layers.3.blocks.0.mlp.fc2.weight', 'backbone.norm.weight',
                 'neck.fpn_convs.0.conv.weight', 'roi_head.bbox_head.fc_cls.weight'):
        p = params[name]
        scale = 0.5**(n - official_layer_id(name[9:], model.backbone.depths)) \
            if name.startswith('backbone.') else 1.0
        delta = before[name] - p.detach()
        assert torch.allclose(delta, 0.5 * scale * p.grad, atol=1e-7), name
    assert torch.equal(before['backbone.absolute_pos_embed'],
                       params['backbone.absolute_pos_embed'].detach())


def test_bad_configuration_is_refused():
    opt = dict(type='AdamW', lr=1e-4, weight_decay=0.05)
    with pytest.raises(ValueError, match='needs paramwise_cfg.layer_decay_rate'):
        MixMAELayerDecayOptimWrapperConstructor(dict(optimizer=opt), dict())
    with pytest.raises(ValueError, match=r"unknown paramwise_cfg keys \['custom_keys'\]"):
        MixMAELayerDecayOptimWrapperConstructor(
            dict(optimizer=opt), dict(layer_decay_rate=0.9, custom_keys={}))
    with pytest.raises(ValueError, match=r'layer_decay_rate must be a number in \(0, 1\], got 1.5'):
        MixMAELayerDecayOptimWrapperConstructor(dict(optimizer=opt), dict(layer_decay_rate=1.5))
    constructor = MixMAELayerDecayOptimWrapperConstructor(dict(optimizer=opt),
                                                          dict(layer_decay_rate=0.9))
    with pytest.raises(TypeError, match="Linear has no attribute 'backbone'"):
        constructor(torch.nn.Linear(2, 2))
    holder = torch.nn.Module()
    holder.backbone = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match='backbone Linear has no get_layer_depth'):
        constructor(holder)
