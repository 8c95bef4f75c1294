"""mmmixmae: MixMAE pretraining and transfer on the OpenMMLab stack.

Importing the package applies the torch>=2.6 / CPU compatibility fixes of
:mod:`mmmixmae.compat` (version-guarded) and registers the MixMAE modules in mmpretrain's registry
(``MixMAE``, ``MixMAESwin``, ``MixMAEDecoder``, ``MixMAEPretrainHead`` ...).  mmdet and mmseg
glue lives in :mod:`mmmixmae.det` and :mod:`mmmixmae.seg`, imported by their configs.
"""
from .version import __version__
from .utils.third_party_logs import quiet_third_party_logs

quiet_third_party_logs()  # before mmengine imports deepspeed (see the module)

from .compat import apply_compat  # noqa: E402

apply_compat()  # the one place the mmengine patches are applied (see mmmixmae.compat)

from . import models  # noqa: E402,F401  (registers the modules)

__all__ = ['__version__', 'models']
