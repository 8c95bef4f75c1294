"""tools/visualization/visualize_reconstruction.py and mmmixmae.apis.reconstruction."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers.subprocesses import run_python
from helpers.tools import load_tool, tool_path
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TOOL = tool_path('visualization/visualize_reconstruction.py')
TOY_CONFIG = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'



@pytest.fixture(scope='module')
def tool():
    return load_tool('visualization/visualize_reconstruction')


@pytest.fixture(scope='module')
def photos():
    from mmmixmae.datasets import packaged_photo_path
    return packaged_photo_path('astronaut'), packaged_photo_path('china')


def test_grid_written_with_expected_panels(tool, toy_checkpoint, photos, tmp_path):
    from mmmixmae.apis.common import read_rgb, resize_center_crop
    out = tmp_path / 'rec.png'
    result, grid, boxes = tool.visualize(str(TOY_CONFIG), str(toy_checkpoint), photos[0],
                                         photos[1], str(out), seed=3, scale=3)
    assert out.is_file()
    saved = np.asarray(Image.open(out).convert('RGB'))
    assert saved.shape == grid.shape
    np.testing.assert_array_equal(saved, grid)  # PNG is lossless

    # the toy model works on 64 px images: 2 x 2 cells of 32 px, 2 of them mixed
    assert result.mask.shape == (2, 2) and int(result.mask.sum()) == 2
    originals = [resize_center_crop(read_rgb(p), (64, 64)) for p in photos]
    vis = np.kron(1 - result.mask, np.ones((32, 32), np.uint8)).astype(bool)
    assert vis.sum() == 2 * 32 * 32
    for i in range(2):
        panels = result.panels[i]
        for key in ('original', 'mask', 'mixed', 'reconstruction', 'pasted'):
            assert panels[key].shape == (64, 64, 3) and panels[key].dtype == np.uint8
            x0, y0, x1, y1 = boxes[(i, key)]
            assert (x1 - x0, y1 - y0) == (192, 192)
            # the saved picture holds the panel, upscaled 3x by repetition
            crop = saved[y0:y1, x0:x1]
            np.testing.assert_array_equal(crop[::3, ::3], panels[key])
        np.testing.assert_array_equal(panels['original'], originals[i])
        # mixed input: own pixels at visible cells, the partner's elsewhere
        np.testing.assert_array_equal(panels['mixed'][vis], originals[i][vis])
        np.testing.assert_array_equal(panels['mixed'][~vis], originals[1 - i][~vis])
        # pasted version: exactly the input at visible cells, the reconstruction elsewhere
        np.testing.assert_array_equal(panels['pasted'][vis], originals[i][vis])
        np.testing.assert_array_equal(panels['pasted'][~vis], panels['reconstruction'][~vis])
        x0, y0, x1, y1 = boxes[(i, 'pasted')]
        from_png = saved[y0:y1, x0:x1][::3, ::3].astype(int)
        assert np.abs(from_png[vis] - originals[i][vis].astype(int)).max() <= 1
        # the random-weight model does not reproduce the hidden cells
        assert np.abs(panels['reconstruction'][~vis].astype(int) -
                      originals[i][~vis].astype(int)).mean() > 10
    # the mask panel: light where visible, dark where mixed (away from the grid lines)
    mask_panel = result.panels[0]['mask']
    for cy in range(2):
        for cx in range(2):
            value = mask_panel[cy * 32 + 16, cx * 32 + 16, 0]
            assert value == (40 if result.mask[cy, cx] else 235)
    # a random model is no better than predicting zeros (about 1.0)
    assert 0.99 < result.zero_loss < 1.0
    assert result.loss > 0.9


class _StubBackbone(nn.Module):
    encoder_stride = 32
    fill_mode = 'mix'

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.img_size = (64, 64)

    def check_pretrain_input(self, x, mask=None):
        pass

    def forward(self, x, mask):
        self.seen = x
        return x, mask


class _OracleNeck(nn.Module):
    """Predicts exactly the norm-pix target, in the dual layout of MixMAEDecoder."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, x, mask, dual=True):
        target = self.head.construct_target(x)
        return torch.cat([target, target.flip(0)])


class _OracleModel(nn.Module):
    """Has MixMAE's mask sampling and pretraining forward, with an oracle decoder."""
    from mmmixmae.models.selfsup.mixmae import MixMAE
    mask_ratio = 0.5
    range_mask_ratio = 0.0
    dual = True
    sample_mask = MixMAE.sample_mask
    forward_pretrain = MixMAE.forward_pretrain
    del MixMAE

    def __init__(self):
        super().__init__()
        from mmmixmae.models.heads.mixmae_head import MixMAEPretrainHead
        self.backbone = _StubBackbone()
        self.head = MixMAEPretrainHead(patch_size=32)
        self.neck = _OracleNeck(self.head)


def test_unnormalization_recovers_pixels_from_perfect_predictions(photos):
    """With predictions equal to the target, 'target' statistics give back the input; 'visible'
    statistics give back the visible cells exactly and estimate the hidden ones."""
    from mmmixmae.apis.common import read_rgb, resize_center_crop
    from mmmixmae.apis.reconstruction import reconstruct_pair
    imgs = [resize_center_crop(read_rgb(p), (64, 64)) for p in photos]
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    model = _OracleModel()
    res = reconstruct_pair(model, imgs, mean, std, mask=mask, stats='target')
    assert res.loss == pytest.approx(0.0, abs=1e-8)
    for i in range(2):
        diff = np.abs(res.panels[i]['reconstruction'].astype(int) - imgs[i].astype(int))
        assert diff.max() <= 1
    res_v = reconstruct_pair(model, imgs, mean, std, mask=mask, stats='visible')
    vis = np.kron(1 - mask[0, 0].numpy(), np.ones((32, 32))).astype(bool)
    for i in range(2):
        rec = res_v.panels[i]['reconstruction'].astype(int)
        assert np.abs(rec[vis] - imgs[i][vis].astype(int)).max() <= 1
        # hidden cells: right structure, estimated brightness/contrast -> not the input
        assert np.abs(rec[~vis] - imgs[i][~vis].astype(int)).mean() > 1.0


def test_visible_statistics_weights():
    from mmmixmae.apis.reconstruction import visible_statistics
    mu = torch.tensor([1.0, 2.0, 3.0, 4.0])
    sigma = torch.tensor([0.5, 1.0, 1.5, 2.0])
    visible = torch.tensor([True, False, False, True])  # 2 x 2: (0,0) and (1,1) visible
    m, s = visible_statistics(mu, sigma, visible, (2, 2))
    # hidden (0,1) and (1,0) are at distance 1 from both visible cells: plain average
    assert m.tolist() == pytest.approx([1.0, 2.5, 2.5, 4.0])
    assert s.tolist() == pytest.approx([0.5, 1.25, 1.25, 2.0])
    # 1 x 3 row, only the left cell hidden: weights 1/1 and 1/4 for the cells at distance 1, 2
    m, _ = visible_statistics(torch.tensor([0.0, 1.0, 6.0]), torch.ones(3),
                              torch.tensor([False, True, True]), (1, 3))
    assert m[0].item() == pytest.approx((1.0 * 1 + 6.0 * 0.25) / 1.25)


def _expect_error(tool, argv, capsys, *fragments):
    from mmmixmae.apis.common import run_tool
    with pytest.raises(SystemExit) as exc:
        run_tool(tool.main, prog='visualize_reconstruction.py')(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('visualize_reconstruction.py: error: ')
    for f in fragments:
        assert f in err, err
    return err


def test_user_errors(tool, toy_checkpoint, photos, tmp_path, capsys):
    out = str(tmp_path / 'x.png')
    _expect_error(tool, ['missing.py', str(toy_checkpoint), *photos, '--out', out], capsys,
                  'config file not found: missing.py')
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n not really a picture')
    _expect_error(tool, [str(TOY_CONFIG), str(toy_checkpoint), photos[0], str(broken), '--out',
                         out], capsys, 'cannot decode image', 'broken.png')
    # a checkpoint with the encoder only (e.g. a fine-tuned classifier's) has no decoder
    sd = torch.load(toy_checkpoint, weights_only=True)['state_dict']
    enc = tmp_path / 'encoder_only.pth'
    torch.save({'state_dict': {k: v for k, v in sd.items() if k.startswith('backbone.')}}, enc)
    _expect_error(tool, [str(TOY_CONFIG), str(enc), *photos, '--out', out], capsys,
                  'has no "neck.*" weights')
    # weights of another architecture
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': {'backbone.foo': torch.zeros(1), 'neck.bar': torch.zeros(1)}},
               wrong)
    _expect_error(tool, [str(TOY_CONFIG), str(wrong), *photos, '--out', out], capsys,
                  'does not match', 'backbone.')
    _expect_error(tool, [str(TOY_CONFIG), str(toy_checkpoint), *photos, '--out', out,
                         '--mask-ratio', '1.5'], capsys, '--mask-ratio')
    _expect_error(tool, [str(TOY_CONFIG), str(toy_checkpoint), *photos, '--out',
                         str(tmp_path / 'x.gif')], capsys, '--out must end with')
    assert not os.path.exists(out)


@pytest.mark.slow
def test_cli_subprocess_no_traceback(toy_checkpoint, photos, tmp_path):
    out = tmp_path / 'cli.png'
    ok = run_python([TOOL, TOY_CONFIG, toy_checkpoint, *photos, '--out', out, '--stats',
                     'target'], timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and 'reconstruction loss' in ok.stdout
    bad = run_python([TOOL, TOY_CONFIG, tmp_path / 'none.pth', *photos, '--out', out],
                     timeout=300)
    assert bad.returncode == 2
    assert 'Traceback' not in bad.stderr
    assert 'checkpoint file not found' in bad.stderr
