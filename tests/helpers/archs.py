"""The tiny MixMAESwin archs the tests build (one definition each, shared by every test).

``TOY``: 16 channels, depths 1-1-2-1 (a stage with two blocks, so block order matters);
``TOY_FLAT``: 16 channels, one block per stage (the cheapest model that has all four stages).
Both use 1-2-2-4 heads.  Tests copy them (``dict(TOY)``) before changing anything.
"""
__all__ = ['TOY', 'TOY_FLAT']

TOY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])
TOY_FLAT = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])
