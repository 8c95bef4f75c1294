"""Checkpoints: a crash while writing never leaves a `last_checkpoint` that resume trips
over; loading stays weights_only and refuses a pickle that would run code; a checkpoint of
another arch fails naming the keys, another window size loads through the interpolation."""
import os
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from rel_helpers import TOY_CFG, derived_config, finish, run_train, start_train

from mmmixmae.checkpoint import InvalidCheckpointError, load_checkpoint_safely
from mmmixmae.checkpoint import CheckpointMismatchError
from mmmixmae.engine.hooks import atomic_write_bytes
from mmmixmae.models.utils.rel_pos import resize_rel_pos_table

IMPORTS = dict(imports=['mmmixmae', 'mmmixmae.engine', 'mmmixmae.datasets.transforms',
                        'reliability_testkit'], allow_failed_imports=False)


def _cfg(tmp_path, name, hook_type, crash_at=None):
    hooks = [dict(type='ExactResumeHook')]
    if crash_at:
        hooks.append(dict(type='CrashDuringSaveHook', at_iter=crash_at))
    return derived_config(
        tmp_path / name, TOY_CFG, hooks, custom_imports=IMPORTS,
        train_cfg=dict(type='ResumableIterBasedTrainLoop', max_iters=6, _delete_=True),
        default_hooks=dict(checkpoint=dict(type=hook_type, interval=2, by_epoch=False,
                                           max_keep_ckpts=1, _delete_=True)))


@pytest.mark.slow
def test_crash_while_writing_a_checkpoint(tmp_path, photo_folder):
    opts = [f'train_dataloader.dataset.data_root={photo_folder}']
    ours, stock = tmp_path / 'atomic', tmp_path / 'stock'
    (rc_ours, out_ours), (rc_stock, out_stock) = [finish(p) for p in (
        start_train(_cfg(tmp_path, 'a.py', 'AtomicCheckpointHook', 4), ours, cfg_options=opts),
        start_train(_cfg(tmp_path, 's.py', 'CheckpointHook', 4), stock, cfg_options=opts))]
    assert rc_ours == rc_stock == -9, out_ours[-2000:] + out_stock[-2000:]

    # ours: the half-written file never got the checkpoint's name, the previous checkpoint
    # was not deleted yet (max_keep_ckpts=1), last_checkpoint names it, and it loads
    assert (ours / 'last_checkpoint').read_text() == str(ours / 'iter_2.pth')
    assert load_checkpoint_safely(ours / 'iter_2.pth')['meta']['iter'] == 2
    assert not (ours / 'iter_4.pth').exists()
    partial = list(ours.glob('.iter_4.pth.tmp-*'))
    assert len(partial) == 1 and partial[0].stat().st_size > 0

    # mmengine's CheckpointHook: iter_2 was deleted before iter_4 was written, iter_4 is
    # truncated, last_checkpoint names the deleted file -- nothing left to resume from
    assert (stock / 'last_checkpoint').read_text() == str(stock / 'iter_2.pth')
    assert not (stock / 'iter_2.pth').exists()
    with pytest.raises(InvalidCheckpointError, match='truncated or corrupt'):
        load_checkpoint_safely(stock / 'iter_4.pth')

    rc, out = run_train(_cfg(tmp_path, 'r.py', 'AtomicCheckpointHook'), ours, '--resume',
                        cfg_options=opts)
    assert rc == 0, out[-3000:]
    assert 'resumed epoch: 0, iter: 2' in out
    assert f'removing the partial checkpoint of an interrupted save: {partial[0]}' in out
    assert sorted(p.name for p in ours.iterdir() if p.suffix == '.pth' or '.tmp-' in p.name) \
        == ['iter_6.pth']
    assert (ours / 'last_checkpoint').read_text() == str(ours / 'iter_6.pth')


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    atomic_write_bytes(str(path), b'old')
    assert path.read_bytes() == b'old'

    def no_space(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', no_space)  # the new bytes never reach the disk
    with pytest.raises(OSError, match='No space left'):
        atomic_write_bytes(str(path), b'new content')
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['last_checkpoint']  # no temp file left


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory, photo_folder):
    """A real 2-iteration toy pretraining checkpoint (windows 4, 4, 2, 2; 16 dims)."""
    work = tmp_path_factory.mktemp('toy_ckpt')
    runner = _runner(work / 'run', photo_folder, 'toy_ckpt_src')
    runner.train()
    return work / 'run' / 'iter_2.pth'


def _runner(work_dir, photo_folder, name, **model):
    cfg = Config.fromfile(str(TOY_CFG))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    cfg.train_dataloader.dataset.data_root = photo_folder
    cfg.train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=2)
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=2,
                                        by_epoch=False)
    cfg.merge_from_dict(dict(model=model))
    return Runner.from_cfg(cfg)


def test_resume_from_another_arch_fails_naming_the_keys(tmp_path, photo_folder,
                                                        toy_checkpoint):
    runner = _runner(tmp_path / 'wide', photo_folder, 'wide',
                     backbone=dict(arch=dict(embed_dims=24)), neck=dict(in_channels=192))
    runner._resume, runner._load_from = True, str(toy_checkpoint)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.train()
    msg = str(info.value)
    assert msg.startswith(f'checkpoint {toy_checkpoint} does not fit the model (resume needs '
                          'identical keys and shapes')
    assert ('size mismatch for backbone.patch_embed.proj.weight: copying a param with shape '
            'torch.Size([16, 3, 4, 4]) from checkpoint, the shape in current model is '
            'torch.Size([24, 3, 4, 4])') in msg
    assert 'size mismatch for neck.decoder_embed.weight' in msg


def test_resume_with_a_deeper_arch_names_the_missing_keys(tmp_path, photo_folder,
                                                         toy_checkpoint):
    runner = _runner(tmp_path / 'deep', photo_folder, 'deep',
                     backbone=dict(arch=dict(depths=[1, 1, 2, 1])))
    runner._resume, runner._load_from = True, str(toy_checkpoint)
    with pytest.raises(CheckpointMismatchError,
                       match='Missing key\\(s\\) in state_dict: "backbone.layers.2.blocks.1.'):
        runner.train()


def test_load_from_another_arch_fails_where_mmengine_only_warns(tmp_path, photo_folder,
                                                                 toy_checkpoint):
    src = load_checkpoint_safely(toy_checkpoint)['state_dict']
    runner = _runner(tmp_path / 'wide2', photo_folder, 'wide2',
                     backbone=dict(arch=dict(embed_dims=24)), neck=dict(in_channels=192))
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            f'checkpoint {toy_checkpoint} does not fit the model (load_from needs matching '
            'shapes')):
        runner._load_from = str(toy_checkpoint)
        runner.load_checkpoint(str(toy_checkpoint))

    # without ExactResumeHook, mmengine 0.10.7 logs the mismatch and carries on with the
    # random initialisation of every mismatched tensor -- the silent partial load we refuse
    bare = _runner(tmp_path / 'wide3', photo_folder, 'wide3',
                   backbone=dict(arch=dict(embed_dims=24)), neck=dict(in_channels=192))
    bare._hooks = [h for h in bare._hooks if type(h).__name__ != 'ExactResumeHook']
    bare.load_checkpoint(str(toy_checkpoint))
    mine = bare.model.state_dict()
    assert mine['backbone.patch_embed.proj.weight'].shape != \
        src['backbone.patch_embed.proj.weight'].shape
    assert torch.equal(mine['neck.decoder_pred.weight'], src['neck.decoder_pred.weight'])


def test_load_from_another_window_size_interpolates_the_tables(tmp_path, photo_folder,
                                                                toy_checkpoint):
    src = load_checkpoint_safely(toy_checkpoint)['state_dict']
    runner = _runner(tmp_path / 'win', photo_folder, 'win', backbone=dict(
        window_size=(2, 2, 2, 2)))
    runner._load_from = str(toy_checkpoint)
    runner.load_checkpoint(str(toy_checkpoint))
    mine = runner.model.state_dict()
    for i, (src_w, dst_w) in enumerate([(4, 2), (4, 2), (2, 2), (2, 2)]):
        key = f'backbone.layers.{i}.blocks.0.attn.relative_position_bias_table'
        expected = resize_rel_pos_table(src[key], (src_w, src_w), (dst_w, dst_w))
        assert mine[key].shape == ((2 * dst_w - 1)**2, src[key].shape[1])
        assert torch.equal(mine[key], expected), key
    assert src['backbone.layers.0.blocks.0.attn.relative_position_bias_table'].shape[0] == 49
    for key, value in src.items():
        if 'relative_position_bias_table' not in key:
            assert torch.equal(mine[key], value), key


def test_load_from_a_checkpoint_sharing_no_key_fails(tmp_path, photo_folder, toy_checkpoint):
    sd = load_checkpoint_safely(toy_checkpoint)['state_dict']
    official = tmp_path / 'official_layout.pth'
    torch.save({'model': {k.replace('backbone.', ''): v for k, v in sd.items()}}, official)
    runner = _runner(tmp_path / 'none', photo_folder, 'none')
    runner._load_from = str(official)
    with pytest.raises(CheckpointMismatchError, match=re.escape(
            f'checkpoint {official} shares no parameter name with MixMAE: the checkpoint '
            "holds ['model']")):
        runner.load_checkpoint(str(official))


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, toy_checkpoint,
                                                         photo_folder):
    marker = tmp_path / 'pwned'
    ckpt = load_checkpoint_safely(toy_checkpoint)
    ckpt['meta']['note'] = _Reduce(os.system, (f'touch {marker}', ))
    evil = tmp_path / 'iter_2.pth'
    torch.save(ckpt, evil)
    rc, out = run_train(TOY_CFG, tmp_path / 'work', '--resume', evil, cfg_options=[
        f'train_dataloader.dataset.data_root={photo_folder}'])
    assert rc == 1
    assert f'UnsafeCheckpointError: Refusing to load checkpoint {evil}: it contains ' \
        'posix.system' in out
    assert not marker.exists()
