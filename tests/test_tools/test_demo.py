"""A shortened ``make demo``: tiny MixMAE, packaged photos, Runner, checkpoint, picture."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.subprocesses import run_python
from helpers.tools import load_tool, tool_path
from mmengine.config import Config
from PIL import Image

DEMO = tool_path('demo/run_demo.py')


@pytest.mark.slow
def test_short_demo_learns(tmp_path):
    work = tmp_path / 'demo'
    proc = run_python([DEMO, '--iters', '100', '--work-dir', work], timeout=900, threads=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((work / 'summary.json').read_text())
    # the norm-pix target has unit variance per cell: predicting zeros scores (n-1)/n ~ 1.0
    assert 0.995 < summary['zero_loss'] < 1.001
    # an untrained model is no better than that; the trained one is clearly better
    assert summary['loss_before'] > 0.98
    assert summary['final_loss'] < 0.8
    assert summary['final_loss'] < summary['loss_before'] - 0.2
    assert summary['final_train_loss'] < 0.85
    assert summary['success'] is True
    assert summary['images'] == 11 and summary['iters'] == 100
    # printed next to each other
    out = proc.stdout
    assert f'reconstruction loss, trained model:    {summary["final_loss"]:.4f}' in out
    assert f'loss of predicting zeros:              {summary["zero_loss"]:.4f}' in out
    # checkpoints, log with the Runner's ETA, picture
    assert (work / 'iter_100.pth').is_file() and (work / 'iter_50.pth').is_file()
    log = Path(summary['log_file']).read_text()
    assert 'eta:' in log and 'Iter(train) [100/100]' in log
    picture = np.asarray(Image.open(work / 'reconstruction.png').convert('RGB'))
    # 2 rows of 5 panels of 128 px upscaled 2x, with labels around them
    assert picture.shape[0] > 2 * 256 and picture.shape[1] > 5 * 256
    assert picture.std() > 20
    # the checkpoint loads into the config's model and reproduces the picture's loss
    assert summary['picture_zero_loss'] == pytest.approx(1.0, abs=0.01)
    assert summary['picture_loss'] < summary['picture_zero_loss']


@pytest.mark.slow
def test_demo_argument_errors(tmp_path):
    bad = run_python([DEMO, '--iters', '0'], timeout=300, threads=2)
    assert bad.returncode == 2
    assert 'run_demo.py: error: --iters must be at least 1, got 0' in bad.stderr
    assert 'Traceback' not in bad.stderr
    afile = tmp_path / 'a_file'
    afile.write_text('x')
    bad = run_python([DEMO, '--work-dir', afile], timeout=300, threads=2)
    assert bad.returncode == 2 and 'exists and is not a folder' in bad.stderr


def test_packaged_photos_are_on_disk_and_never_downloaded(monkeypatch):
    """The demo's images come from the installed wheels; nothing goes through pooch."""
    import socket

    from mmmixmae.datasets import ALL_PHOTOS, COLOR_PHOTOS, PackagedPhotos, packaged_photo_path

    def no_network(*args, **kwargs):
        raise AssertionError('network access attempted')

    monkeypatch.setattr(socket, 'create_connection', no_network)
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    import importlib.util
    package_dirs = [os.path.dirname(importlib.util.find_spec(p).origin)
                    for p in ('skimage', 'sklearn')]
    for name in ALL_PHOTOS:
        path = packaged_photo_path(name)
        assert os.path.isfile(path)
        assert any(path.startswith(d + os.sep) for d in package_dirs), path
    ds = PackagedPhotos(names=COLOR_PHOTOS, max_size=256)
    assert len(ds) == 11
    shapes = [ds.get_data_info(i)['img'].shape for i in range(len(ds))]
    assert all(max(s[:2]) == 256 and s[2] == 3 for s in shapes)
    # real photographs, not flat test patterns
    assert all(ds.get_data_info(i)['img'].std() > 20 for i in range(len(ds)))
    with pytest.raises(KeyError, match='unknown sample photo'):
        packaged_photo_path('lena')


def test_help_states_the_default_configs_iterations_and_batch(capsys):
    """``run_demo.py --help`` names the demo config's own schedule and batch size."""
    demo = load_tool('demo/run_demo')
    cfg = Config.fromfile(demo.DEFAULT_CONFIG)
    with pytest.raises(SystemExit):
        demo.parse_args(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert re.search(r"--iters ITERS training iterations \(default: the config's, (\d+)\)",
                     text).group(1) == str(cfg.train_cfg.max_iters)
    assert re.search(r"images per iteration \(default: the config's, (\d+)\)",
                     text).group(1) == str(cfg.train_dataloader.batch_size)
    assert 'cuda:N' in text
