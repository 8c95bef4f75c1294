"""Every test here builds in mmpretrain's scope (helpers.scope)."""
from helpers.scope import mmpretrain_scope  # noqa: F401  (autouse fixture)
