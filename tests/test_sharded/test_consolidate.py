"""Sharded FSDP checkpoint -> one full file (tools/model_converters/fsdp_sharded_to_full.py),
and the full weights loaded strictly into the plain backbone, Mask R-CNN and UperNet."""
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

from _sharded_env import REPO
from _sharded_env import load_tool as _load_tool
from helpers.archs import TOY_FLAT
from mmmixmae.checkpoint import CheckpointMismatchError, load_pretrained_backbone
from mmmixmae.checkpoint.errors import InvalidCheckpointError
from mmmixmae.checkpoint.sharded import consolidate_sharded
from mmmixmae.compat.fsdp import to_plain


def load_tool():
    return _load_tool('model_converters/fsdp_sharded_to_full.py')


# ----------------------------------------------------------------------------- synthetic shards
def _layout():
    """Unit 'blk': w (2x3), alignment gap of 2, b (3,): 11 elements; root: e (4,)."""
    return {'blk': dict(names=['blk.w', 'blk.b'], shapes=[[2, 3], [3]], numels=[6, 2, 3],
                        padding=[False, True, False], shared=[]),
            '': dict(names=['e'], shapes=[[4]], numels=[4], padding=[False], shared=[])}


def _plain(flat: torch.Tensor, start: int, stop: int) -> dict:
    return {'_mmmixmae_sharded_tensor': 1, 'global_size': [flat.numel()], 'shards': [
        dict(tensor=flat[start:stop].clone(), offsets=[start], sizes=[stop - start],
             placement=f'rank:0/cpu')]}


def write_shards(folder, world_size=2, layout=None, cut=(6, 2)):
    """A 2-rank sharded checkpoint as mmmixmae.compat.fsdp writes it; returns the expected
    full state dict.  ``cut``: where rank 0's slice of blk / root ends."""
    folder.mkdir()
    w, b, e = torch.arange(6.).reshape(2, 3), torch.tensor([7., 8., 9.]), torch.arange(4.) / 3
    blk = torch.cat([w.flatten(), torch.tensor([-1., -1.]), b])
    buf = torch.tensor([5, 6])
    for rank in range(world_size):
        bounds = [(0, cut[0]), (cut[0], 11)][rank], [(0, cut[1]), (cut[1], 4)][rank]
        state = {'blk.buf': buf, 'blk._flat_param': _plain(blk, *bounds[0]),
                 '_flat_param': _plain(e, *bounds[1])}
        meta = dict(fsdp=dict(world_size=world_size, state_dict_type='LOCAL_STATE_DICT',
                              units=['', 'blk'], flat_params=layout or _layout()), iter=4)
        torch.save(dict(meta=meta, state_dict=state), folder / f'rank{rank}.pth')
    return {'blk.buf': buf, 'blk.w': w, 'blk.b': b, 'e': e}


def test_consolidate_synthetic_shards_skips_padding(tmp_path):
    expected = write_shards(tmp_path / 'iter_4.pth')
    full, meta = consolidate_sharded(str(tmp_path / 'iter_4.pth'))
    assert list(full) == ['blk.buf', 'blk.w', 'blk.b', 'e']
    for key, value in expected.items():
        assert torch.equal(full[key], value), key
    assert meta['iter'] == 4 and 'fsdp' not in meta
    assert meta['consolidated_from']['world_size'] == 2


def test_tool_writes_one_file_and_refuses_bad_folders(tmp_path, capsys):
    tool = load_tool()
    expected = write_shards(tmp_path / 'ck')
    assert tool.main([str(tmp_path / 'ck'), str(tmp_path / 'full.pth')]) == 0
    assert '2 shards' in capsys.readouterr().out
    saved = torch.load(tmp_path / 'full.pth', weights_only=True)
    assert set(saved) == {'meta', 'state_dict'}
    assert torch.equal(saved['state_dict']['blk.w'], expected['blk.w'])

    (tmp_path / 'ck' / 'rank1.pth').unlink()  # a missing shard
    assert tool.main([str(tmp_path / 'ck'), str(tmp_path / 'x.pth')]) == 2
    assert 'rank1.pth missing' in capsys.readouterr().err
    assert tool.main([str(tmp_path / 'full.pth'), str(tmp_path / 'x.pth')]) == 2
    assert 'is not a folder of rank<i>.pth shards' in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()


def test_extra_shard_gap_and_foreign_shards_are_refused(tmp_path):
    write_shards(tmp_path / 'a')
    shutil.copy(tmp_path / 'a' / 'rank1.pth', tmp_path / 'a' / 'rank2.pth')
    with pytest.raises(InvalidCheckpointError, match=r'has 3 shards .* this run has 2'):
        consolidate_sharded(str(tmp_path / 'a'))

    write_shards(tmp_path / 'b', cut=(6, 2))
    other = torch.load(tmp_path / 'b' / 'rank1.pth', weights_only=True)
    other['state_dict']['blk._flat_param']['shards'][0]['offsets'] = [7]  # leaves a gap
    torch.save(other, tmp_path / 'b' / 'rank1.pth')
    with pytest.raises(InvalidCheckpointError,
                       match=r'blk\._flat_param has elements 6\.\.6 in no shard'):
        consolidate_sharded(str(tmp_path / 'b'))

    layout = _layout()
    layout['blk']['numels'] = [6, 1, 3]  # another run's layout in rank 1
    write_shards(tmp_path / 'c')
    bad = torch.load(tmp_path / 'c' / 'rank1.pth', weights_only=True)
    bad['meta']['fsdp']['flat_params'] = layout
    torch.save(bad, tmp_path / 'c' / 'rank1.pth')
    with pytest.raises(InvalidCheckpointError,
                       match=r'rank1\.pth: meta\.fsdp\.flat_params differs from rank0\.pth'):
        consolidate_sharded(str(tmp_path / 'c'))

    (tmp_path / 'd').mkdir()
    torch.save(dict(meta=dict(), state_dict={}), tmp_path / 'd' / 'rank0.pth')
    with pytest.raises(InvalidCheckpointError, match=r'rank0\.pth: no meta\.fsdp\.flat_params'):
        consolidate_sharded(str(tmp_path / 'd'))


def test_to_plain_keeps_plain_tensors():
    x = torch.arange(3.)
    assert to_plain({'a': [x]})['a'][0] is x


# ----------------------------------------------------------------------------- 2-rank FSDP run
@pytest.fixture(scope='module')
def consolidated(fsdp_run, tmp_path_factory):
    out, results = fsdp_run
    dst = tmp_path_factory.mktemp('full') / 'full.pth'
    assert load_tool().main([str(out / 'sharded.pth'), str(dst)]) == 0
    return dst, results


@pytest.mark.slow
def test_consolidated_equals_fsdp_full_state_dict(consolidated):
    dst, results = consolidated
    full = torch.load(dst, weights_only=True)['state_dict']
    fsdp = results['fsdp_state']
    assert list(full) == list(fsdp)  # same keys in the model's order
    assert [k for k in fsdp if not torch.equal(full[k], fsdp[k])] == []
    assert all(full[k].dtype == fsdp[k].dtype for k in fsdp)
    assert len(full) == 88 and sum(v.numel() for v in full.values()) == 431945


def _plain_backbone():
    from mmmixmae.models import MixMAESwin
    return MixMAESwin(arch=dict(TOY_FLAT), img_size=64, window_size=(4, 4, 2, 2))


@pytest.mark.slow
@pytest.mark.parametrize('which', ['consolidated', 'fsdp_full'])
def test_full_state_dict_loads_strictly_into_plain_backbone(consolidated, fsdp_run, which):
    dst, results = consolidated
    path = dst if which == 'consolidated' else fsdp_run[0] / 'fsdp_full.pth'
    backbone = _plain_backbone()
    report = load_pretrained_backbone(backbone, dict(type='Pretrained', checkpoint=str(path),
                                                     prefix='backbone.'))
    assert report.newly_initialized == []
    fsdp = results['fsdp_state']
    loaded = backbone.state_dict()
    assert len(report.loaded) == 68  # every backbone tensor
    assert all(torch.equal(loaded[k], fsdp['backbone.' + k]) for k in report.loaded)
    # strict: a checkpoint of another width is refused before any copy
    with pytest.raises(CheckpointMismatchError, match='shape'):
        from mmmixmae.models import MixMAESwin
        wide = MixMAESwin(arch=dict(TOY_FLAT, embed_dims=32), img_size=64,
                          window_size=(4, 4, 2, 2))
        load_pretrained_backbone(wide, dict(type='Pretrained', checkpoint=str(path),
                                            prefix='backbone.'))


@pytest.mark.slow
@pytest.mark.parametrize('config, scope', [
    ('mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py', 'mmdet'),
    ('upernet/upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py', 'mmseg')])
def test_full_state_dict_loads_into_dense_toy_configs(consolidated, config, scope):
    """The toy configs' backbone with init_cfg.checkpoint = the consolidated file: every
    encoder weight arrives; the dense norms norm0-2 are the only new ones."""
    import importlib

    from mmengine.registry import DefaultScope
    importlib.import_module(f'mmmixmae.{"det" if scope == "mmdet" else "seg"}')
    registry = importlib.import_module(f'{scope}.registry').MODELS
    dst, results = consolidated
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.backbone.init_cfg.checkpoint = str(dst)
    with DefaultScope.overwrite_default_scope(scope):
        backbone = registry.build(cfg.model.backbone)
    backbone.init_weights()
    fsdp, state = results['fsdp_state'], backbone.state_dict()
    same = [k for k in state if 'backbone.' + k in fsdp
            and torch.equal(state[k], fsdp['backbone.' + k])]
    new = sorted(k for k in state if 'backbone.' + k not in fsdp)
    assert new == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert len(same) == len(state) - len(new) == 68
