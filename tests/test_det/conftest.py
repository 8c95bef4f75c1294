import pytest

from helpers.dense import pretrained_toy_checkpoint, restore_default_scope


@pytest.fixture(scope='session')
def mixmae_toy_pretrained(shared_data, tmp_path_factory):
    """The demo backbone pretrained with MixMAE on the sample photos (once per session)."""
    return pretrained_toy_checkpoint(str(tmp_path_factory.getbasetemp()), shared_data)


@pytest.fixture(autouse=True)
def _no_leftover_default_scope():
    """A Runner makes its scope (mmdet / mmseg) the process-wide default; drop it after the
    test so that later tests building from mmpretrain's registry are not affected."""
    with restore_default_scope():
        yield
