"""tools/analysis_tools/knn_linear_probe.py and mmmixmae.apis.feature_eval."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.tools import load_tool
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TOY_CONFIG = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'
CLASSES = ('astronaut', 'coffee', 'chelsea', 'rocket')



@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/knn_linear_probe')


@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory):
    """ImageNet-style folder: one class per packaged photo, 10 random crops of it per class."""
    from mmmixmae.datasets import packaged_photo_paths, read_photo
    root = tmp_path_factory.mktemp('photos_by_class')
    rng = np.random.default_rng(0)
    for name, path in packaged_photo_paths(CLASSES).items():
        img = read_photo(path, 256, channel_order='rgb')
        h, w = img.shape[:2]
        (root / name).mkdir()
        for i in range(10):
            s = int(rng.integers(64, min(h, w) + 1))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            crop = Image.fromarray(img[y:y + s, x:x + s]).resize((72, 72), Image.BICUBIC)
            crop.save(root / name / f'{i:02d}.png')
    return root


def test_knn_votes_by_hand():
    from mmmixmae.apis.feature_eval import knn_predict
    train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1])
    test = np.array([[1.0, 0.2]])
    scores = knn_predict(train, labels, test, num_classes=2, k=2, temperature=0.5)
    t = test[0] / np.linalg.norm(test[0])
    cos = [t @ (v / np.linalg.norm(v)) for v in train]  # 0.981, 0.196, 0.832
    # the two nearest are train 0 (class 0) and train 2 (class 1)
    assert scores[0, 0] == pytest.approx(math.exp(cos[0] / 0.5))
    assert scores[0, 1] == pytest.approx(math.exp(cos[2] / 0.5))
    # with k=3 the far class-1 sample joins the vote
    scores3 = knn_predict(train, labels, test, num_classes=2, k=3, temperature=0.5)
    assert scores3[0, 1] == pytest.approx(math.exp(cos[1] / 0.5) + math.exp(cos[2] / 0.5))


def test_split_is_per_class_and_deterministic(photo_folder):
    from mmmixmae.apis.feature_eval import scan_labelled_folder
    classes, train, val = scan_labelled_folder(str(photo_folder), val_fraction=0.3, seed=0)
    assert classes == sorted(CLASSES)
    assert len(train) == 4 * 7 and len(val) == 4 * 3
    assert not {p for p, _ in train} & {p for p, _ in val}
    for label, name in enumerate(classes):
        assert all(Path(p).parent.name == name for p, lbl in train + val if lbl == label)
    assert scan_labelled_folder(str(photo_folder), 0.3, 0)[2] == val
    assert scan_labelled_folder(str(photo_folder), 0.3, 1)[2] != val


def test_probe_on_photo_crops_beats_chance(tool, photo_folder, toy_checkpoint, tmp_path,
                                           capsys):
    out = tmp_path / 'res.json'
    res = tool.main([str(TOY_CONFIG), str(toy_checkpoint), str(photo_folder), '--k', '5',
                     '--out', str(out)])
    text = capsys.readouterr().out
    assert res['num_classes'] == 4 and res['num_train'] == 28 and res['num_val'] == 12
    assert res['chance'] == 0.25
    assert res['feature_dim'] == 128 and res['size'] == 64
    # every backbone tensor came from the checkpoint, the decoder's were ignored
    assert res['loaded_keys'] == 68 and res['ignored_keys'] > 0
    # crops of four different photographs are told apart from frozen features
    assert res['knn_top1'] >= 0.6
    assert res['linear_top1'] >= 0.6
    assert json.loads(out.read_text())['knn_top1'] == res['knn_top1']
    assert 'k-NN (k=5, T=0.07) top-1' in text and 'linear probe' in text
    # the features come from the checkpoint: other weights give other features and scores
    from mmmixmae.apis.common import load_tool_config
    from mmmixmae.apis.feature_eval import extract_features
    backbone = tool.build_backbone(load_tool_config(str(TOY_CONFIG)), 'toy')
    img = [str(next((photo_folder / 'coffee').iterdir()))]
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    random_feats = extract_features(backbone, img, 64, mean, std)
    from mmmixmae.apis.common import load_backbone_weights
    load_backbone_weights(backbone, str(toy_checkpoint))
    loaded_feats = extract_features(backbone, img, 64, mean, std)
    assert not np.allclose(random_feats, loaded_feats)


def test_user_errors(tool, photo_folder, toy_checkpoint, tmp_path, capsys):
    from mmmixmae.apis.common import run_tool

    def err(argv):
        with pytest.raises(SystemExit) as exc:
            run_tool(tool.main, prog='knn_linear_probe.py')(argv)
        assert exc.value.code == 2
        return capsys.readouterr().err

    cfg, ckpt = str(TOY_CONFIG), str(toy_checkpoint)
    assert 'data folder not found' in err([cfg, ckpt, str(tmp_path / 'nowhere')])
    one = tmp_path / 'one_class'
    (one / 'a').mkdir(parents=True)
    Image.new('RGB', (40, 40)).save(one / 'a' / 'x.png')
    Image.new('RGB', (40, 40)).save(one / 'a' / 'y.png')
    assert 'at least two class sub-folders' in err([cfg, ckpt, str(one)])
    assert '--k 50 is larger than the 28 training images' in err(
        [cfg, ckpt, str(photo_folder), '--k', '50'])
    head_only = tmp_path / 'head_only.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(2, 2)}}, head_only)
    assert 'does not fit the MixMAESwin backbone' in err([cfg, str(head_only), str(photo_folder),
                                                      '--k', '5'])
    # an undecodable image inside the folder is named
    bad = tmp_path / 'bad'
    for c in ('a', 'b'):
        (bad / c).mkdir(parents=True)
        for i in range(3):
            Image.new('RGB', (40, 40), (i * 40, 0, 0)).save(bad / c / f'{i}.png')
    (bad / 'b' / '9.png').write_bytes(b'garbage')
    message = err([cfg, ckpt, str(bad), '--k', '1'])
    assert 'cannot decode image' in message and '9.png' in message


def test_random_init_baseline(tool, photo_folder, toy_checkpoint, capsys):
    """--random-init evaluates the untrained backbone, seeded: the baseline of a checkpoint."""
    argv = [str(TOY_CONFIG), '--random-init', str(photo_folder), '--k', '5']
    res = tool.main(argv)
    assert 'random initialisation, no checkpoint' in capsys.readouterr().out
    assert res['loaded_keys'] == 0 and res['num_val'] == 12
    # the same seed gives the same initialisation, so the same features and scores
    again = tool.main(argv)
    assert (again['knn_top1'], again['linear_top1']) == (res['knn_top1'], res['linear_top1'])
    # the features are the initialisation's, not a checkpoint's: compare with init_weights
    from mmmixmae.apis.common import load_tool_config
    from mmmixmae.apis.feature_eval import extract_features
    img = [str(next((photo_folder / 'coffee').iterdir()))]
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    feats = {}
    for name, seed in (('seed0', 0), ('seed0_again', 0), ('seed1', 1)):
        torch.manual_seed(seed)
        backbone = tool.build_backbone(load_tool_config(str(TOY_CONFIG)), 'toy')
        tool._quiet_init_weights(backbone)
        feats[name] = extract_features(backbone, img, 64, mean, std)
    assert np.array_equal(feats['seed0'], feats['seed0_again'])
    assert not np.allclose(feats['seed0'], feats['seed1'])
    from mmmixmae.apis.common import load_backbone_weights
    load_backbone_weights(backbone, str(toy_checkpoint))
    assert not np.allclose(extract_features(backbone, img, 64, mean, std), feats['seed1'])


def test_random_init_argument_errors(tool, photo_folder, toy_checkpoint, capsys):
    from mmmixmae.apis.common import run_tool

    def err(argv):
        with pytest.raises(SystemExit) as exc:
            run_tool(tool.main, prog='knn_linear_probe.py')(argv)
        assert exc.value.code == 2
        return capsys.readouterr().err

    cfg = str(TOY_CONFIG)
    assert '--random-init takes no CHECKPOINT' in err(
        [cfg, str(toy_checkpoint), str(photo_folder), '--random-init'])
    assert 'give CONFIG CHECKPOINT DATA_DIR, or CONFIG --random-init DATA_DIR' in err(
        [cfg, str(photo_folder)])
