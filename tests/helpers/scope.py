"""An autouse fixture for test folders whose tests build models from mmpretrain's registry."""
import pytest

__all__ = ['mmpretrain_scope']


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Build in mmpretrain's scope whatever ran before.

    A Runner (or a tool calling ``init_default_scope``) in an earlier test leaves its scope, e.g.
    mmdet's or mmengine's, as the process-wide current one; registry builds would then look in
    the wrong registry.
    """
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield
