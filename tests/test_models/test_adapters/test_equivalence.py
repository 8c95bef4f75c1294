"""The adapter is the upstream backbone: same outputs, same keys, same checkpoint."""
import torch

from mmmixmae.checkpoint.io import load_checkpoint_safely


def test_no_mask_equals_upstream(kit, tiny_name):
    size = kit.TINY[tiny_name][1]
    model = kit.build_adapter(tiny_name).eval()
    upstream = kit.build_upstream(tiny_name)
    upstream.eval()  # mmpretrain backbones return None from train()
    upstream.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ours, ref = model(x), upstream(x)
    assert len(ours) == len(ref) == 4
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() == 0.0


def test_all_own_mask_matches_upstream_last_stage(kit, tiny_name):
    """With nothing mixed (mask all 0) the isolated paths compute the upstream function."""
    size = kit.TINY[tiny_name][1]
    model = kit.build_adapter(tiny_name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        latent, _ = model(x, torch.zeros(1, 1, size // 32, size // 32))
        ref = model(x)[-1].flatten(2).transpose(1, 2)
    assert latent.shape == (2, (size // 32)**2, model.num_features[-1])
    torch.testing.assert_close(latent, ref, rtol=1e-5, atol=1e-5)


def test_state_dict_keys_are_upstream_keys(kit, tiny_name):
    model = kit.build_adapter(tiny_name)
    upstream = kit.build_upstream(tiny_name)
    assert list(model.state_dict()) == list(upstream.state_dict())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in upstream.named_parameters()]


def test_mixmae_checkpoint_loads_strictly_into_upstream(kit, tiny_name, tmp_path):
    from mmengine.runner import save_checkpoint
    from mmpretrain.registry import MODELS
    size = kit.TINY[tiny_name][1]
    adapter_cfg = dict(type='MixMAEAdapter', img_size=size, backbone=kit.TINY[tiny_name][0])
    torch.manual_seed(0)
    probe = MODELS.build(adapter_cfg)
    model = MODELS.build(dict(
        type='MixMAE', backbone=adapter_cfg,
        neck=dict(type='MixMAEDecoder', in_channels=probe.num_features[-1], embed_dims=32,
                  depth=1, num_heads=2, img_size=size),
        head=dict(type='MixMAEPretrainHead', patch_size=32)))
    model.init_weights()
    # one optimizer step so the weights differ from any fresh build
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, size, size)
    loss = model.loss(x, mask=kit.fixed_mask(size))['loss']
    assert torch.isfinite(loss) and loss.item() > 0.1
    loss.backward()
    opt.step()
    path = tmp_path / 'mixmae.pth'
    save_checkpoint({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    upstream = kit.build_upstream(tiny_name)
    ckpt = load_checkpoint_safely(str(path))['state_dict']
    backbone_sd = {k[len('backbone.'):]: v for k, v in ckpt.items() if k.startswith('backbone.')}
    result = upstream.load_state_dict(backbone_sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in upstream.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key
    upstream.eval()
    model.eval()
    with torch.no_grad():
        for a, b in zip(upstream(x), model.backbone(x)):
            assert (a - b).abs().max().item() == 0.0


def test_adapter_moves_with_its_upstream(kit):
    model = kit.build_adapter('convnext')
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.upstream.parameters())
    assert all(p.dtype == torch.float64 for p in model.upstream.buffers())
    model.eval()
    assert not model.upstream.training
    model.train()
    assert model.upstream.training and model.upstream.stages[0].training


def test_project_loader_initialises_an_adapter(kit, tmp_path):
    """``init_cfg=Pretrained`` / the k-NN tool load into the adapter itself through
    ``load_pretrained_backbone``, which asks the backbone to ``adapt_state_dict``; Swin's
    ``relative_position_index`` buffers, which that loader drops, come back unchanged."""
    from mmmixmae.checkpoint.pretrained import load_pretrained_backbone
    for name in ('swin-w7', 'convnext'):
        source = kit.build_adapter(name)
        with torch.no_grad():
            for p in source.parameters():
                p.add_(0.5)  # away from any fresh initialisation
        path = tmp_path / f'{name}.pth'
        torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                                   source.state_dict().items()}}, path)
        target = kit.build_adapter(name)
        load_pretrained_backbone(target, dict(type='Pretrained', checkpoint=str(path),
                                              prefix='backbone.'))
        ours, theirs = target.state_dict(), source.state_dict()
        assert sorted(ours) == sorted(theirs)
        for key, value in theirs.items():
            assert torch.equal(ours[key], value), key
