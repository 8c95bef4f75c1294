"""Fixtures of the reliability tests: folders of crops of the real sample photos."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `import reliability_testkit`, `import rel_helpers`
    sys.path.insert(0, str(HERE))

import reliability_testkit as kit  # noqa: E402


@pytest.fixture(scope='session')
def photo_folder(tmp_path_factory, shared_data):
    """16 JPEG crops (96 px) of the three real VOC photos, in one flat folder."""
    return kit.build_photo_folder(str(tmp_path_factory.mktemp('photos')), shared_data, 16)


@pytest.fixture(scope='session')
def labelled_folder(tmp_path_factory, shared_data):
    """class_0..2/ with 4 crops each of one real photo per class."""
    return kit.build_labelled_folder(str(tmp_path_factory.mktemp('labelled')), shared_data, 4)
