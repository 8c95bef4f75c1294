"""MixMAE takes the decoder's and head's sizes from its backbone; MixMAESwin refuses shifted
windows with a pretraining mask."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401

from helpers.archs import TOY_FLAT as TINY


def mixmae(neck=None, head=None, **backbone):
    bb = dict(type='MixMAESwin', arch=TINY, img_size=64, window_size=(4, 4, 2, 2))
    bb.update(backbone)
    return MODELS.build(dict(
        type='MixMAE', backbone=bb,
        neck=dict(type='MixMAEDecoder', embed_dims=16, depth=1, num_heads=2, **(neck or {})),
        head=dict(type='MixMAEPretrainHead', **(head or {}))))


def test_sizes_are_derived():
    model = mixmae()
    assert model.neck.decoder_embed.in_features == 128  # 16 x 8
    assert model.neck.grid == (2, 2)  # 64 / 32
    assert model.neck.decoder_pred.out_features == 32 * 32 * 3
    assert model.head.patch_size == 32
    wide = mixmae(img_size=96, window_size=(8, 4, 2, 1))
    assert wide.neck.grid == (3, 3)
    loss = model.loss(torch.randn(2, 3, 64, 64))['loss']
    assert torch.isfinite(loss) and loss.item() > 0.1


def test_agreeing_stated_values_build():
    model = mixmae(neck=dict(in_channels=128, img_size=64, encoder_stride=32),
                   head=dict(patch_size=32))
    assert model.neck.decoder_embed.in_features == 128


@pytest.mark.parametrize('neck,head,message', [
    (dict(in_channels=1024), None,
     r'neck\.in_channels=1024 disagrees with backbone\.num_features\[-1\] '
     r'\(last-stage width\)=128'),
    (dict(img_size=224), None, r'neck\.img_size=224 disagrees with backbone\.img_size=\(64, 64\)'),
    (dict(encoder_stride=16), None,
     r'neck\.encoder_stride=16 disagrees with backbone\.encoder_stride=32'),
    (None, dict(patch_size=16), r'head\.patch_size=16 disagrees with backbone\.encoder_stride=32'),
])
def test_disagreeing_values_name_both(neck, head, message):
    with pytest.raises(ValueError, match=message):
        mixmae(neck=neck, head=head)


def test_shift_window_refused_for_pretraining():
    with pytest.raises(ValueError, match=r'shift_window=True cannot be pretrained'):
        mixmae(shift_window=True)
    backbone = MODELS.build(dict(type='MixMAESwin', arch=TINY, img_size=64,
                                 window_size=(4, 4, 2, 2), shift_window=True))
    x = torch.randn(2, 3, 64, 64)
    assert backbone(x)[0].shape == (2, 128)  # dense / classification use is fine
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    with pytest.raises(ValueError, match=r'shift_window=True cannot take a pretraining mask'):
        backbone(x, mask)
