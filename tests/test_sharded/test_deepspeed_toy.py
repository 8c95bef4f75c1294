"""The shipped CPU DeepSpeed toy config (configs/mixmae/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu.py)
through tools/dist_train.sh on 2 gloo ranks, ZeRO-2 and ZeRO-3, against a one-process run of
the same 4 images per step; one full file from a ZeRO checkpoint, loaded strictly into the
plain backbone; a bit-identical resume; broken folders refused naming the file.

Same data on both sides: 4 synthetic 64 px images, no random augmentation, no shuffling, the
same seed on every rank (``diff_rank_seed=False``).  The 2-rank run gives rank 0 images 0 and
2, rank 1 images 1 and 3; MixMAE mixes image i with image B-1-i of its own batch, so the
one-process run reads them as a, b, d, c (pairs a-c and b-d on both sides).  The one-process
run is a FlexibleRunner with mmengine's SingleDeviceStrategy: it builds the model at the same
point as DeepSpeedStrategy, so both start from the same weights and draw the same masks.
"""
import json
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from _sharded_env import HERE, REPO, free_port, load_tool, require_deepspeed, sub_env

require_deepspeed()

DS_CONFIG = osp.join(REPO, 'configs/mixmae/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu.py')
ONE_CONFIG = osp.join(REPO, 'configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py')
#: measured: 1.2e-7 (float32 sums over 2 ranks vs 1 process)
LOSS_RTOL = 1e-6
#: measured: 8e-6 after 8 AdamW steps; AdamW moves an element by up to lr = 1e-3 per step, so
#: this is 1/20 of one step
WEIGHT_ATOL = 5e-5

_DATA = '''
custom_imports = dict(imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms',
                               'loss_recorder'], allow_failed_imports=False)
_pipeline = [dict(type='LoadImageRobust', on_error='raise'),
             dict(type='Resize', scale=(64, 64), backend='pillow'), dict(type='PackInputs')]
train_dataloader = dict(sampler=dict(shuffle=False), dataset=dict(
    data_root={root!r}, ann_file={ann!r}, pipeline=_pipeline))
randomness = dict(diff_rank_seed=False)
custom_hooks = [dict(type='ExactResumeHook'), dict(type='RecordLossHook')]
'''
_ONE_PROCESS = '''
runner_type = 'FlexibleRunner'
strategy = dict(type='SingleDeviceStrategy')
param_scheduler = {schedule!r}
train_cfg = dict(max_iters=8)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=4))
'''


def _write_inputs(root) -> dict:
    """4 images and the two derived configs; returns the config paths."""
    from mmengine.config import Config
    from PIL import Image
    images = root / 'images'
    images.mkdir()
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:64, 0:64]
    for i, name in enumerate('abcd'):
        base = np.stack([(xx * (i + 1) * 3) % 256, (yy * (4 - i) * 2) % 256,
                         ((xx + yy) * (i + 2)) % 256], -1)
        pixels = np.clip(base + rng.randint(-40, 40, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f'{name}.png')
    (root / 'two_ranks.txt').write_text('a.png\nb.png\nc.png\nd.png\n')
    (root / 'one_process.txt').write_text('a.png\nb.png\nd.png\nc.png\n')
    schedule = Config.fromfile(DS_CONFIG).param_scheduler
    ds = root / 'ds.py'
    ds.write_text(f'_base_ = {DS_CONFIG!r}\n' + _DATA.format(
        root=str(images), ann=str(root / 'two_ranks.txt')))
    one = root / 'one.py'
    one.write_text(f'_base_ = {ONE_CONFIG!r}\n' + _DATA.format(
        root=str(images), ann=str(root / 'one_process.txt'))
        + _ONE_PROCESS.format(schedule=[dict(s) for s in schedule]))
    return dict(ds=str(ds), one=str(one))


def _env():
    env = sub_env()
    env['PYTHONPATH'] = env['PYTHONPATH'] + ':' + HERE  # loss_recorder
    env['PORT'] = str(free_port())
    env['PYTHON'] = sys.executable
    return env


def dist_train(config: str, work_dir, *extra: str, nproc: int = 2, timeout: int = 600):
    return subprocess.run(['bash', 'tools/dist_train.sh', config, str(nproc), '--work-dir',
                           str(work_dir), *extra], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def losses(work_dir, rank: int = 0) -> list:
    return json.loads((work_dir / f'losses_rank{rank}.json').read_text())


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """ZeRO-2 and ZeRO-3 8 iterations on 2 ranks (iter_4.pth/, iter_8.pth/), the one-process
    run (iter_4.pth, iter_8.pth files) and ZeRO-2 resumed from iter_4.pth/."""
    root = tmp_path_factory.mktemp('deepspeed')
    configs = _write_inputs(root)
    _ok(dist_train(configs['ds'], root / 'zero2'))
    _ok(dist_train(configs['ds'], root / 'zero3', '--cfg-options',
                   'strategy.zero_optimization.stage=3'))
    _ok(subprocess.run([sys.executable, 'tools/train.py', configs['one'], '--work-dir',
                        str(root / 'one')], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=600))
    _ok(dist_train(configs['ds'], root / 'resumed', '--resume',
                   str(root / 'zero2' / 'iter_4.pth')))
    return root


@pytest.mark.slow
@pytest.mark.parametrize('zero', ['zero2', 'zero3'])
def test_two_ranks_equal_one_process(runs, zero):
    from mmmixmae.checkpoint import read_checkpoint
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed
    one = losses(runs / 'one')
    two = [(a[1] + b[1]) / 2 for a, b in zip(losses(runs / zero, 0), losses(runs / zero, 1))]
    assert [i for i, _ in one] == list(range(1, 9)) and len(two) == 8
    assert max(abs(a - b[1]) / b[1] for a, b in zip(two, one)) < LOSS_RTOL
    assert one[-1][1] < one[0][1] - 0.05  # it learned
    for it in (4, 8):
        ours, meta = consolidate_deepspeed(str(runs / zero / f'iter_{it}.pth'))
        ref = read_checkpoint(str(runs / 'one' / f'iter_{it}.pth'))['state_dict']
        assert meta['consolidated_from']['zero_stage'] == int(zero[-1])
        assert meta['iter'] == it and list(ours) == list(ref)
        assert all(ours[k].dtype == ref[k].dtype == torch.float32 for k in ref)
        assert max((ours[k] - ref[k]).abs().max().item() for k in ref) < WEIGHT_ATOL


@pytest.mark.slow
def test_zero2_float32_master_equals_module_copy(runs):
    """In a float32 run the ZeRO-2 module copy holds the same weights as the master copy the
    consolidation reads, bit for bit."""
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed, read_deepspeed_file
    full, _ = consolidate_deepspeed(str(runs / 'zero2' / 'iter_8.pth'))
    module = read_deepspeed_file(str(runs / 'zero2' / 'iter_8.pth' /
                                     'mp_rank_00_model_states.pt'))['module']
    assert list(full) == list(module) and len(full) == 88
    assert [k for k in module if not torch.equal(full[k], module[k])] == []
    assert sum(v.numel() for v in full.values()) == 431945


@pytest.mark.slow
@pytest.mark.parametrize('zero', ['zero2', 'zero3'])
def test_full_file_loads_strictly_into_plain_backbone(runs, zero, tmp_path, capsys):
    from helpers.archs import TOY_FLAT
    from mmmixmae.checkpoint import CheckpointMismatchError, load_pretrained_backbone
    from mmmixmae.models import MixMAESwin
    tool = load_tool('model_converters/deepspeed_to_full.py')
    dst = tmp_path / 'full.pth'
    assert tool.main([str(runs / zero / 'iter_8.pth'), str(dst)]) == 0
    assert f'ZeRO-{zero[-1]}, 2 ranks' in capsys.readouterr().out
    saved = torch.load(dst, weights_only=True)
    assert set(saved) == {'meta', 'state_dict'}
    backbone = MixMAESwin(arch=dict(TOY_FLAT), img_size=64, window_size=(4, 4, 2, 2))
    report = load_pretrained_backbone(backbone, dict(type='Pretrained', checkpoint=str(dst),
                                                     prefix='backbone.'))
    assert report.newly_initialized == [] and len(report.loaded) == 68
    state = backbone.state_dict()
    assert all(torch.equal(state[k], saved['state_dict']['backbone.' + k])
               for k in report.loaded)
    with pytest.raises(CheckpointMismatchError, match='shape'):
        wide = MixMAESwin(arch=dict(TOY_FLAT, embed_dims=32), img_size=64,
                          window_size=(4, 4, 2, 2))
        load_pretrained_backbone(wide, dict(type='Pretrained', checkpoint=str(dst),
                                            prefix='backbone.'))


@pytest.mark.slow
def test_resume_is_bit_identical(runs):
    """iterations 5-8 after a resume from iter_4.pth/ equal the uninterrupted run: weights,
    every rank's AdamW state and the losses (ExactResumeHook's RNG state reaches the
    checkpoint through the callback mmmixmae.compat.deepspeed_strategy restores)."""
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed, read_deepspeed_file
    assert losses(runs / 'resumed') == losses(runs / 'zero2')[4:]
    a, _ = consolidate_deepspeed(str(runs / 'zero2' / 'iter_8.pth'))
    b, _ = consolidate_deepspeed(str(runs / 'resumed' / 'iter_8.pth'))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    for rank in (0, 1):
        name = f'zero_pp_rank_{rank}_mp_rank_00_optim_states.pt'
        x, y = (read_deepspeed_file(str(runs / w / 'iter_8.pth' / name))
                ['optimizer_state_dict']['base_optimizer_state']['state']
                for w in ('zero2', 'resumed'))
        assert len(x) == 86 and list(x) == list(y)
        assert [(i, k) for i in x for k in x[i] if not torch.equal(x[i][k], y[i][k])] == []
    meta = read_deepspeed_file(str(runs / 'zero2' / 'iter_4.pth' / 'mp_rank_00_model_states.pt'))
    assert len(meta['rng_state']) == 2  # both ranks' generators


@pytest.mark.slow
def test_broken_folders_are_refused(runs, tmp_path, capsys):
    from mmmixmae.checkpoint.deepspeed_zero import consolidate_deepspeed
    from mmmixmae.checkpoint.errors import InvalidCheckpointError
    tool = load_tool('model_converters/deepspeed_to_full.py')
    broken = tmp_path / 'iter_8.pth'
    shutil.copytree(runs / 'zero3' / 'iter_8.pth', broken)
    (broken / 'bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt').unlink(missing_ok=True)
    (broken / 'zero_pp_rank_1_mp_rank_00_optim_states.pt').unlink(missing_ok=True)
    with pytest.raises(InvalidCheckpointError,
                       match=r'written by 2 ranks .* optimizer-state files are for ranks '
                             r'\[0\]: rank\(s\) \[1\] missing'):
        consolidate_deepspeed(str(broken))
    assert tool.main([str(broken), str(tmp_path / 'x.pth')]) == 2
    assert 'rank(s) [1] missing' in capsys.readouterr().err
    assert tool.main([str(runs / 'one' / 'iter_8.pth'), str(tmp_path / 'x.pth')]) == 2
    assert 'is not a deepspeed checkpoint folder (a file' in capsys.readouterr().err
    assert tool.main([str(runs / 'one'), str(tmp_path / 'x.pth')]) == 2
    assert 'holds no deepspeed *mp_rank_00_model_states.pt file' in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()
