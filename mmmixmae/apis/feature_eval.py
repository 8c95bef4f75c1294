"""Frozen-feature evaluation: weighted k-NN and a linear probe on a labelled image folder.

The folder follows the ImageNet layout, one sub-folder per class::

    DATA_DIR/<class>/<image>            (split into train/val here, per class)
    DATA_DIR/{train,val}/<class>/<image> (given split)

Features are the backbone's last stage after its final LayerNorm, average-pooled over the
tokens, computed on a centre crop (resize the shorter side to ``size / crop_ratio``, crop
``size``), normalized with the config's mean and std.

* k-NN (InstDisc / DINO): features are L2-normalized; each validation image takes its ``k``
  most cosine-similar training images, each votes for its class with weight
  ``exp(similarity / T)``, the class with the largest total wins.
* linear probe: multinomial logistic regression (scikit-learn, L-BFGS) on the standardized
  training features (per-dimension mean and standard deviation of the training set), with
  inverse regularization strength ``C``.
"""
import os
import os.path as osp
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .common import ToolError, read_rgb

__all__ = ['IMAGE_EXTENSIONS', 'scan_labelled_folder', 'load_eval_image', 'extract_features',
           'knn_predict', 'linear_probe_predict', 'evaluate_features']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


def _class_files(folder: str) -> Dict[str, List[str]]:
    classes = sorted(d for d in os.listdir(folder)
                     if osp.isdir(osp.join(folder, d)) and not d.startswith('.'))
    out = {}
    for c in classes:
        files = []
        for dirpath, _, names in sorted(os.walk(osp.join(folder, c))):
            files += [osp.join(dirpath, n) for n in sorted(names)
                      if n.lower().endswith(IMAGE_EXTENSIONS)]
        out[c] = files
    return out


def scan_labelled_folder(root: str, val_fraction: float = 0.3, seed: int = 0
                         ) -> Tuple[List[str], List[Tuple[str, int]], List[Tuple[str, int]]]:
    """``(classes, train [(path, label)], val [(path, label)])``.

    With ``root/train`` and ``root/val`` those are used (same class names required); otherwise
    every class folder is shuffled with ``seed`` and its first ``ceil(val_fraction * n)``
    images go to validation (at least one image must stay on each side).
    """
    if not osp.isdir(root):
        raise ToolError(f'data folder not found: {root}')
    if osp.isdir(osp.join(root, 'train')) and osp.isdir(osp.join(root, 'val')):
        train_files = _class_files(osp.join(root, 'train'))
        val_files = _class_files(osp.join(root, 'val'))
        if sorted(train_files) != sorted(val_files):
            raise ToolError(f'{root}/train and {root}/val have different class folders: '
                            f'{sorted(train_files)} vs {sorted(val_files)}')
        classes = sorted(train_files)
        splits = {c: (train_files[c], val_files[c]) for c in classes}
    else:
        if not 0.0 < val_fraction < 1.0:
            raise ToolError(f'--val-fraction must lie strictly between 0 and 1, got {val_fraction}')
        files = _class_files(root)
        classes = sorted(files)
        splits = {}
        rng = random.Random(seed)
        for c in classes:
            f = list(files[c])
            rng.shuffle(f)
            n_val = int(np.ceil(val_fraction * len(f)))
            splits[c] = (sorted(f[n_val:]), sorted(f[:n_val]))
    if len(classes) < 2:
        raise ToolError(f'{root} needs at least two class sub-folders (ImageNet layout: '
                        f'{root}/<class>/<image>), found {len(classes)}')
    train, val = [], []
    for label, c in enumerate(classes):
        tr, va = splits[c]
        if not tr or not va:
            raise ToolError(f'class "{c}" in {root} has {len(tr)} training and {len(va)} '
                            'validation images; each side needs at least one')
        train += [(p, label) for p in tr]
        val += [(p, label) for p in va]
    return classes, train, val


def load_eval_image(path: str, size: int, crop_ratio: float = 0.875) -> np.ndarray:
    """Resize the shorter side to ``round(size / crop_ratio)`` (bicubic), crop the centre
    ``size x size``; ``uint8 [size, size, 3]`` RGB."""
    from PIL import Image
    img = read_rgb(path)
    h, w = img.shape[:2]
    short = max(size, int(round(size / crop_ratio)))
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, paths: Sequence[str], size: int,
                     mean: np.ndarray, std: np.ndarray, batch_size: int = 32,
                     crop_ratio: float = 0.875, device: str = 'cpu') -> np.ndarray:
    """``[N, C]`` float32 pooled last-stage features of the images at ``paths``."""
    backbone = backbone.to(device).eval()
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    feats = []
    for i in range(0, len(paths), batch_size):
        imgs = [load_eval_image(p, size, crop_ratio) for p in paths[i:i + batch_size]]
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
        x = ((x - m) / s).to(device)
        out = backbone(x)
        out = out[-1] if isinstance(out, (tuple, list)) else out
        if out.dim() == 4:  # [B, C, H, W] -> pooled
            out = out.mean(dim=(2, 3))
        elif out.dim() == 3:  # [B, L, C]
            out = out.mean(dim=1)
        feats.append(out.float().cpu())
    return torch.cat(feats).numpy()


def knn_predict(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray,
                num_classes: int, k: int = 20, temperature: float = 0.07) -> np.ndarray:
    """Weighted k-NN votes: ``[N_test, num_classes]`` class scores (argmax = prediction)."""
    if k < 1 or k > len(train_feats):
        raise ToolError(f'--k must lie in 1..{len(train_feats)} (the number of training images), '
                        f'got {k}')
    if temperature <= 0:
        raise ToolError(f'--temperature must be positive, got {temperature}')
    tr = torch.nn.functional.normalize(torch.as_tensor(train_feats, dtype=torch.float64), dim=1)
    te = torch.nn.functional.normalize(torch.as_tensor(test_feats, dtype=torch.float64), dim=1)
    sim = te @ tr.T
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    labels = torch.as_tensor(train_labels, dtype=torch.long)[top_idx]
    scores = torch.zeros(len(te), num_classes, dtype=torch.float64)
    scores.scatter_add_(1, labels, weights)
    return scores.numpy()


def linear_probe_predict(train_feats: np.ndarray, train_labels: np.ndarray,
                         test_feats: np.ndarray, C: float = 1.0, max_iter: int = 1000,
                         seed: int = 0) -> np.ndarray:
    """Logistic regression on standardized features: predicted labels of ``test_feats``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    if C <= 0:
        raise ToolError(f'--C must be positive, got {C}')
    scaler = StandardScaler().fit(train_feats)
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(train_feats), train_labels)
    return clf.predict(scaler.transform(test_feats))


def evaluate_features(train_feats: np.ndarray, train_labels: np.ndarray, val_feats: np.ndarray,
                      val_labels: np.ndarray, num_classes: int, k: int = 20,
                      temperature: float = 0.07, C: float = 1.0, max_iter: int = 1000,
                      seed: int = 0) -> dict:
    """Top-1 accuracies (in [0, 1]) of both evaluations, chance and majority baselines."""
    train_labels = np.asarray(train_labels)
    val_labels = np.asarray(val_labels)
    knn = knn_predict(train_feats, train_labels, val_feats, num_classes, k, temperature)
    lin = linear_probe_predict(train_feats, train_labels, val_feats, C, max_iter, seed)
    majority = np.bincount(train_labels, minlength=num_classes).argmax()
    return dict(
        knn_top1=float((knn.argmax(1) == val_labels).mean()),
        linear_top1=float((lin == val_labels).mean()),
        chance=1.0 / num_classes,
        majority=float((val_labels == majority).mean()),
        num_train=int(len(train_labels)),
        num_val=int(len(val_labels)),
        num_classes=int(num_classes))
