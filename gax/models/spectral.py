"""Spectral normalisation (Miyato et al. 2018): a layer's kernel divided by its largest
singular value, estimated by one power iteration per call.

flax's `nn.SpectralNorm` wraps the layer: its parameters keep their names, and the
power-iteration vector u and the estimate sigma live in the "batch_stats" collection, so
they are part of the train state, checkpointed, and advance only in training mode. A
convolution's kernel is normalised as the matrix [kh * kw * in, out], as Miyato et al.
do.
"""

import functools
from collections.abc import Callable

import flax.linen as nn


def normalized(layer: nn.Module, enabled: bool, train: bool) -> Callable:
  """`layer`, spectrally normalised when `enabled` (u advances when `train`)."""
  if not enabled:
    return layer
  return functools.partial(nn.SpectralNorm(layer), update_stats=train)
