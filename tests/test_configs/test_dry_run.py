"""tools/misc/dry_run.py: the changes it makes, and one real config of each family run on the
miniature data sets (slow)."""
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'configs/mixmae/mixmae_swin-base-w14_16xb128-amp-coslr-300e_in1k.py'
FT224 = 'configs/mixmae/benchmarks/mixmae-swin-base-w14_8xb128-amp-coslr-100e_in1k.py'
FT384 = 'configs/mixmae/benchmarks/mixmae-swin-base-w16_16xb64-amp-coslr-100e_in1k-384px.py'
DET1X = 'configs/mask_rcnn/mask-rcnn_mixmae-base_fpn_amp-1x_coco.py'
DET3X = 'configs/mask_rcnn/mask-rcnn_mixmae-base_fpn_amp-ms-crop-3x_coco.py'
SEG = 'configs/upernet/upernet_mixmae-base_8xb2-amp-160k_ade20k-512x512.py'


def _changes(misc, path, **kw):
    cfg = Config.fromfile(osp.join(REPO, path))
    args = dict(batch_size=2, iters=3, data_root='/mini/x', checkpoint=None)
    args.update(kw)
    return cfg, misc('dry_run_config').adapt_for_cpu(cfg, **args)


def test_changes_for_pretraining(misc):
    cfg, log = _changes(misc, PRETRAIN)
    assert "train_dataloader.batch_size: 128 -> 2" in log
    assert "train_dataloader.num_workers: 10 -> 0" in log
    assert "train_dataloader.pin_memory: True -> False" in log
    assert "train_dataloader.dataset.data_root: 'data/imagenet/' -> '/mini/x/'" in log
    assert "train_dataloader.dataset.indices: '<unset>' -> 6" in log
    assert "train_cfg.max_epochs: 300 -> 1" in log
    assert not any('dtype' in line for line in log)  # already bf16
    assert cfg.train_dataloader.drop_last is True  # kept
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.2e-3)  # kept
    assert "train_dataloader.persistent_workers: True -> False" in log
    assert len(log) == 7


def test_changes_for_detection(misc):
    cfg, log = _changes(misc, DET1X, checkpoint='/ck.pth', val_samples=1)
    assert ("optim_wrapper.dtype: 'float16 (AmpOptimWrapper default)' -> 'bfloat16' "
            "(CPU autocast)") in log
    assert ("model.backbone.init_cfg.checkpoint: 'work_dirs/mixmae_swin-base-w14_16xb128-amp-"
            "coslr-600e_in1k/epoch_600.pth' -> '/ck.pth'") in log
    assert "val_evaluator.ann_file: 'data/coco/annotations/instances_val2017.json' -> " \
           "'/mini/x/annotations/instances_val2017.json'" in log
    assert cfg.val_dataloader.dataset.indices == 1
    assert cfg.train_dataloader.dataset.indices == 6
    assert cfg.model.backbone.shift_window is True  # the model is not touched


def test_changes_for_segmentation(misc):
    cfg, log = _changes(misc, SEG, image_scale=0.25)
    bn = [line for line in log if "'SyncBN' -> 'BN'" in line]
    assert sorted(bn) == ['model.auxiliary_head.norm_cfg.type: \'SyncBN\' -> \'BN\'',
                          'model.decode_head.norm_cfg.type: \'SyncBN\' -> \'BN\'']
    assert "train_cfg.max_iters: 160000 -> 3" in log
    assert "train_cfg.val_interval: 16000 -> 3" in log
    assert "model.data_preprocessor.size: (512, 512) -> (128, 128)" in log
    assert cfg.train_dataloader.dataset.pipeline[2].scale == (512, 128)
    assert cfg.train_dataloader.dataset.pipeline[3].crop_size == (128, 128)
    with pytest.raises(ValueError, match=r'RandomResizedCrop, whose size is fixed by '
                                         r'model\.backbone\.img_size'):
        _changes(misc, FT224, image_scale=0.5)


#: test-only overrides: a fixed seed (the mmdet / mmseg configs set none), no checkpoint file (saving 1-1.5 GB of weights and optimizer state
#: is exercised once, by the pretraining test)
NO_CKPT = ['default_hooks.checkpoint=None', 'randomness.seed=0']
#: The 1x Mask R-CNN and the UperNet dry runs below run at a quarter of the configs' image
#: size, like the 3x pipeline (the issue asks reduced size only for that one and the 384
#: fine-tune).  Full size does not fit CI (90 min on 2 cores, the suite about 12 min, at most
#: about 10 more minutes for both): measured 2026-12-06, `nice -n 15 .venv/bin/python
#: tools/misc/dry_run.py configs/mask_rcnn/mask-rcnn_mixmae-base_fpn_amp-1x_coco.py
#: --data-root MINI/coco --iters 1 --batch-size 1 --val-samples 1 --cfg-options
#: default_hooks.checkpoint=None randomness.seed=0 model.test_cfg.rcnn.score_thr=0.0`
#: (load average 5-7) had used 899 s of CPU (26 min wall, 5.3 GiB peak) without finishing
#: its one iteration and one validation image, i.e. more than 7.5 min on two idle cores for
#: this test alone (bf16 autocast on a CPU without bf16 instructions).
REDUCED_SCALE = 0.25
#: untrained heads score below mmdet's 0.05 threshold, and CocoMetric returns {} for an
#: image without detections: keep every detection so that bbox and segm are evaluated
ALL_DETS = ['model.test_cfg.rcnn.score_thr=0.0']


def _run(misc, mini_data, path, sub, cfg_options=(), **kw):
    dry_run = misc('dry_run')
    argv = [osp.join(REPO, path), '--data-root', osp.join(mini_data, sub)]
    for k, v in kw.items():
        argv += [f'--{k.replace("_", "-")}', str(v)]
    if cfg_options:
        argv += ['--cfg-options', *cfg_options]
    return dry_run.dry_run(dry_run.parse_args(argv))


@pytest.mark.slow
def test_bad_layout_stops_before_training(misc, mini_data, tmp_path):
    import shutil
    inet = tmp_path / 'imagenet'
    shutil.copytree(osp.join(mini_data, 'imagenet'), inet)
    (inet / 'meta' / 'train.txt').unlink()
    layout = misc('data_layout')
    with pytest.raises(layout.DataLayoutError, match=r'meta/train\.txt is missing'):
        _run(misc, str(tmp_path), PRETRAIN, 'imagenet')


@pytest.mark.slow
def test_pretraining_base(misc, mini_data):
    out = _run(misc, mini_data, PRETRAIN, 'imagenet', iters=1)
    assert len(out['losses']) == 1 and 0.5 < out['losses'][0]['loss'] < 2.0
    assert out['metrics'] is None
    assert out['params'] == 114_665_784
    assert out['peak_rss_mib'] > 1000


@pytest.mark.slow
def test_finetune_base_224(misc, mini_data):
    out = _run(misc, mini_data, FT224, 'imagenet', NO_CKPT, iters=1, val_samples=1)
    # 1000 classes, label smoothing + mixup: about ln(1000) = 6.9 at random init
    assert 6.0 < out['losses'][0]['loss'] < 8.0
    assert set(out['metrics']) == {'accuracy/top1', 'accuracy/top5'}
    assert out['params'] == 88_344_352


@pytest.mark.slow
def test_finetune_base_384(misc, mini_data):
    out = _run(misc, mini_data, FT384, 'imagenet', NO_CKPT, iters=1, batch_size=1,
               val_samples=1)
    assert 6.0 < out['losses'][0]['loss'] < 8.0
    assert 0.0 <= out['metrics']['accuracy/top5'] <= 100.0


@pytest.mark.slow
def test_mask_rcnn_base_1x_at_quarter_size(misc, mini_data):
    out = _run(misc, mini_data, DET1X, 'coco', NO_CKPT + ALL_DETS, iters=1, batch_size=1,
               val_samples=1, image_scale=REDUCED_SCALE)
    for loader, index in (('train', 2), ('val', 1)):
        assert (f'{loader}_dataloader.dataset.pipeline[{index}].scale: (1333, 800) -> '
                '(333, 200)') in out['changes']
    loss = out['losses'][0]
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(loss)
    assert loss['loss_rpn_cls'] == pytest.approx(0.69, abs=0.05)  # ln 2 at init
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'} <= \
        set(out['metrics'])
    assert any("'bfloat16'" in line for line in out['changes'])


@pytest.mark.slow
def test_mask_rcnn_base_3x_pipeline(misc, mini_data):
    out = _run(misc, mini_data, DET3X, 'coco', NO_CKPT + ALL_DETS, iters=1, batch_size=1,
               val_samples=1, image_scale=REDUCED_SCALE)
    assert ('train_dataloader.dataset.pipeline[3].transforms[1][1].crop_size: (384, 600) -> '
            '(96, 160)') in out['changes']
    assert 0.0 <= out['metrics']['coco/segm_mAP'] <= 1.0
    assert 0.0 <= out['metrics']['coco/bbox_mAP'] <= 1.0


@pytest.mark.slow
def test_upernet_base_at_quarter_size(misc, mini_data):
    out = _run(misc, mini_data, SEG, 'ade/ADEChallengeData2016', NO_CKPT, iters=1,
               val_samples=1, image_scale=REDUCED_SCALE)
    assert "model.data_preprocessor.size: (512, 512) -> (128, 128)" in out['changes']
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(out['losses'][0])
    # 150 classes at random init: cross-entropy of the order of ln(150) = 5.0 (measured 2.7
    # and 4.1 on two unseeded runs); the auxiliary FCN head is weighted 0.4
    loss = out['losses'][0]
    assert 1.0 < loss['decode.loss_ce'] < 8.0
    assert 0.4 * 1.0 < loss['aux.loss_ce'] < 0.4 * 8.0
    assert 0.0 <= out['metrics']['mIoU'] <= 100.0
