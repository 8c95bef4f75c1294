"""Overrides that take effect or are refused; data folders; missing mmcv CUDA ops."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmmixmae.utils import cli
from mmmixmae.utils.cfg_overrides import missing_key
from mmmixmae.utils.mmcv_ops_check import check_mmcv_cuda_ops, cuda_ops_in_config

DET_1X = 'configs/mask_rcnn/mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'
DET_L3X = 'configs/mask_rcnn/mask-rcnn_mixmae-large_fpn_amp-ms-crop-3x_coco.py'
SEG_L = 'configs/upernet/upernet_mixmae-large_8xb2-amp-160k_ade20k-512x512.py'
DET_TOY = 'configs/mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py'
SEG_TOY = 'configs/upernet/upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py'
PRE_TOY = 'configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py'


def test_missing_key_names_the_closest_existing_key():
    cfg = {'train_dataloader': {'batch_size': 2, 'dataset': {'pipeline': [{'type': 'A'}]}},
           'model': {'backbone': {'drop_path_rate': 0.1, 'arch': 'base'}}}
    assert missing_key(cfg, 'train_dataloader.batch_size') is None
    assert missing_key(cfg, 'train_dataloader.dataset.pipeline.0.type') is None
    assert missing_key(cfg, 'trian_dataloader.batch_size') == 'train_dataloader.batch_size'
    assert missing_key(cfg, 'model.backbone.drop_path') == 'model.backbone.drop_path_rate'
    assert missing_key(cfg, 'train_dataloader.dataset.pipeline.3.type') == \
        'train_dataloader.dataset.pipeline.0.type'
    assert missing_key(cfg, 'model.backbone.arch.depths') == 'model.backbone.arch'


def test_typo_key_is_refused_in_one_line(repo, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as exit_:
        cli.train_main([DET_TOY, '--cfg-options', 'trian_dataloader.batch_size=2'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0
    assert "'trian_dataloader.batch_size'" in err and "'train_dataloader.batch_size'" in err
    assert '--allow-new-keys' in err


def test_allow_new_keys_adds_the_key(repo):
    cfg = cli.load_config(osp.join(repo, DET_TOY), {'my_new_key': 3}, allow_new_keys=True)
    assert cfg.my_new_key == 3
    with pytest.raises(cli.CLIError, match="'my_new_key'"):
        cli.load_config(osp.join(repo, DET_TOY), {'my_new_key': 3})


@pytest.mark.parametrize('path', [DET_1X, DET_L3X, SEG_L, SEG_TOY])
def test_pretrained_reaches_the_backbone(repo, tmp_path, path):
    ckpt = tmp_path / 'my.pth'
    ckpt.write_bytes(b'')
    default = Config.fromfile(osp.join(repo, path)).model.backbone.init_cfg.checkpoint
    assert default.endswith('.pth') and default != str(ckpt)
    by_key = cli.load_config(osp.join(repo, path), {'pretrained': str(ckpt)})
    by_flag = cli.load_config(osp.join(repo, path), pretrained=str(ckpt))
    direct = cli.load_config(osp.join(repo, path),
                             {'model.backbone.init_cfg.checkpoint': str(ckpt)})
    for cfg in (by_key, by_flag, direct):
        assert cfg.model.backbone.init_cfg.checkpoint == str(ckpt)
        assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert by_flag.pretrained == by_key.pretrained == str(ckpt)


def test_pretrained_on_a_config_without_a_pretrained_backbone_is_refused(repo, tmp_path):
    ckpt = tmp_path / 'my.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(cli.CLIError, match='no model init_cfg of type Pretrained'):
        cli.load_config(osp.join(repo, PRE_TOY), pretrained=str(ckpt))
    with pytest.raises(cli.CLIError, match='--pretrained checkpoint not found'):
        cli.load_config(osp.join(repo, DET_1X), pretrained=str(tmp_path / 'absent.pth'))


def test_toy_configs_read_mmmixmae_data(repo, tmp_path, monkeypatch):
    monkeypatch.setenv('MMMIXMAE_DATA', str(tmp_path))
    assert Config.fromfile(osp.join(repo, DET_TOY)).data_root == f'{tmp_path}/coco_voc3/'
    assert Config.fromfile(osp.join(repo, SEG_TOY)).data_root == f'{tmp_path}/ade3/'
    monkeypatch.setenv('MMMIXMAE_DATA', 'some/rel')  # relative: from the repository root
    assert Config.fromfile(osp.join(repo, PRE_TOY)).data_root == \
        osp.join(repo, 'some/rel/coco_voc3/JPEGImages')
    monkeypatch.delenv('MMMIXMAE_DATA')
    assert Config.fromfile(osp.join(repo, DET_TOY)).data_root == \
        osp.normpath(osp.join(repo, '..', 'shared', 'data')) + '/coco_voc3/'


@pytest.mark.parametrize('path', [DET_TOY, SEG_TOY, PRE_TOY])
def test_missing_data_folder_is_explained(repo, tmp_path, monkeypatch, capsys, path):
    monkeypatch.setenv('MMMIXMAE_DATA', str(tmp_path))
    with pytest.raises(SystemExit):
        cli.train_main([osp.join(repo, path), '--work-dir', str(tmp_path / 'wd')])
    err = capsys.readouterr().err
    assert f'data folder {tmp_path}/' in err and 'does not exist' in err
    assert 'Set MMMIXMAE_DATA' in err and 'it must hold' in err and 'Sample data' in err
    assert not (tmp_path / 'wd').exists()  # stopped before the Runner


def test_data_check_follows_a_data_root_override(repo, tmp_path, monkeypatch, shared_data):
    from mmmixmae.utils.data_check import MissingDataError, check_required_data
    monkeypatch.setenv('MMMIXMAE_DATA', str(tmp_path))  # the default folder is absent
    cfg = cli.load_config(osp.join(repo, PRE_TOY), {
        'train_dataloader.dataset.data_root': osp.join(shared_data, 'coco_voc3', 'JPEGImages')})
    check_required_data(cfg.required_data, cfg)
    check_required_data(cfg.required_data, cfg)  # any folder of images will do
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'absent')
    with pytest.raises(MissingDataError, match=r'absent does not exist: it must hold images'):
        check_required_data(cfg.required_data, cfg)


def test_missing_cuda_ops_stop_at_start(repo, tmp_path, monkeypatch, capsys, shared_data):
    cfg = Config.fromfile(osp.join(repo, DET_TOY))
    ops = sorted({op for op, _ in cuda_ops_in_config(cfg.model, 'model')})
    assert ops == ['RoIAlign', 'nms']
    assert list(cuda_ops_in_config(Config.fromfile(osp.join(repo, SEG_TOY)).model)) == []
    with pytest.raises(RuntimeError, match='MMMIXMAE_MMCV_OPS=cuda'):
        check_mmcv_cuda_ops(cfg.model, cuda_available=True, compiled='not available')
    check_mmcv_cuda_ops(cfg.model, cuda_available=True, compiled='13.0')
    check_mmcv_cuda_ops(cfg.model, cuda_available=False, compiled='not available')

    # faked CUDA host with this machine's CPU-only mmcv, through tools/train.py's code
    import torch
    from mmcv.ops import get_compiling_cuda_version
    assert get_compiling_cuda_version() == 'not available'
    monkeypatch.setenv('MMMIXMAE_DATA', shared_data)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(cli, 'build_runner', lambda cfg: pytest.fail('built a Runner'))
    with pytest.raises(SystemExit):
        cli.train_main([osp.join(repo, DET_TOY), '--work-dir', str(tmp_path / 'wd')])
    err = capsys.readouterr().err
    assert "mmcv's RoIAlign, nms on the GPU" in err
    assert "get_compiling_cuda_version() = 'not available'" in err
    assert 'MMMIXMAE_MMCV_OPS=cuda bash tools/install/setup_env.sh' in err
