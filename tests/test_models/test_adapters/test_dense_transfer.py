"""Dense transfer of a MixMAEAdapter checkpoint: UperNet with mmpretrain's *plain* ConvNeXt.

The config (configs/upernet/upernet_mixmae-convnext-demo_1xb2-cpu_ade3-256x256.py) is the
Swin/W14 UperNet toy config of tests/test_seg with the ConvNeXt of the adapter's CPU demo,
initialised by ``init_cfg=Pretrained(prefix='backbone.')`` from the demo's MixMAE checkpoint
with no conversion.  It trains through mmseg's Runner on the 3 ADE20K scenes and must learn
as much as the Swin/W14 one (same thresholds as tests/test_seg/test_upernet_e2e.py).
"""
import os.path as osp
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from helpers.dense import REPO, Recorder, mean, restore_default_scope

SEG_CFG = osp.join(REPO, 'configs', 'upernet',
                   'upernet_mixmae-convnext-demo_1xb2-cpu_ade3-256x256.py')


class BackboneAtStart(Hook):
    """The backbone's state dict after the Runner initialised the model, before training."""

    priority = 'HIGHEST'

    def __init__(self):
        self.state: Dict[str, torch.Tensor] = {}

    def before_train(self, runner) -> None:
        self.state = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}


def seg_cfg(shared_data: str, work_dir: str, checkpoint: str) -> Config:
    cfg = Config.fromfile(SEG_CFG)
    root = osp.join(shared_data, 'ade3') + '/'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
    cfg.work_dir = work_dir
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    cfg.default_hooks.logger.interval = 20
    cfg.log_level = 'WARNING'
    return cfg


def backbone_weights(checkpoint: str) -> Dict[str, torch.Tensor]:
    from mmmixmae.checkpoint import load_checkpoint_safely
    state = load_checkpoint_safely(checkpoint)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


@pytest.mark.slow
def test_upernet_convnext_from_adapter_checkpoint_learns_on_ade3(shared_data, demo_run,
                                                                  tmp_path):
    pretrained = demo_run('convnext')  # 20 MixMAE iterations through MixMAEAdapter
    assert pretrained['final_loss'] < 0.92 * pretrained['zero_loss']
    import mmmixmae.seg  # noqa: F401
    from mmengine.runner import Runner
    from mmpretrain.models import ConvNeXt
    with restore_default_scope():
        runner = Runner.from_cfg(seg_cfg(shared_data, str(tmp_path), pretrained['checkpoint']))
        start, rec = BackboneAtStart(), Recorder()
        runner.register_hook(start)
        runner.register_hook(rec)
        runner.train()
    backbone = runner.model.backbone
    assert type(backbone) is ConvNeXt  # the plain upstream class, not the adapter
    # every pretrained tensor was loaded unchanged; only the dense outputs' norms are new
    theirs = backbone_weights(pretrained['checkpoint'])
    assert sorted(set(start.state) - set(theirs)) == [
        f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    for key, value in theirs.items():
        assert torch.equal(start.state[key], value), key
    key = 'stages.0.0.depthwise_conv.weight'
    assert not torch.equal(backbone.state_dict()[key], theirs[key])  # and then fine-tuned
    scales = {g['layer_id']: g['lr_scale'] for g in runner.optim_wrapper.optimizer.param_groups}
    assert scales[-1] == 1.0 and min(scales.values()) < 1.0  # layer decay reached ConvNeXt
    before, after = rec.metrics[0]['mIoU'], rec.metrics[-1]['mIoU']
    first, last = mean(rec.losses[:5]), mean(rec.losses[-5:])
    print(f'loss {first:.3f} -> {last:.3f}; mIoU {before} -> {after}, aAcc '
          f'{rec.metrics[0]["aAcc"]} -> {rec.metrics[-1]["aAcc"]}; {len(rec.losses)} '
          f'iterations in {rec.train_seconds:.0f} s')
    assert len(rec.metrics) == 2 and len(rec.losses) == runner.max_iters
    assert last < 0.5 * first
    assert after >= 20 and after >= before + 15  # mmseg reports percentages
    assert rec.metrics[-1]['aAcc'] >= 70 and rec.metrics[-1]['aAcc'] >= rec.metrics[0]['aAcc'] + 30
