"""Bad input fails at build or call time naming the layer, its type, or both numbers."""
import pytest
import torch


def build(cfg):
    from mmpretrain.registry import MODELS
    import mmmixmae  # noqa: F401
    return MODELS.build(dict(type='MixMAEAdapter', backbone=cfg))


TINY_CONVNEXT = dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32]))


def test_unknown_backbone_names_its_type():
    with pytest.raises(ValueError, match=r'mmpretrain\.models\.backbones\.resnet\.ResNet'):
        build(dict(type='ResNet', depth=18))


def test_grn_is_refused_naming_path_and_type():
    cfg = dict(TINY_CONVNEXT, use_grn=True, layer_scale_init_value=0.)
    with pytest.raises(ValueError, match=r'stages\.0\.0\.grn \(mmpretrain\.models\.utils\.norm\.GRN\)'):
        build(cfg)


def test_group_norm_is_refused():
    cfg = dict(TINY_CONVNEXT, norm_cfg=dict(type='GN', num_groups=1))
    with pytest.raises(ValueError, match=r'downsample_layers\.0\.1 \(torch\.nn\.modules\.'
                                         r'normalization\.GroupNorm\).*pools'):
        build(cfg)


def test_batch_norm_in_train_mode_is_refused_at_the_call():
    model = build(dict(TINY_CONVNEXT, norm_cfg=dict(type='BN')))
    assert model.batch_norm_layers[:1] == ['downsample_layers.0.1']
    model.train()
    with pytest.raises(ValueError, match=r'downsample_layers\.0\.1 \(torch\.nn\.modules\.'
                                         r'batchnorm\.BatchNorm2d\) in train mode'):
        model(torch.zeros(2, 3, 64, 64), torch.zeros(1, 1, 2, 2))


def test_activation_checkpointing_is_refused():
    with pytest.raises(ValueError, match=r'stages\.0\.0 .*with_cp'):
        build(dict(TINY_CONVNEXT, with_cp=True))


def test_overlapping_patch_merging_is_refused():
    cfg = dict(type='SwinTransformer', arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                                                 num_heads=[1, 1, 1, 1]),
               stage_cfgs=dict(downsample_cfg=dict(kernel_size=3, stride=2, padding=1)))
    with pytest.raises(ValueError, match=r'stages\.0\.downsample\.sampler .*overlapping unfold'):
        build(cfg)


def test_stage_stride_not_dividing_32_names_both_numbers():
    cfg = dict(type='SwinTransformer', arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                                                 num_heads=[1, 1, 1, 1]),
               patch_size=3, img_size=96, window_size=2)
    with pytest.raises(ValueError, match=r'stage 0 has stride 3, which does not divide the '
                                         r'32-pixel mixing grid'):
        build(cfg)


def test_last_stage_stride_must_be_32():
    with pytest.raises(ValueError, match=r'last stage has stride 16.*stride 32'):
        build(dict(TINY_CONVNEXT, stem_patch_size=2))


def test_input_not_multiple_of_32_names_both_numbers():
    model = build(TINY_CONVNEXT)
    with pytest.raises(ValueError, match=r'input height 80 is not a multiple of the 32-pixel'):
        model(torch.zeros(2, 3, 80, 64), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r'mask must have shape \(1, 1, 2, 2\).*\(1, 1, 3, 3\)'):
        model(torch.zeros(2, 3, 64, 64), torch.zeros(1, 1, 3, 3))


def test_unknown_layer_inside_a_known_backbone_is_refused():
    model_cfg = dict(type='SwinTransformer', arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                                                       num_heads=[1, 1, 1, 1]),
                     norm_cfg=dict(type='LN'),
                     stage_cfgs=dict(block_cfgs=dict(ffn_cfgs=dict(act_cfg=dict(type='Sigmoid')))))
    with pytest.raises(ValueError, match=r'stages\.0\.blocks\.0\.ffn\.layers\.0\.1 '
                                         r'\(torch\.nn\.modules\.activation\.Sigmoid\).*not known'):
        build(model_cfg)


def test_img_size_not_multiple_of_32_names_it():
    with pytest.raises(ValueError, match=r'img_size 100 is not a multiple of the 32-pixel'):
        from mmpretrain.registry import MODELS
        MODELS.build(dict(type='MixMAEAdapter', img_size=100, backbone=TINY_CONVNEXT))
