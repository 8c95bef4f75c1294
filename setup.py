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
        # for the pretraining / classification path, so it is not pinned here.
        install_requires=['mmengine>=0.10.0,<1.0.0', 'mmpretrain>=1.2.0,<1.3.0'],
        extras_require={
            'det': ['mmdet>=3.3.0,<3.4.0'],
            'seg': ['mmsegmentation>=1.2.2,<1.3.0', 'ftfy', 'regex'],
            'tests': read_requirements('tests.txt'),
        },
        zip_safe=False)
