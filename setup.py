"""Install mmmixmae; ``.mim`` carries configs, tools and model-index.yml for openmim."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    scope = {}
    with open(osp.join(ROOT, 'mmmixmae', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    """Expose configs/, tools/ and model-index.yml under ``mmmixmae/.mim``.

    ``mim train mmmixmae CONFIG`` looks there.  Editable installs get symlinks (edits show up
    at once); wheels and sdists get copies.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'install', 'build', 'build_py')):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(ROOT, 'mmmixmae', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(ROOT, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


def mim_package_data():
    """Every file under mmmixmae/.mim (configs incl. _base_ folders, tools, model-index.yml)."""
    pkg_dir = osp.join(ROOT, 'mmmixmae')
    files = []
    for root, dirs, names in os.walk(osp.join(pkg_dir, '.mim'), followlinks=True):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        files += [osp.relpath(osp.join(root, n), pkg_dir) for n in names if not n.endswith('.pyc')]
    return files


def read_requirements(name: str):
    path = osp.join(ROOT, 'requirements', name)
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


#: requirements/runtime.txt entries that only the dense glue needs (pip extras)
DENSE_EXTRAS = {'det': ('mmdet', ), 'seg': ('mmsegmentation', 'ftfy', 'regex')}


def _name(requirement: str) -> str:
    for sep in ('==', '>=', '<=', '~=', '>', '<', '[', ';', ' '):
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def install_requires():
    """requirements/runtime.txt minus the dense extras (mmengine, mmpretrain, and the
    scikit-image / scikit-learn photos the demo and the k-NN tool use)."""
    dense = {n for names in DENSE_EXTRAS.values() for n in names}
    return [r for r in read_requirements('runtime.txt') if _name(r) not in dense]


def extras_require():
    """``det`` / ``seg`` from requirements/runtime.txt, ``tests`` from requirements/tests.txt."""
    runtime = read_requirements('runtime.txt')
    extras = {extra: [r for r in runtime if _name(r) in names]
              for extra, names in DENSE_EXTRAS.items()}
    extras['tests'] = read_requirements('tests.txt')
    return extras


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmmixmae',
        version=read_version(),
        description='MixMAE (Mixed and Masked Autoencoder) pretraining and dense transfer '
        'on OpenMMLab',
        long_description=open(osp.join(ROOT, 'README.md')).read() if osp.exists(
            osp.join(ROOT, 'README.md')) else '',
        long_description_content_type='text/markdown',
        python_requires='>=3.8',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
        include_package_data=True,
        package_data={'mmmixmae': mim_package_data()},
        # mmcv (full, with ops) is built by tools/install/setup_env.sh; mmcv-lite is enough
        # for the pretraining / classification path, so it is not pinned here.  Every pin
        # comes from requirements/*.txt (tests/test_structure/test_packaging.py checks it).
        install_requires=install_requires(),
        extras_require=extras_require(),
        zip_safe=False)
