"""A MixMAEAdapter checkpoint initialises mmseg's UperNet with the plain ConvNeXt, unconverted."""
import os.path as osp
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SEG_CFG = REPO / 'configs' / 'upernet' / 'upernet_mixmae-convnext-demo_1xb2-cpu_ade3-256x256.py'
PRE_CFG = REPO / 'configs' / 'mixmae' / 'mixmae_convnext-demo_1xb16-600it_photos_cpu.py'


@pytest.mark.slow
def test_upernet_convnext_loads_adapter_checkpoint(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import save_checkpoint
    from mmpretrain.registry import MODELS as PRE_MODELS

    import mmmixmae  # noqa: F401
    import mmmixmae.seg  # noqa: F401
    from mmseg.registry import MODELS as SEG_MODELS
    pre = Config.fromfile(str(PRE_CFG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        mixmae = PRE_MODELS.build(pre.model)
    mixmae.init_weights()
    with torch.no_grad():  # move away from any fresh initialisation
        for p in mixmae.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = tmp_path / 'mixmae_convnext.pth'
    save_checkpoint({'state_dict': mixmae.state_dict(), 'meta': {}}, str(ckpt))

    cfg = Config.fromfile(str(SEG_CFG))
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = SEG_MODELS.build(cfg.model)
    seg.init_weights()
    from mmpretrain.models import ConvNeXt
    assert type(seg.backbone) is ConvNeXt
    theirs = mixmae.backbone.state_dict()
    ours = seg.backbone.state_dict()
    fresh = sorted(set(ours) - set(theirs))
    assert fresh == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    seg.eval()
    with torch.no_grad():
        out = seg.backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in out] == [32, 64, 128, 256]
    assert osp.isfile(ckpt)
