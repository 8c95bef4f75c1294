"""tools/analysis_tools/get_flops.py and mmmixmae.apis.complexity."""
from pathlib import Path

import pytest
import torch
from helpers.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIG = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'

CLASSIFIER_CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmmixmae'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MixMAESwin', arch='{arch}', img_size=224, window_size=(14, 14, 14, 7),
                  use_fused_attn={fused}),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=1000, in_channels={channels}))
"""



@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/get_flops')


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.slow
def test_base_classifier_matches_official_figures(tool, tmp_path, capsys):
    """MixMAE Swin-B/W14 at 224: 88.3M parameters and 16.3 GFLOPs (multiply-adds), the
    figures of the official README."""
    cfg = _write(tmp_path, 'base_cls.py',
                 CLASSIFIER_CONFIG.format(arch='base', fused=True, channels=1024))
    res = tool.main([cfg])
    out = capsys.readouterr().out
    assert res['kind'] == 'classifier'
    assert round(res['params'] / 1e6, 1) == 88.3
    assert abs(res['flops'] / 1e9 - 16.3) <= 0.3
    assert 'Params:      88.34M' in out and 'FLOPs:       16.35G' in out
    assert '3 x 224 x 224' in out


def test_fused_attention_is_counted(tmp_path):
    """The fused scaled_dot_product_attention and the reference matmul path give the same count,
    and the attention products are a real share of it (mmengine alone would skip them)."""
    from mmengine.analysis import FlopAnalyzer

    from mmmixmae.apis.common import build_model, load_tool_config
    from mmmixmae.apis.complexity import model_complexity
    arch = "dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])"
    totals = {}
    for fused in (True, False):
        text = CLASSIFIER_CONFIG.format(arch='X', fused=fused, channels=256).replace("'X'", arch)
        cfg = load_tool_config(_write(tmp_path, f'small_{fused}.py', text))
        totals[fused] = model_complexity(build_model(cfg), (224, 224))['flops']
    assert totals[True] == totals[False]
    # without our handle the fused attention would be missing: count it the bare mmengine way
    cfg = load_tool_config(_write(tmp_path, 'small_bare.py', CLASSIFIER_CONFIG.format(
        arch='X', fused=True, channels=256).replace("'X'", arch)))
    model = build_model(cfg)
    bare = FlopAnalyzer(model, (torch.randn(1, 3, 224, 224), ))
    bare.unsupported_ops_warnings(False)
    bare.uncalled_modules_warnings(False)
    # attention of stage 0: 56x56 tokens in 16 windows of 14x14, 1 head of 32 channels,
    # q@k^T and attn@v: 2 * 3136 * 196 * 32 multiply-adds
    stage0_attn = 2 * 3136 * 196 * 32
    assert totals[True] - bare.total() >= stage0_attn


def test_pretraining_config_counts_encoder_and_dual_decoder(tool, capsys):
    """Per image: the encoder on the mixed pair plus the dual decoder (2B sequences), / 2."""
    from mmmixmae.apis.common import build_model, load_tool_config
    from mmmixmae.apis.complexity import count_flops
    from mmmixmae.models.utils.mixing import random_mixing_mask
    # the dense attention path: the same matmul shapes as the plain encoder (the grouped
    # path, picked by attn_path='auto' in fp32, counts only the within-image attention)
    res = tool.main([str(TOY_CONFIG), '--cfg-options', 'model.backbone.attn_path=dense'])
    grouped = tool.main([str(TOY_CONFIG), '--cfg-options', 'model.backbone.attn_path=grouped'])
    assert grouped['flops'] < res['flops']
    out = capsys.readouterr().out
    assert res['kind'] == 'mixmae-pretrain'
    assert 'pretraining forward' in out
    model = build_model(load_tool_config(str(TOY_CONFIG)))
    assert res['params'] == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 64, 64)
    mask = random_mixing_mask((2, 2), 0.5)
    # the encoder with a mixing mask costs what the plain encoder costs (same matmul shapes)
    enc_dense, _ = count_flops(_Dense(model.backbone), (x, ))
    latent, _ = model.backbone(x, mask)
    dec, _ = count_flops(_Dec(model.neck, mask), (latent, ))
    # ... plus the nearest upsampling of the mask to the four stage grids (one per element)
    upsample = 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2
    assert res['flops'] * 2 == enc_dense + dec + upsample
    # decoder by hand: linear layers (embed on B*L, everything after on 2B*L tokens), attention
    # (2B sequences of L tokens), two LayerNorms per block + final norm (5 flops per element,
    # mmengine's norm rule counts 5 per element with affine)
    L, c_in, d, p = 4, 128, 32, 32 * 32 * 3
    b = 2
    lin = b * L * c_in * d + 2 * b * L * (3 * d * d + d * d + 8 * d * d + d * p)
    attn = 2 * b * (2 * L * L * d)
    norms = 3 * 2 * b * L * d * 5
    assert dec == lin + attn + norms


class _Dense(torch.nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


class _Dec(torch.nn.Module):

    def __init__(self, neck, mask):
        super().__init__()
        self.neck = neck
        self.mask = mask

    def forward(self, latent):
        return self.neck(latent, self.mask, dual=True)


def test_user_errors(tool, tmp_path, capsys):
    from mmmixmae.apis.common import run_tool

    def err(argv):
        with pytest.raises(SystemExit) as exc:
            run_tool(tool.main, prog='get_flops.py')(argv)
        assert exc.value.code == 2
        return capsys.readouterr().err

    assert 'config file not found: nope.py' in err(['nope.py'])
    no_model = _write(tmp_path, 'no_model.py', "default_scope = 'mmpretrain'\nx = 1\n")
    assert 'defines no "model"' in err([no_model])
    assert '--shape takes H W or a single S' in err([str(TOY_CONFIG), '--shape', '1', '2', '3'])
    # 80 px is not a multiple of the 32-px mixing cell
    assert 'multiples of 32' in err([str(TOY_CONFIG), '--shape', '80'])


def test_dense_configs_count_heads_at_their_input_size(tool, capsys):
    """mmseg: default shape = the config's crop_size, decode heads counted on top of the
    encoder; mmdet: the RPN and RoI heads on top of backbone + FPN."""
    from mmmixmae.apis.common import build_model, load_tool_config
    from mmmixmae.apis.complexity import count_flops
    seg_cfg = REPO / 'configs' / 'upernet' / 'upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py'
    res = tool.main([str(seg_cfg)])
    assert res['kind'] == 'segmentor' and res['shape'] == (256, 256)
    seg = build_model(load_tool_config(str(seg_cfg)))
    backbone, _ = count_flops(_Dense(seg.backbone), (torch.randn(1, 3, 256, 256), ))
    assert res['flops'] > 2 * backbone  # UperNet's 3x3 convolutions dominate
    assert res['params'] == sum(p.numel() for p in seg.parameters())
    det_cfg = REPO / 'configs' / 'mask_rcnn' / 'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py'
    res = tool.main([str(det_cfg), '--shape', '256', '320'])
    assert res['kind'] == 'detector' and res['shape'] == (256, 320)
    det = build_model(load_tool_config(str(det_cfg)))
    feats, _ = count_flops(_Dense(torch.nn.Sequential(det.backbone, det.neck)),
                           (torch.randn(1, 3, 256, 320), ))
    assert res['flops'] > feats
    assert 'backbone + neck + RPN + RoI heads' in capsys.readouterr().out
