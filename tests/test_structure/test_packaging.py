"""setup.py declares exactly what requirements/*.txt lists."""
import os.path as osp
import runpy

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _lines(name):
    with open(osp.join(REPO, 'requirements', name)) as f:
        return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]


def test_install_requires_and_extras_agree_with_the_requirement_files():
    setup = runpy.run_path(osp.join(REPO, 'setup.py'), run_name='not_main')
    core, extras = setup['install_requires'](), setup['extras_require']()
    assert core == ['mmengine==0.10.7', 'mmpretrain==1.2.0', 'scikit-image', 'scikit-learn']
    assert extras['det'] == ['mmdet==3.3.0']
    assert extras['seg'] == ['mmsegmentation==1.2.2', 'ftfy', 'regex']
    assert extras['tests'] == _lines('tests.txt')
    declared = core + extras['det'] + extras['seg']
    assert sorted(declared) == sorted(_lines('runtime.txt'))
    # the mmengine pin is the one every compat patch was written for
    from mmmixmae import compat
    assert all(p.SUPPORTED['mmengine'] == ('0.10.7', ) for p in compat.PATCHES)
