"""The adapter configs: naming, decoder sized from the backbone, upstream type kept."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONFIGS = {
    'mixmae_swin-base-w7_16xb128-amp-coslr-300e_in1k.py': ('SwinTransformer', 1024),
    'mixmae_convnext-base_16xb128-amp-coslr-300e_in1k.py': ('ConvNeXt', 1024),
    'mixmae_pcpvt-base_16xb128-amp-coslr-300e_in1k.py': ('PCPVT', 512),
    'mixmae_swin-demo-w4_1xb16-600it_photos_cpu.py': ('SwinTransformer', 256),
    'mixmae_convnext-demo_1xb16-600it_photos_cpu.py': ('ConvNeXt', 256),
    'mixmae_pcpvt-demo_1xb16-600it_photos_cpu.py': ('PCPVT', 256),
}


@pytest.mark.parametrize('name', [
    # building a base-size model takes 10-45 s on 2 shared cores
    pytest.param(n, marks=pytest.mark.slow) if 'demo' not in n else n for n in CONFIGS])
def test_adapter_config_builds_with_matching_decoder(name):
    import torch
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import mmmixmae  # noqa: F401
    cfg = Config.fromfile(str(REPO / 'configs' / 'mixmae' / name))
    kind, channels = CONFIGS[name]
    assert cfg.model.backbone.type == 'MixMAEAdapter'
    assert cfg.model.backbone.backbone.type == f'mmpretrain.{kind}'
    # the decoder width and the head's patch size are derived from the backbone by MixMAE:
    # a config may state them only if they agree
    assert cfg.model.neck.get('in_channels', channels) == channels
    assert cfg.model.head.get('patch_size', 32) == 32
    if 'demo' not in name:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.train_cfg.max_epochs == 300
        adapter = MODELS.build(cfg.model.backbone)
        assert type(adapter.upstream).__name__ == kind
        assert adapter.num_features[-1] == channels and adapter.stage_strides == [4, 8, 16, 32]
        return
    model = MODELS.build(cfg.model)
    assert model.backbone.num_features[-1] == channels
    assert model.neck.decoder_embed.in_features == channels and model.head.patch_size == 32
    size = cfg.model.backbone.img_size
    x = torch.randn(2, 3, size, size)
    torch.manual_seed(0)
    loss = model.loss(x)['loss']
    # an untrained model on noise: about the zeros baseline of the norm-pix target
    assert 0.9 < loss.item() < 1.5
