"""The version guard every compat patch calls before it touches anything."""
from __future__ import annotations

from typing import Dict, Sequence

__all__ = ['MARK', 'CompatVersionError', 'installed_versions', 'check_versions']

#: attribute set on every function a patch installs (makes ``apply()`` idempotent)
MARK = '_mmmixmae_compat_patched'


class CompatVersionError(RuntimeError):
    """A compat patch meets a library version it was not written for."""


def installed_versions() -> Dict[str, str]:
    """``{'mmengine': '0.10.7', 'torch': '2.14.1+cu130'}`` of this environment."""
    import mmengine
    import torch
    return dict(mmengine=mmengine.__version__, torch=torch.__version__)


def _matches(version: str, known: str) -> bool:
    """``'2.14.1+cu130'`` matches ``'2.14'`` and ``'2.14.1'``; ``'2.15.0'`` matches neither."""
    release = version.split('+')[0].split('.')
    return release[:len(known.split('.'))] == known.split('.')


def check_versions(patch: str, supported: Dict[str, Sequence[str]],
                   installed: Dict[str, str] = None) -> None:
    """Refuse to patch a library whose version is not in ``supported``.

    Args:
        patch: the patch module's name, for the message.
        supported: package -> known versions (a prefix such as ``'2.14'`` covers its
            patch releases).
        installed: for tests; defaults to :func:`installed_versions`.

    Raises:
        CompatVersionError: naming the patch, the package, the version found and the known
            ones.  The patch must then be re-checked against that version's source: it may
            be unnecessary there, or wrong.
    """
    installed = installed_versions() if installed is None else installed
    for package, known in supported.items():
        found = installed[package]
        if not any(_matches(found, k) for k in known):
            raise CompatVersionError(
                f'{patch} was written for {package} {", ".join(known)} but {package} '
                f'{found} is installed; check that version\'s source, then extend '
                f'{patch}.SUPPORTED or drop the patch')
