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
    'mixmae_svt-demo_1xb16-600it_photos_cpu.py': ('SVT', 256),
}
METAFILE = REPO / 'configs' / 'mixmae' / 'metafile.yml'


def metafile_models() -> dict:
    import yaml
    models = yaml.safe_load(METAFILE.read_text())['Models']
    return {m['Name']: m for m in models}


def skip_random_init(monkeypatch) -> None:
    """Only shapes are checked of the base-size models: their random initialisation is most
    of their build time on 2 CPU cores (as in tests/test_configs/test_consistency.py)."""
    import torch
    for fn in ('xavier_uniform_', 'trunc_normal_', 'normal_', 'uniform_', 'kaiming_normal_',
               'kaiming_uniform_', 'constant_'):
        monkeypatch.setattr(torch.nn.init, fn, lambda tensor, *a, **k: tensor)


@pytest.mark.parametrize('name', [
    # building a base-size model (encoder + decoder) takes a few seconds even without init
    pytest.param(n, marks=pytest.mark.slow) if 'demo' not in n else n for n in CONFIGS])
def test_adapter_config_builds_with_matching_decoder(name, monkeypatch):
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
    entry = metafile_models()[name[:-len('.py')]]
    if 'demo' not in name:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.train_cfg.max_epochs == 300
        skip_random_init(monkeypatch)
    model = MODELS.build(cfg.model)
    # the metafile's parameter count is this model's (encoder + decoder)
    assert entry['Metadata']['Parameters'] == sum(p.numel() for p in model.parameters())
    assert type(model.backbone.upstream).__name__ == kind
    assert model.backbone.num_features[-1] == channels
    assert model.backbone.stage_strides == [4, 8, 16, 32]
    assert model.neck.decoder_embed.in_features == channels and model.head.patch_size == 32
    if 'demo' not in name:
        return  # no forward of the uninitialised base-size models
    size = cfg.model.backbone.img_size
    x = torch.randn(2, 3, size, size)
    torch.manual_seed(0)
    loss = model.loss(x)['loss']
    # an untrained model on noise: about the zeros baseline of the norm-pix target
    assert 0.9 < loss.item() < 1.5


def test_every_adapter_config_is_in_the_metafile():
    models = metafile_models()
    for name, (kind, _) in CONFIGS.items():
        entry = models[name[:-len('.py')]]
        assert entry['Config'] == f'configs/mixmae/{name}'
        assert (REPO / entry['Config']).is_file()
        meta = entry['Metadata']
        assert meta['Parameters'] > 0 and meta['FLOPs'] > 0, name
        if 'demo' in name:
            assert meta['Iterations'] == 600 and meta['Batch Size'] == 16
        else:
            assert meta['Epochs'] == 300 and meta['Batch Size'] == 2048
            assert entry['Results'] is None  # nothing trained on ImageNet here
