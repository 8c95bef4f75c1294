from .mixmae_head import MixMAEPretrainHead, patchify, unpatchify

__all__ = ['MixMAEPretrainHead', 'patchify', 'unpatchify']
