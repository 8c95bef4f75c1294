"""bf16 autocast on CPU through mmcv's NMS and RoIAlign (mmmixmae.compat.mmcv_lowp)."""
import os.path as osp

import pytest
import torch

import mmmixmae  # noqa: F401  (applies the compat fixes)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY = osp.join(REPO, 'configs', 'mask_rcnn', 'mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py')


def _boxes(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 60 + 4
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_nms_low_precision_equals_float32_on_same_values(dtype):
    from mmcv.ops import batched_nms, nms
    boxes, scores = _boxes()
    lb, ls = boxes.to(dtype), scores.to(dtype)
    dets, keep = nms(lb, ls, 0.5)
    _, keep32 = nms(lb.float(), ls.float(), 0.5)
    assert torch.equal(keep, keep32) and 5 < keep.numel() < 64
    assert dets.dtype == dtype and dets.shape == (keep.numel(), 5)
    # as in mmdet's heads under autocast: boxes decoded in float32, scores in low precision
    idx = torch.arange(64) % 3
    _, kb = batched_nms(boxes, ls, idx, dict(type='nms', iou_threshold=0.5))
    _, kb32 = batched_nms(boxes, ls.float(), idx, dict(type='nms', iou_threshold=0.5))
    assert torch.equal(kb, kb32) and kb.numel() > keep.numel()


def _far_class_boxes():
    """A 1000-px box of class 0 (it sets the largest coordinate, so class c is shifted by
    c x 1001) and two boxes of class 79 that overlap with IoU 0.855.  79 x 1001 = 79,079,
    where bfloat16 values are 512 apart: in bfloat16 arithmetic both class-79 boxes would
    become the point (78848, 78848), of zero area, and never suppress each other."""
    boxes = torch.tensor([[0., 0., 1000., 1000.], [10., 10., 60., 60.], [12., 12., 62., 62.]])
    return boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 79, 79])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_batched_nms_offsets_in_float32(dtype):
    from mmcv.ops import batched_nms
    boxes, scores, idx = _far_class_boxes()
    cfg = dict(type='nms', iou_threshold=0.5)
    dets32, keep32 = batched_nms(boxes, scores, idx, cfg)
    assert keep32.tolist() == [0, 1]  # the second class-79 box is suppressed
    lb, ls = boxes.to(dtype), scores.to(dtype)
    dets, keep = batched_nms(lb, ls, idx, cfg)
    assert keep.tolist() == [0, 1]
    assert dets.dtype == dtype  # mmcv's contract: boxes and scores promoted
    assert torch.equal(dets[:, :4], lb[keep]) and torch.equal(dets[:, 4], ls[keep])
    # float32 boxes with low-precision scores (mmdet's heads under autocast) as before
    dets_mixed, keep_mixed = batched_nms(boxes, ls, idx, cfg)
    assert keep_mixed.tolist() == [0, 1] and dets_mixed.dtype == torch.float32
    assert torch.equal(dets_mixed[:, :4], boxes[keep_mixed])


def test_batched_nms_patched_in_place():
    """mmdet binds ``batched_nms`` by name at import: the one function object is patched."""
    import importlib

    import mmcv.ops
    from mmdet.models.layers import bbox_nms
    nms_module = importlib.import_module('mmcv.ops.nms')
    assert bbox_nms.batched_nms is nms_module.batched_nms is mmcv.ops.batched_nms
    assert getattr(nms_module.batched_nms, '_mmmixmae_lowp_patched', False)


def test_roi_align_bf16_matches_float32_and_backpropagates():
    from mmcv.ops import RoIAlign
    torch.manual_seed(0)
    feats = torch.randn(2, 8, 32, 32).bfloat16().requires_grad_()
    rois = torch.tensor([[0, 4., 4., 60., 40.], [1, 10., 20., 90., 120.]])
    layer = RoIAlign(7, 0.25, sampling_ratio=2)
    out = layer(feats, rois)
    ref = layer(feats.detach().float(), rois)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 8, 7, 7)
    assert torch.allclose(out.float(), ref, atol=1e-2)
    out.float().sum().backward()
    assert feats.grad.dtype == torch.bfloat16
    assert feats.grad.float().abs().sum().item() == pytest.approx(2 * 8 * 49, rel=0.02)


def test_float32_path_untouched():
    from mmcv.ops import nms
    from mmcv.ops.nms import NMSop
    boxes, scores = _boxes(seed=1)
    assert getattr(NMSop.forward, '_mmmixmae_lowp_patched', False)
    _, keep = nms(boxes, scores, 0.5)
    assert keep.dtype == torch.long and keep.numel() > 5


@pytest.mark.slow
def test_mask_rcnn_bf16_amp_through_mmdet_runner(shared_data, tmp_path, misc, monkeypatch):
    """The demo Mask R-CNN with the real configs' AmpOptimWrapper (fp16 default, bf16 on
    CPU) trains 2 iterations and validates: RPN NMS, RoI-head NMS and both RoIAligns run
    under bf16 autocast; mmdet hands bf16 boxes to batched_nms, whose offsets are added in
    float32."""
    import importlib
    nms_module = importlib.import_module('mmcv.ops.nms')
    impl = nms_module._mmmixmae_batched_nms_float32
    batched = []

    def batched_spy(boxes, *args):
        batched.append(boxes.dtype)
        return impl(boxes, *args)

    monkeypatch.setattr(nms_module, '_mmmixmae_batched_nms_float32', batched_spy)
    from mmengine.config import Config
    from mmengine.runner import Runner
    monkeypatch.setenv('MMMIXMAE_CPU_AMP', 'bf16')  # bf16 even on CPUs where fp32 is faster
    cfg = Config.fromfile(TOY)
    misc('dry_run_config').adapt_data_root(cfg, osp.join(shared_data, 'coco_voc3'), [])
    cfg.model.backbone.init_cfg = None
    cfg.optim_wrapper = dict(type='AmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                             constructor='MixMAELayerDecayOptimWrapperConstructor',
                             paramwise_cfg=dict(layer_decay_rate=0.9))
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = []
    cfg.work_dir = str(tmp_path)
    cfg.default_hooks.checkpoint.interval = 100
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    seen = []
    from mmcv.ops.nms import NMSop
    orig = NMSop.forward

    def spy(ctx, bboxes, scores, *a, **k):
        seen.append(bboxes.dtype)
        return orig(ctx, bboxes, scores, *a, **k)

    NMSop.forward = staticmethod(spy)
    try:
        runner.train()
    finally:
        NMSop.forward = staticmethod(orig)
    assert runner.optim_wrapper.cast_dtype == torch.bfloat16
    assert torch.bfloat16 in batched  # batched_nms received bf16 boxes and did not fail
    assert seen and torch.float32 in seen  # NMS ran on the float32 boxes with offsets
    assert runner.iter == 2
    metrics = runner.message_hub.get_scalar('val/coco/bbox_mAP')
    assert metrics is not None and 0.0 <= metrics.current() <= 1.0
