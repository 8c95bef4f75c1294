"""Recipe fidelity of the pretraining configs (drop_last, bf16 autocast with the fp16 path
one override away) and the dense configs' stated layer-decay difference."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmmixmae.utils.errors import UserError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = sorted(p for p in glob.glob(osp.join(REPO, 'configs', 'mixmae', '*.py')))
DENSE = sorted(p for d in ('mask_rcnn', 'upernet')
               for p in glob.glob(osp.join(REPO, 'configs', d, '*.py'))
               if 'toy' not in p and 'demo' not in p)
DOC_HEADING = '### Where this recipe differs from the official code'


def test_every_pretraining_config_drops_the_last_batch():
    # MixMAESwin: B/L/H at each schedule (6), their FSDP variants of L/H 300e (2), their
    # DeepSpeed ZeRO-2/3 variants of L/H 300e (4), the demo and the toy (2), the FSDP and the
    # ZeRO-2 toys (2); MixMAEAdapter: Swin-W7 / ConvNeXt / PCPVT in1k (3), their demos and the
    # SVT demo (4)
    assert len(PRETRAIN) == 23
    for path in PRETRAIN:
        cfg = Config.fromfile(path)
        assert cfg.model.type == 'MixMAE', path
        assert cfg.train_dataloader.get('drop_last') is True, path


def test_drop_last_counts_iterations_per_epoch():
    """ImageNet-1K train (1,281,167 images) on 16 GPUs x 128: 625 iterations, not 626."""
    from torch.utils.data import DataLoader
    per_gpu = -(-1281167 // 16)  # DefaultSampler pads to a multiple of the world size
    assert per_gpu == 80073 and per_gpu % 128 == 73
    cfg = Config.fromfile(PRETRAIN[0])
    loader = DataLoader(range(per_gpu), batch_size=128,
                        drop_last=cfg.train_dataloader.drop_last)
    assert len(loader) == 625
    assert len(DataLoader(range(per_gpu), batch_size=128)) == 626


def test_bf16_autocast_and_the_fp16_override():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mixmae',
                                   'mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg.merge_from_dict({'optim_wrapper.dtype': 'float16'})  # the documented override
    assert cfg.optim_wrapper.dtype == 'float16' and cfg.optim_wrapper.loss_scale == 'dynamic'


def test_fp16_path_on_cpu_as_far_as_cpu_allows():
    """mmengine's AmpOptimWrapper refuses float16 without a GPU (clear error); the model
    itself runs one float16-autocast step with a dynamic GradScaler on CPU."""
    import mmmixmae  # noqa: F401
    from mmengine.optim import AmpOptimWrapper
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MixMAE',
        backbone=dict(type='MixMAESwin', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                   num_heads=[1, 2, 2, 4]),
                      img_size=64, window_size=(4, 4, 2, 2)),
        neck=dict(type='MixMAEDecoder', embed_dims=16, depth=1, num_heads=2),
        head=dict(type='MixMAEPretrainHead')))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match=r"supports only bfloat16.*optim_wrapper.dtype=float16"):
            AmpOptimWrapper(optimizer=opt, dtype='float16', loss_scale='dynamic')
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
    x = torch.randn(2, 3, 64, 64)
    before = model.neck.decoder_pred.weight.detach().clone()
    with torch.autocast('cpu', dtype=torch.float16):
        loss = model.loss(x)['loss']
    assert torch.isfinite(loss) and 0.5 < loss.item() < 3.0
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() in (2.**16, 2.**15)  # unchanged, or halved after an overflow
    moved = (model.neck.decoder_pred.weight - before).abs().max().item()
    assert moved > 0 or scaler.get_scale() == 2.**15


def test_dense_configs_state_their_layer_decay_difference():
    """Mask R-CNN 1x/3x and UperNet B/L say in a comment that their layer decay is ours, not
    an official recipe, pointing to docs/en/pretrain.md, and state the stem's share of the
    lr that their own rate and depth give."""
    import mmmixmae  # noqa: F401
    from mmmixmae.models.backbones.mixmae_swin import MixMAESwin
    assert len(DENSE) == 6
    with open(osp.join(REPO, 'docs', 'en', 'pretrain.md')) as f:
        assert DOC_HEADING in f.read()
    for path in DENSE:
        cfg = Config.fromfile(path)
        rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
        blocks = sum(MixMAESwin.arch_zoo[cfg.model.backbone.arch]['depths'])
        text = open(path).read()
        assert 'docs/en/pretrain.md' in text, path
        assert f'{rate} per block' in text, path
        assert 'official' in text, path
        if '-1x_' in path or 'upernet' in path:  # the 3x configs point to their 1x config
            stem = f'{rate} ** {blocks + 1} = {round(100 * rate ** (blocks + 1))} %'
            assert stem == '0.9 ** 25 = 7 %' and stem in text, (path, stem)
