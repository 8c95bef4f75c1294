"""Train a model from an mmengine config (mmpretrain, mmdet or mmseg scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Distributed: ``python -m torch.distributed.run --nproc_per_node=N tools/train.py
CONFIG --launcher pytorch`` (or tools/dist_train.sh); on CPU it uses gloo.
"""
import os.path as osp
import sys

try:
    import mmmixmae  # noqa: F401  (first: applies mmmixmae.compat)
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmmixmae  # noqa: F401

from mmmixmae.compat import apply_compat
from mmmixmae.utils.cli import train_main

apply_compat()


def main(argv=None):
    train_main(argv)


if __name__ == '__main__':
    main()
