"""Evaluate a checkpoint with an mmengine config (mmpretrain, mmdet or mmseg scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULT.pkl]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import os.path as osp
import sys

try:
    import mmmixmae  # noqa: F401  (first: applies mmmixmae.compat)
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmmixmae  # noqa: F401

from mmmixmae.compat import apply_compat
from mmmixmae.utils.cli import test_main

apply_compat()


def main(argv=None):
    test_main(argv)


if __name__ == '__main__':
    main()
