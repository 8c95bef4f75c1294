"""Bad images in a pretraining folder: a truncated copy of a real JPEG, a zero-byte file, a
text file named .jpg (undecodable), and grayscale, RGBA, 16-bit gray and 16-bit RGB PNGs
made from a real photo (decodable, converted to 3-channel 8-bit)."""
import copy
import re

import cv2
import mmcv
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from PIL import Image
from rel_helpers import TOY_CFG, derived_config, finish, start_train

import reliability_testkit as kit
from mmmixmae.datasets.transforms import (LoadImageRobust, UndecodableImageError,
                                          decode_image_strict)

BAD = ('truncated.jpg', 'empty.jpg', 'notes.jpg')
GOOD = ('photo.jpg', 'gray.png', 'rgba.png', 'gray16.png', 'rgb16.png')


@pytest.fixture(scope='module')
def bad_folder(tmp_path_factory, shared_data):
    """The files above plus 4 ordinary crops; returns (folder, reference arrays)."""
    root = tmp_path_factory.mktemp('bad_data')
    src = kit.photo_paths(shared_data)[0]
    data = open(src, 'rb').read()
    (root / 'photo.jpg').write_bytes(data)
    (root / 'truncated.jpg').write_bytes(data[:int(len(data) * 0.6)])
    (root / 'empty.jpg').write_bytes(b'')
    (root / 'notes.jpg').write_text('not an image\n')
    rgb = np.asarray(Image.open(src).convert('RGB'))
    gray = np.asarray(Image.open(src).convert('L'))
    Image.fromarray(gray).save(root / 'gray.png')
    alpha = (np.arange(rgb.shape[1])[None, :] % 256).astype(np.uint8).repeat(rgb.shape[0], 0)
    Image.fromarray(np.dstack([rgb, alpha]), 'RGBA').save(root / 'rgba.png')
    cv2.imwrite(str(root / 'gray16.png'), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(root / 'rgb16.png'), rgb[..., ::-1].astype(np.uint16) * 257)
    for i, crop in enumerate(kit.crops_of(kit.photo_paths(shared_data)[1], 4)):
        crop.save(root / f'crop_{i}.jpg', quality=92)
    assert Image.open(root / 'gray16.png').mode.startswith('I')  # really 16 bit
    assert cv2.imread(str(root / 'rgb16.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    return root, dict(rgb=rgb, gray=gray, jpeg=mmcv.imfrombytes(data))


def _load(path, **kwargs):
    return LoadImageRobust(**kwargs)(dict(img_path=str(path)))


def test_decodable_images_become_3_channel_uint8(bad_folder):
    root, ref = bad_folder
    photo = _load(root / 'photo.jpg')
    # exactly what mmcv's LoadImageFromFile gives for an ordinary JPEG (BGR)
    assert np.array_equal(photo['img'], ref['jpeg'])
    assert photo['img_shape'] == photo['ori_shape'] == ref['rgb'].shape[:2]
    bgr = ref['rgb'][..., ::-1]
    gray3 = np.repeat(ref['gray'][..., None], 3, axis=2)
    for name, expected in [('gray.png', gray3), ('rgba.png', bgr), ('gray16.png', gray3),
                           ('rgb16.png', bgr)]:
        img = _load(root / name)['img']
        assert img.dtype == np.uint8 and img.shape == ref['rgb'].shape, name
        assert np.array_equal(img, expected), name  # alpha dropped, 16 bit -> 8 bit exactly
    rgb = _load(root / 'rgba.png', channel_order='rgb')['img']
    assert np.array_equal(rgb, ref['rgb'])
    assert _load(root / 'gray.png', to_float32=True)['img'].dtype == np.float32


@pytest.mark.parametrize('name,reason', [
    ('truncated.jpg', r'not a readable image \(\d+ bytes; truncated, corrupt'),
    ('empty.jpg', r'the file is empty \(0 bytes\)'),
    ('notes.jpg', r'not a readable image \(13 bytes'),
])
def test_undecodable_image_stops_with_its_path(bad_folder, name, reason):
    root, _ = bad_folder
    path = str(root / name)
    with pytest.raises(UndecodableImageError, match=re.escape(f'cannot decode image {path}: ')
                       + reason) as info:
        _load(path)
    assert info.value.path == path


def test_skip_policy_counts_and_warns(bad_folder):
    import logging

    from mmengine.logging import MMLogger
    root, _ = bad_folder
    # the warnings go to mmengine's current logger, whose stream handlers may have been bound to
    # another test's stdout: collect its records directly
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        t = LoadImageRobust(on_error='skip')
        assert t(dict(img_path=str(root / 'photo.jpg'))) is not None
        for i, name in enumerate(BAD, 1):
            assert t(dict(img_path=str(root / name))) is None
            assert t.num_skipped == i
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(records)
    for i, name in enumerate(BAD, 1):
        assert f'LoadImageRobust: skipping {root / name}: ' in text
        assert f'({i} undecodable image(s) skipped so far)' in text
    assert copy.deepcopy(t).num_skipped == 3  # copies keep one shared counter


def test_missing_file_fails_with_path_under_both_policies(tmp_path):
    for policy in ('raise', 'skip'):
        with pytest.raises(FileNotFoundError, match=re.escape(
                f'image file does not exist: {tmp_path / "gone.jpg"}')):
            _load(tmp_path / 'gone.jpg', on_error=policy)
    with pytest.raises(FileNotFoundError, match='is a directory'):
        _load(tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match='on_error'):
        LoadImageRobust(on_error='ignore')
    with pytest.raises(ValueError, match='channel_order'):
        LoadImageRobust(channel_order='bgra')
    with pytest.raises(UndecodableImageError, match='x.jpg: the file is empty'):
        decode_image_strict(b'', 'x.jpg')


def _dataset(root, on_error, **kwargs):
    from mmpretrain.datasets import CustomDataset
    pipeline = [dict(type='LoadImageRobust', on_error=on_error),
                dict(type='ResizeEdge', scale=64), dict(type='PackInputs')]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return CustomDataset(data_root=str(root), data_prefix='', with_label=False,
                             pipeline=pipeline, **kwargs)


def test_dataset_skip_policy_never_returns_a_bad_sample(bad_folder):
    root, _ = bad_folder
    ds = _dataset(root, 'skip')
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert len(ds) == len(BAD) + len(GOOD) + 4
    np.random.seed(0)  # BaseDataset draws the replacement with numpy's global generator
    for i in range(len(ds)):
        sample = ds[i]
        assert sample['data_samples'].img_path.split('/')[-1] not in BAD
        if paths[i].split('/')[-1] not in BAD:
            assert sample['data_samples'].sample_idx == i
    loader = ds.pipeline.transforms[0]
    assert loader.num_skipped >= len(BAD)


def test_annotation_naming_a_missing_image_fails_with_the_path(bad_folder, tmp_path):
    root, _ = bad_folder
    ann = tmp_path / 'ann.txt'
    ann.write_text('photo.jpg\nlost/missing.jpg\n')
    for policy in ('raise', 'skip'):
        ds = _dataset(root, policy, ann_file=str(ann))
        assert ds[0]['inputs'].shape[0] == 3
        with pytest.raises(FileNotFoundError,
                           match=re.escape(str(root / 'lost' / 'missing.jpg'))):
            ds[1]


def _pretrain_cfg(tmp_path, name, hooks=()):
    return derived_config(
        tmp_path / name, TOY_CFG, [dict(type='RecordBatchHook'), *hooks],
        custom_imports=dict(imports=['mmmixmae', 'mmmixmae.engine',
                                     'mmmixmae.datasets.transforms', 'reliability_testkit'],
                            allow_failed_imports=False),
        train_cfg=dict(type='ResumableIterBasedTrainLoop', max_iters=4, _delete_=True),
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(type='AtomicCheckpointHook', interval=4,
                                           by_epoch=False)))


@pytest.mark.slow
def test_pretraining_run_stops_on_bad_file_or_skips_and_counts(bad_folder, tmp_path):
    root, _ = bad_folder
    opts = [f'train_dataloader.dataset.data_root={root}']
    stop = start_train(_pretrain_cfg(tmp_path, 'stop.py'), tmp_path / 'stop', cfg_options=opts)
    # the documented switch, with 2 dataloader workers sharing the skip counter
    skip = start_train(_pretrain_cfg(tmp_path, 'skip.py'), tmp_path / 'skip', cfg_options=opts
                       + ['train_dataloader.dataset.pipeline.0.on_error=skip',
                          'train_dataloader.num_workers=2'])
    (rc_stop, out_stop), (rc_skip, out_skip) = finish(stop), finish(skip)

    assert rc_stop == 1, out_stop[-3000:]
    found = re.search(r'UndecodableImageError: cannot decode image (\S+): ', out_stop)
    assert found and found.group(1) in {str(root / n) for n in BAD}, out_stop[-3000:]

    assert rc_skip == 0, out_skip[-3000:]
    warnings = re.findall(r'LoadImageRobust: skipping (\S+): .*? \((\d+) undecodable image\(s\) '
                          r'skipped so far\)', out_skip)
    assert {p for p, _ in warnings} == {str(root / n) for n in BAD}  # each one was drawn
    counts = sorted(int(c) for _, c in warnings)
    assert counts == list(range(1, len(counts) + 1))  # one counter across both workers
    records = kit.read_records(tmp_path / 'skip' / 'records_rank0.jsonl')
    assert [r['batch_size'] for r in records] == [4, 4, 4, 4]
