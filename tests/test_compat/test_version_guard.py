"""Every compat patch refuses an mmengine / torch version it was not written for."""
import pytest

from mmmixmae import compat
from mmmixmae.compat import CompatVersionError, check_versions
from mmmixmae.compat._guard import installed_versions


def test_every_patch_names_its_versions_and_accepts_this_environment():
    assert [p.__name__.rsplit('.', 1)[1] for p in compat.PATCHES] == [
        'checkpoint_loader', 'init_dist', 'wrap_model', 'amp_optim_wrapper', 'mmcv_lowp', 'fsdp',
        'deepspeed_strategy']
    here = installed_versions()
    for patch in compat.PATCHES:
        assert set(patch.SUPPORTED) == {'mmengine', 'torch'}
        check_versions(patch.__name__, patch.SUPPORTED, here)  # no error


@pytest.mark.parametrize('package,found', [('mmengine', '0.10.8'), ('mmengine', '0.1.7'),
                                           ('torch', '2.15.0'), ('torch', '2.1.4+cpu')])
def test_an_unknown_version_fails_loudly(package, found):
    versions = dict(installed_versions(), **{package: found})
    for patch in compat.PATCHES:
        with pytest.raises(CompatVersionError) as info:
            check_versions(patch.__name__, patch.SUPPORTED, versions)
        message = str(info.value)
        assert patch.__name__ in message and f'{package} {found} is installed' in message


def test_apply_checks_the_version_before_patching(monkeypatch):
    from mmengine.dist import utils as dist_utils
    from mmmixmae.compat import _guard, init_dist
    before = dist_utils._init_dist_pytorch
    monkeypatch.setattr(_guard, 'installed_versions',
                        lambda: dict(mmengine='0.11.0', torch='2.14.1'))
    with pytest.raises(CompatVersionError, match='mmengine 0.11.0 is installed'):
        init_dist.apply()
    assert dist_utils._init_dist_pytorch is before


def test_patch_releases_and_local_tags_match_the_known_minor():
    assert _ok('2.14.1+cu130', '2.14') and _ok('2.14', '2.14') and _ok('0.10.7', '0.10.7')
    assert not _ok('2.140.0', '2.14') and not _ok('0.10.70', '0.10.7')


def _ok(found, known):
    from mmmixmae.compat._guard import _matches
    return _matches(found, known)
