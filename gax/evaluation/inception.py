"""The FID InceptionV3 (the 2015-12-05 graph of TF-FID and pytorch-fid) in Flax.

Block for block as pytorch-fid builds it: torchvision's Inception3 with its FIDInceptionA,
FIDInceptionC, FIDInceptionE_1 and FIDInceptionE_2 patches (average pools that leave the
padding out of the mean, and a max pool in the last block's pool branch), no auxiliary
head, and the 1008-way fc layer the weight file holds. Module names follow torchvision's,
so every weight of pytorch-fid's file has one place here (see `inception_weights`).

Images go in as uint8 [N, H, W, C] (C = 1 or 3). They are resized to 299×299, either on
the device as pytorch-fid does (bilinear, `align_corners=False`, no antialiasing) or on the
host as clean-fid does (PIL bicubic on each float channel), and scaled to [-1, 1]. Out come
the 2048-d pool features of FID, KID and precision/recall, and the 1008 logits of IS.
"""

import dataclasses
import functools
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from PIL import Image

from gax import config_base

Array = jax.Array
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
RESIZES = config_base.CHOICES["eval.inception_resize"]


class BasicConv2d(nn.Module):
  """Convolution without bias, batch norm (eps 1e-3, running statistics), ReLU."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = nn.Conv(self.features, self.kernel, (self.stride, self.stride),
                padding=[(p, p) for p in self.padding], use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _average_pool(x: Array) -> Array:
  """3×3, stride 1, padding 1, the padding left out of the mean (TF's pool)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x: Array, stride: int, padding: int = 0) -> Array:
  return nn.max_pool(x, (3, 3), (stride, stride), ((padding, padding),) * 2)


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
    branch5x5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
    branch5x5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
    double = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    double = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
    double = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(double)
    pool = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_average_pool(x))
    return jnp.concatenate([branch1x1, branch5x5, double, pool], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(384, (3, 3), stride=2, name="branch3x3")(x)
    double = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    double = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
    double = BasicConv2d(96, (3, 3), stride=2, name="branch3x3dbl_3")(double)
    return jnp.concatenate([branch3x3, double, _max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    branch1x1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
    single = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
    single = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(single)
    single = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(single)
    double = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
    double = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(double)
    double = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(double)
    double = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(double)
    double = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(double)
    pool = BasicConv2d(192, (1, 1), name="branch_pool")(_average_pool(x))
    return jnp.concatenate([branch1x1, single, double, pool], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
    branch3x3 = BasicConv2d(320, (3, 3), stride=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (3, 3), stride=2, name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (average pool) or, with `max_pool`, FIDInceptionE_2."""

  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
    single = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
    single = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(single),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(single)], axis=-1)
    double = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
    double = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
    double = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(double),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(double)], axis=-1)
    pooled = _max_pool(x, 1, padding=1) if self.max_pool else _average_pool(x)
    pool = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, single, double, pool], axis=-1)


class FIDInceptionV3(nn.Module):
  """[N, 299, 299, 3] in [-1, 1] -> (pool features [N, 2048], logits [N, 1008])."""

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    x = BasicConv2d(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool(x, 2)
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool(x, 2)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, channels in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                           ("Mixed_6e", 192)):
      x = InceptionC(channels, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    features = x.mean(axis=(1, 2))
    return features, nn.Dense(NUM_LOGITS, name="fc")(features)


def variable_shapes() -> dict:
  """The network's variables ({"params", "batch_stats"}) as ShapeDtypeStructs."""
  return jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0),
                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))


def bilinear_matrix(in_size: int, out_size: int = INPUT_SIZE) -> np.ndarray:
  """[out, in] weights of torch's bilinear `interpolate(align_corners=False)` on one axis.

  Source coordinate (o + 0.5) * in / out - 0.5, clamped at 0; its two neighbours (the
  upper one clamped at the edge) weighted linearly. Downsampling is not antialiased,
  exactly as in pytorch-fid.
  """
  source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
  lower = np.floor(source).astype(np.int64)
  upper = np.minimum(lower + 1, in_size - 1)
  weight_upper = source - lower
  matrix = np.zeros((out_size, in_size), np.float64)
  np.add.at(matrix, (np.arange(out_size), lower), 1.0 - weight_upper)
  np.add.at(matrix, (np.arange(out_size), upper), weight_upper)
  return matrix


def pil_bicubic_resize(images: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
  """clean-fid's resize: PIL bicubic on each channel as a float image, clipped to
  [0, 255]; uint8 [N, H, W, C] -> float32 [N, size, size, C] in [0, 255]."""
  out = np.empty((len(images), size, size, images.shape[-1]), np.float32)
  for i, image in enumerate(images):
    for c in range(images.shape[-1]):
      channel = Image.fromarray(image[..., c].astype(np.float32), mode="F")
      out[i, ..., c] = np.asarray(channel.resize((size, size), Image.BICUBIC))
  return np.clip(out, 0.0, 255.0)


def _as_rgb(images: np.ndarray) -> np.ndarray:
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be [N, H, W, 1 or 3], got shape {images.shape}")
  return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


@functools.partial(jax.jit, static_argnames=("model",))
def _forward(model, variables, pixels, rows, columns):
  """pixels: float [B, H, W, 3] in [0, 255]; rows/columns: the resize's matrices, or
  None where the host has already resized."""
  x = pixels / 255.0
  if rows is not None:
    x = jnp.einsum("oh,nhwc->nowc", rows, x, precision="highest")
    x = jnp.einsum("pw,nowc->nopc", columns, x, precision="highest")
  return model.apply(variables, 2.0 * x - 1.0)


def _batches(count: int, size: int) -> Iterator[slice]:
  for start in range(0, count, size):
    yield slice(start, min(start + size, count))


@dataclasses.dataclass
class InceptionFeatures:
  """A feature extractor for gax's evaluation: uint8 images -> (pool features, softmax
  over the 1008 logits). Batches are padded to one shape (one compilation) and split over
  `mesh`'s devices; the weights are replicated."""

  variables: dict
  resize: str = "bilinear"
  batch_size: int = 100
  mesh: Mesh | None = None
  progress: bool = False
  name = "inception"

  def __post_init__(self):
    config_base.check_choice("eval.inception_resize", self.resize, RESIZES)
    self.mesh = self.mesh or Mesh(np.array(jax.devices()), ("data",))
    devices = self.mesh.devices.size
    self.batch_size = -(-self.batch_size // devices) * devices
    self._batch_sharding = NamedSharding(self.mesh, PartitionSpec("data"))
    self.variables = jax.device_put(self.variables, NamedSharding(self.mesh, PartitionSpec()))

  def features_and_logits(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, C] -> (float32 [N, 2048], float32 [N, 1008])."""
    images = _as_rgb(np.asarray(images))
    on_host = self.resize == "pil_bicubic"
    rows, columns = ((None, None) if on_host else
                     (bilinear_matrix(images.shape[1]).astype(np.float32),
                      bilinear_matrix(images.shape[2]).astype(np.float32)))
    features, logits = [], []
    batches = list(_batches(len(images), self.batch_size))
    if self.progress:
      import tqdm  # noqa: PLC0415 (only the command line shows a bar)
      batches = tqdm.tqdm(batches, unit="batch", desc="InceptionV3")
    for rows_slice in batches:
      chunk = images[rows_slice]
      pixels = pil_bicubic_resize(chunk) if on_host else chunk.astype(np.float32)
      padded = np.zeros((self.batch_size, *pixels.shape[1:]), np.float32)
      padded[:len(chunk)] = pixels
      f, lg = _forward(FIDInceptionV3(), self.variables,
                       jax.device_put(padded, self._batch_sharding), rows, columns)
      features.append(np.asarray(f)[:len(chunk)])
      logits.append(np.asarray(lg)[:len(chunk)])
    if not features:
      return np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, NUM_LOGITS), np.float32)
    return np.concatenate(features), np.concatenate(logits)

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features, logits = self.features_and_logits(images)
    return features, probabilities(logits)


def probabilities(logits: np.ndarray) -> np.ndarray:
  """Softmax over the 1008 logits in float64 (what the Inception Score reads)."""
  logits = logits.astype(np.float64)
  probs = np.exp(logits - logits.max(axis=1, keepdims=True))
  return probs / probs.sum(axis=1, keepdims=True)
