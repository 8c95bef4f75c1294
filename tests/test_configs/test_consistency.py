"""Every non-toy config loads, builds its model and passes the size checks; each check names
the two fields that disagree."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REAL = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
              if '_base_' not in p and 'toy' not in p and 'demo' not in p)
from helpers.archs import TOY_FLAT as TINY


def test_all_real_configs_are_listed():
    names = [osp.basename(p) for p in REAL]
    # pretraining B/L/H at every schedule, fine-tuning B/L at 224 and 384, Mask R-CNN B/L 1x
    # and 3x, UperNet B/L; MixMAEAdapter pretraining of Swin-W7, ConvNeXt and PCPVT; FSDP
    # variants of L/H pretraining (300e) and L fine-tuning (224); DeepSpeed ZeRO-2 and ZeRO-3
    # variants of L/H pretraining (300e)
    assert len(names) == 26
    assert sum(n.startswith('mixmae_swin-') and '-w14_' in n for n in names) == 12
    assert sum('-fsdp-' in n for n in names) == 3
    assert sorted(n for n in names if '-zero' in n) == [
        f'mixmae_swin-{a}-w14_16xb128-zero{z}-amp-coslr-300e_in1k.py'
        for a in ('huge', 'large') for z in (2, 3)]
    assert sorted(n.split('_')[1] for n in names if n.startswith('mixmae_') and '-w14_' not in n) \
        == ['convnext-base', 'pcpvt-base', 'swin-base-w7']
    assert sum(n.startswith('mixmae-swin-') for n in names) == 5
    assert sum(n.startswith('mask-rcnn_') for n in names) == 4
    assert sum(n.startswith('upernet_') for n in names) == 2


@pytest.mark.slow
def test_every_real_config_builds_and_is_consistent(misc, monkeypatch):
    cc = misc('config_consistency')
    # only shapes are checked: skip the random initialisation of the 14 models (most of the
    # build time of the 88M-650M-parameter models on CPU)
    for name in ('xavier_uniform_', 'trunc_normal_', 'normal_', 'uniform_', 'kaiming_normal_',
                 'kaiming_uniform_', 'constant_'):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *a, **k: tensor)
    families, built = {}, {}
    for path in REAL:
        cfg = Config.fromfile(path)
        key = repr(cfg.model.to_dict())
        if key not in built:
            built[key] = cc.build_model(cfg)
        families[osp.basename(path)] = cc.check_consistency(cfg, built[key])
    assert sorted(set(families.values())) == ['classifier', 'detector', 'pretrain', 'segmentor']
    assert list(families.values()).count('pretrain') == 15
    assert list(families.values()).count('detector') == 4
    # 3 MixMAESwin + 3 adapter pretraining, 4 fine-tuning, 2 detection, 2 segmentation models
    # (the FSDP and ZeRO-2 variants build their DDP parent's model), and L/H with per-block
    # activation checkpointing (the ZeRO-3 variants)
    assert len(built) == 16


def _tiny_cfg(model, **loaders):
    return Config(dict(model=model, default_scope='mmpretrain', **loaders))


def _build(cc, cfg):
    import mmmixmae  # noqa: F401
    return cc.build_model(cfg)


def _classifier(window_size=(4, 4, 2, 2), in_channels=128):
    return dict(type='ImageClassifier',
                backbone=dict(type='MixMAESwin', arch=TINY, img_size=64,
                              window_size=window_size),
                head=dict(type='LinearClsHead', num_classes=3, in_channels=in_channels))


@pytest.mark.parametrize('change, message', [
    (dict(window_size=(4, 4, 8, 2)),
     r'model\.backbone\.window_size\[2\]=8 disagrees with stage 2 grid at '
     r"model\.backbone\.img_size='4x4 \(\(64, 64\)\)'"),
    (dict(in_channels=1024),
     r'model\.head\.in_channels=1024 disagrees with backbone width of stage 3 '
     r'\(model\.backbone\.arch\)=128'),
], ids=['window_vs_stage_grid', 'head_vs_width'])
def test_classifier_model_mismatch_names_both_fields(misc, change, message):
    cc = misc('config_consistency')
    good = _tiny_cfg(_classifier())
    assert cc.check_consistency(good, _build(cc, good)) == 'classifier'
    cfg = _tiny_cfg(_classifier(**change))
    with pytest.raises(cc.ConfigConsistencyError, match=message):
        cc.check_consistency(cfg, _build(cc, cfg))


def test_classifier_pipeline_vs_img_size(misc):
    cc = misc('config_consistency')
    pipe = [dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=224)]
    cfg = _tiny_cfg(_classifier(), train_dataloader=dict(dataset=dict(pipeline=pipe)))
    with pytest.raises(cc.ConfigConsistencyError,
                       match=r'train_dataloader\.dataset\.pipeline RandomResizedCrop\.scale=224 '
                             r'disagrees with model\.backbone\.img_size=\(64, 64\)'):
        cc.check_consistency(cfg, _build(cc, cfg))
    pipe[1]['scale'] = 64
    cfg = _tiny_cfg(_classifier(), train_dataloader=dict(dataset=dict(pipeline=pipe)))
    assert cc.check_consistency(cfg, _build(cc, cfg)) == 'classifier'


def test_pretrain_decoder_and_head_built_apart(misc):
    """Sizes stated on an already-built decoder / head are checked against the encoder."""
    cc = misc('config_consistency')
    import mmmixmae  # noqa: F401
    from mmpretrain.registry import MODELS
    bb = dict(type='MixMAESwin', arch=TINY, img_size=64, window_size=(4, 4, 2, 2))
    good = MODELS.build(dict(type='MixMAE', backbone=bb,
                             neck=dict(type='MixMAEDecoder', embed_dims=16, depth=1,
                                       num_heads=2),
                             head=dict(type='MixMAEPretrainHead')))
    cfg = _tiny_cfg(dict(backbone=bb))
    assert cc.check_consistency(cfg, good) == 'pretrain'
    bad = copy.deepcopy(good)
    bad.head.patch_size = 16
    with pytest.raises(cc.ConfigConsistencyError,
                       match=r'model\.head\.patch_size=16 disagrees with backbone encoder '
                             r'stride=32'):
        cc.check_consistency(cfg, bad)
    bad = copy.deepcopy(good)
    bad.neck.grid = (7, 7)
    with pytest.raises(cc.ConfigConsistencyError, match=r'\(7, 7\) disagrees with '
                                                        r'model\.backbone\.img_size / stride'):
        cc.check_consistency(cfg, bad)


def test_dense_neck_and_head_inputs(misc):
    cc = misc('config_consistency')
    feats, out = [16, 32, 64, 128], [0, 1, 2, 3]
    cc.check_dense_inputs('model.neck', [16, 32, 64, 128], None, feats, out)
    with pytest.raises(cc.ConfigConsistencyError,
                       match=r'model\.neck\.in_channels=\[128, 256, 512, 1024\] disagrees with '
                             r'backbone output widths \(out_indices \[0, 1, 2, 3\]\)='
                             r'\[16, 32, 64, 128\]'):
        cc.check_dense_inputs('model.neck', [128, 256, 512, 1024], None, feats, out)
    cc.check_dense_inputs('model.auxiliary_head', 64, 2, feats, out)
    with pytest.raises(cc.ConfigConsistencyError, match=r'auxiliary_head\.in_channels=\[512\]'):
        cc.check_dense_inputs('model.auxiliary_head', 512, 2, feats, out)
