"""End to end on real images: a pretraining checkpoint -> the fine-tuning config (pipelines
with RandAugment and random erasing, mixup/cutmix, label smoothing, layer decay, AMP) run by
mmengine's Runner -> its Runner checkpoint -> backbone-only checkpoint -> a dense backbone."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import mmmixmae  # noqa: F401
from mmmixmae.models import MixMAESwin
from mmmixmae.checkpoint import pretrained as ckpt_mod
from mmmixmae.checkpoint import read_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'mixmae', 'benchmarks',
                  'mixmae-swin-base-w14_8xb128-amp-coslr-100e_in1k.py')
from helpers.archs import TOY as ARCH


def image_folder(shared, root):
    """Two classes of three real photos each, as symlinks (no copy of the data)."""
    sources = {
        'voc': [osp.join(shared, 'coco_voc3', 'JPEGImages', f) for f in
                sorted(os.listdir(osp.join(shared, 'coco_voc3', 'JPEGImages')))],
        'ade': [osp.join(shared, 'ade3', 'images', 'validation', f) for f in
                sorted(os.listdir(osp.join(shared, 'ade3', 'images', 'validation')))],
    }
    for split in ('train', 'val'):
        for cls, files in sources.items():
            os.makedirs(osp.join(root, split, cls))
            for f in files:
                os.symlink(f, osp.join(root, split, cls, osp.basename(f)))
    return root


def toy_config(data_root, pretrained, work_dir):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.update(arch=ARCH, img_size=64, window_size=(4, 4, 2, 2))
    cfg.model.backbone.init_cfg.checkpoint = str(pretrained)
    cfg.model.head.update(num_classes=2, in_channels=128)
    cfg.model.data_preprocessor.num_classes = 2
    train_pipeline = [dict(t) for t in cfg.train_pipeline]
    assert train_pipeline[1]['type'] == 'RandomResizedCrop'
    train_pipeline[1]['scale'] = 64
    test_pipeline = [dict(t) for t in cfg.test_pipeline]
    test_pipeline[1]['scale'], test_pipeline[2]['crop_size'] = 73, 64
    loader = dict(batch_size=3, num_workers=0, persistent_workers=False, pin_memory=False)
    cfg.train_dataloader.update(loader)
    cfg.train_dataloader.dataset = dict(type='CustomDataset', data_root=str(data_root),
                                        data_prefix='train', pipeline=train_pipeline)
    cfg.val_dataloader.update(loader)
    cfg.val_dataloader.dataset = dict(type='CustomDataset', data_root=str(data_root),
                                      data_prefix='val', pipeline=test_pipeline)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))  # 2 classes
    cfg.train_cfg.update(max_epochs=2, val_interval=2)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=1,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', T_max=1, eta_min_ratio=5e-4, by_epoch=True, begin=1,
             end=2, convert_to_iter_based=True),
    ]
    cfg.default_hooks.checkpoint.update(interval=1, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.cudnn_benchmark = False
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.mark.slow
def test_finetune_config_runs_from_a_pretraining_checkpoint(shared_data, tmp_path, monkeypatch):
    tables = []
    real_print_log = ckpt_mod.print_log
    monkeypatch.setattr(ckpt_mod, 'print_log',
                        lambda msg, **kw: (tables.append(msg), real_print_log(msg, **kw)))
    torch.manual_seed(0)
    pretrain = MODELS.build(
        dict(type='MixMAE',
             backbone=dict(type='MixMAESwin', arch=ARCH, img_size=64, window_size=(4, 4, 2, 2)),
             neck=dict(type='MixMAEDecoder', in_channels=128, embed_dims=32, depth=1,
                       num_heads=2, img_size=64),
             head=dict(type='MixMAEPretrainHead', patch_size=32)))
    with torch.no_grad():
        for p in pretrain.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    pre_path = tmp_path / 'pretrain.pth'
    torch.save(dict(meta=dict(epoch=600), state_dict=pretrain.state_dict()), pre_path)

    data = image_folder(shared_data, tmp_path / 'data')
    cfg = toy_config(data, pre_path, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()

    assert 'dropped: other modules | 20 | neck.* (20)' in ' '.join(tables[0].split())
    # trained for 2 tiny-lr iterations from the pretrained weights, not from a fresh init
    trained = runner.model.backbone.state_dict()
    for key, value in pretrain.backbone.state_dict().items():
        assert (trained[key] - value).abs().max() < 5e-3, key
    assert (trained['layers.3.blocks.0.mlp.fc1.weight'] -
            pretrain.backbone.layers[3].blocks[0].mlp.fc1.weight).abs().max() > 0  # it trained
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    # the logged accuracy is the trained model's, recomputed sample by sample
    correct = total = 0
    runner.model.eval()
    with torch.no_grad():
        for batch in runner.val_dataloader:
            for sample in runner.model.val_step(batch):
                correct += int(sample.pred_label.item() == sample.gt_label.item())
                total += 1
    assert total > 0
    assert top1 == pytest.approx(100.0 * correct / total, abs=1e-4)
    ckpt_path = tmp_path / 'work' / 'epoch_2.pth'
    assert ckpt_path.exists()

    # the Runner checkpoint (message hub, optimizer, ...) through the backbone converter
    from mmmixmae.checkpoint import find_state_dict
    from mmmixmae.checkpoint.convert import extract_backbone
    ckpt = read_checkpoint(ckpt_path)
    assert {'message_hub', 'optimizer', 'state_dict'} <= set(ckpt)
    result = extract_backbone(find_state_dict(ckpt)[0], str(ckpt_path))
    assert result.groups['dropped: head.*'] == ['head.fc.weight', 'head.fc.bias']
    torch.save(dict(state_dict=result.state_dict), tmp_path / 'backbone.pth')
    dense = MixMAESwin(arch=ARCH, img_size=128, window_size=(8, 8, 4, 4), out_indices=(0, 1, 2, 3),
                       out_type='featmap',
                       init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'backbone.pth'),
                                     prefix='backbone.'))
    dense.init_weights()
    assert torch.equal(dense.layers[2].blocks[1].attn.qkv.weight,
                       trained['layers.2.blocks.1.attn.qkv.weight'])
    with torch.no_grad():
        outs = dense(torch.randn(1, 3, 96, 160))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 24, 40), (1, 32, 12, 20), (1, 64, 6, 10),
                                              (1, 128, 3, 5)]
