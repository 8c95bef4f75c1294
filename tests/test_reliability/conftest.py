"""Fixtures of the reliability tests: folders of crops of the real sample photos."""
import pytest

import reliability_testkit as kit


@pytest.fixture(scope='session')
def photo_folder(tmp_path_factory, shared_data):
    """16 JPEG crops (96 px) of the three real VOC photos, in one flat folder."""
    return kit.build_photo_folder(str(tmp_path_factory.mktemp('photos')), shared_data, 16)


@pytest.fixture(scope='session')
def labelled_folder(tmp_path_factory, shared_data):
    """class_0..2/ with 4 crops each of one real photo per class."""
    return kit.build_labelled_folder(str(tmp_path_factory.mktemp('labelled')), shared_data, 4)
