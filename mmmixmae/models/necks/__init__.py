from .mixmae_decoder import MixMAEDecoder

__all__ = ['MixMAEDecoder']
