"""pix2pix (Isola et al., 2017): paired image-to-image translation with a conditional GAN.

G is a U-Net (gax/models/unet.py) from the input image x to an output y'; D is a PatchGAN
on the channel-wise pair (x, y) against (x, y'). D minimises half the adversarial loss,
as the paper does to slow D; G minimises the adversarial loss plus `loss.l1_weight`
(lambda = 100) times the L1 distance to the true y. Dropout is G's only noise, kept on
when sampling as in the paper (`model.dropout_at_eval`).

`task` says what the pair is:
- "a_to_b" / "b_to_a": a paired dataset's two images ("image" is A, "image_b" is B; a
  folder of A/ and B/ or of side-by-side AB images, see gax/data/folders.py);
- "complete_top_half": Goodfellow et al.'s conditional modelling p(x_notS | x_S), the
  image's top half given, the rest black (zero pixels), and the whole image the target.
  Its evaluation adds `completion_accuracy`, the digit classifier's accuracy on the
  completions against their true labels, beside `top_half_accuracy`, the classifier's
  accuracy on the inputs themselves.

Evaluation, on the held-out split (`eval.split`): L1 (in [0, 1] pixel units) and PSNR
(dB) against the targets, and FID of the outputs against the held-out targets.
"""

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gax import config_base, errors
from gax.data import datasets as data_lib
from gax.evaluation import batching, evaluator, metrics
from gax.models.cyclegan import PatchDiscriminator
from gax.models.unet import UNetGenerator
from gax.variants import base, losses
from gax.variants import ema as ema_lib

Array = jax.Array
Pytree = Any
HPARAMS = {"loss.l1_weight": "l1_weight"}
TASKS = ("a_to_b", "b_to_a", "complete_top_half")
_SAMPLE_KEY = 0x70327032  # the sample grid's fixed dropout key ("p2p2")


def add_defaults(config: ml_collections.ConfigDict) -> None:
  """The paper's 256x256 networks and losses; the data names its paired dataset."""
  config.task = "a_to_b"
  config.model = ml_collections.ConfigDict(dict(
      ngf=64, ndf=64,
      num_downs=8,  # U-Net depth: 256 -> 1x1
      num_dropout=3,  # decoder layers below the bottleneck with dropout 0.5
      num_layers=3,  # PatchGAN depth: 3 is the 70x70 PatchGAN
      dropout_at_eval=True,  # the paper keeps dropout on when sampling
  ))
  config.loss = ml_collections.ConfigDict(dict(
      name="non_saturating",  # the paper's "vanilla" GAN loss; least_squares also works
      l1_weight=100.0,  # lambda
  ))
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = 1
  config.eval.parzen = False
  config.health.real_examples = 0  # D scores patches of pairs, not single images


RULES = [
    *((f"model.{name}", config_base.at_least(1), "must be >= 1") for name in (
        "ngf", "ndf", "num_layers")),
    ("model.num_downs", config_base.at_least(1), "must be >= 1 (U-Net levels)"),
    ("model.num_dropout", config_base.at_least(0), "must be >= 0"),
    ("model.dropout_at_eval", lambda v: isinstance(v, bool), "must be True or False"),
    ("loss.l1_weight", config_base.at_least(0), "must be >= 0"),
]


def validate(config: ml_collections.ConfigDict) -> None:
  config_base.check_choice("task", config.task, TASKS)
  config_base.check_choice("loss.name", config.loss.name, losses.LOSS_NAMES)
  config_base.check_rules(config, RULES)


def tiny(config: ml_collections.ConfigDict) -> None:
  config.batch_size = 2
  config.model.update(ngf=8, ndf=8, num_downs=5, num_layers=2)
  if config.data.crop_size:
    config.data.image_size, config.data.crop_size = 36, 32


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  source = data_lib.Source(config.dataset, "train")
  if config.task == "complete_top_half":
    return {"target": data_lib.Field(source, "image")}
  a, b = data_lib.Field(source, "image"), data_lib.Field(source, "image_b")
  return {"input": a, "target": b} if config.task == "a_to_b" else {"input": b, "target": a}


def hide_bottom(images: Array, visible_rows: int) -> Array:
  """Images in [-1, 1] with every row from `visible_rows` down set to black (-1)."""
  rows = jnp.arange(images.shape[1])[None, :, None, None]
  return jnp.where(rows < visible_rows, images, -1.0)


@dataclasses.dataclass(frozen=True)
class Pix2Pix:
  generator: nn.Module
  discriminator: nn.Module
  loss: losses.AdversarialLoss
  input_shape: tuple[int, int, int]
  target_shape: tuple[int, int, int]
  task: str = "a_to_b"
  l1_weight: float = 100.0
  dropout_at_eval: bool = True

  name: ClassVar[str] = "pix2pix"
  reuses_fake: ClassVar[bool] = False
  sampler: ClassVar[None] = None  # it translates images; it does not draw from noise
  scorer: ClassVar[None] = None  # D scores patches of pairs

  @property
  def best_metric(self) -> base.BestMetric:
    if self.task == "complete_top_half":
      return base.BestMetric("completion_accuracy", higher_is_better=True)
    return base.BestMetric("l1")

  @property
  def visible_rows(self) -> int:
    return self.target_shape[0] // 2

  def with_hparams(self, hparams: dict[str, Array]) -> "Pix2Pix":
    return dataclasses.replace(self, l1_weight=hparams["l1_weight"])

  def init(self, key: Array) -> tuple[Pytree, Pytree]:
    g_key, d_key = jax.random.split(key)
    x = jnp.zeros((1, *self.input_shape))
    pair = jnp.zeros((1, *self.target_shape[:2], self.input_shape[-1] + self.target_shape[-1]))
    params = {"generator": self.generator.init(g_key, x, deterministic=True)["params"],
              "discriminator": self.discriminator.init(d_key, pair)["params"]}
    return params, {"generator": {}, "discriminator": {}}

  def inputs(self, batch: dict[str, Array]) -> Array:
    """G's input: the paired image, or the target with its bottom half hidden."""
    if self.task == "complete_top_half":
      return hide_bottom(batch["target"], self.visible_rows)
    return batch["input"]

  def translate(self, params, batch_stats, inputs: Array, key: Array,
                training: bool = False) -> Array:
    """G's outputs in [-1, 1] for inputs in [-1, 1]: as at test time, or (`training`)
    with dropout on whatever `dropout_at_eval` says."""
    del batch_stats  # instance normalisation keeps no statistics
    return self.generator.apply({"params": params["generator"]}, inputs,
                                deterministic=not (training or self.dropout_at_eval),
                                rngs={"dropout": key})

  def _d(self, params, inputs: Array, outputs: Array) -> Array:
    return self.discriminator.apply({"params": params["discriminator"]},
                                    jnp.concatenate([inputs, outputs], axis=-1))

  def discriminator_loss(self, params, batch_stats, batch, key, fake=None, iteration=0):
    del batch_stats, fake, iteration  # reuses_fake is False
    inputs = self.inputs(batch)
    outputs = jax.lax.stop_gradient(self.translate(params, None, inputs, key, training=True))
    real, fake_out = self._d(params, inputs, batch["target"]), self._d(params, inputs,
                                                                      outputs)
    loss = 0.5 * self.loss.discriminator(real, fake_out)
    return loss, ({}, {"d_loss": loss,
                       "d_real": jnp.mean(self.loss.output_to_score(real)),
                       "d_fake": jnp.mean(self.loss.output_to_score(fake_out))})

  def generator_loss(self, params, batch_stats, batch, key):
    del batch_stats
    inputs = self.inputs(batch)
    outputs = self.translate(params, None, inputs, key, training=True)
    adversarial = self.loss.generator(self._d(params, inputs, outputs))
    l1 = jnp.mean(jnp.abs(outputs - batch["target"]))
    loss = adversarial + self.l1_weight * l1
    return loss, ({}, {"g_loss": loss, "g_adversarial": adversarial, "g_l1": l1})

  def sample_inputs(self, key: Array, count: int, examples) -> dict[str, Array]:
    """Fixed held-in pairs, a third of the grid's count (rows: input, output, target)."""
    del key
    columns = self.grid_columns(count)
    target = data_lib.to_model_range(examples("target", columns))
    if self.task == "complete_top_half":
      return {"input": hide_bottom(target, self.visible_rows), "target": target}
    return {"input": data_lib.to_model_range(examples("input", columns)), "target": target}

  def sample(self, params, batch_stats, inputs) -> Array:
    outputs = self.translate(params, batch_stats, inputs["input"],
                             jax.random.PRNGKey(_SAMPLE_KEY))
    shown = inputs["input"]
    if shown.shape[-1] != outputs.shape[-1]:  # a grey input beside colour outputs
      shown = jnp.broadcast_to(shown[..., :1], outputs.shape)
    return jnp.concatenate([shown, outputs, inputs["target"]])

  def grid_columns(self, count: int) -> int:
    return max(1, count // 3)

  def create_evaluator(self, config: ml_collections.ConfigDict) -> "Pix2PixEvaluation":
    return Pix2PixEvaluation(config, self)


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> Pix2Pix:
  model, dtype = config.model, jnp.dtype(config.dtype)
  target_shape = tuple(info.field_shapes["target"])
  input_shape = tuple(info.field_shapes.get("input", target_shape))
  if input_shape[:2] != target_shape[:2]:
    raise errors.DataError(f"the pairs' images differ in size ({input_shape[:2]} and "
                             f"{target_shape[:2]}); set data.image_size")
  generator = UNetGenerator(target_shape[-1], model.ngf, model.num_downs, model.num_dropout,
                            dtype=dtype)
  discriminator = PatchDiscriminator(model.ndf, model.num_layers, dtype)
  return Pix2Pix(generator, discriminator, losses.get_adversarial_loss(config.loss.name),
                 input_shape, target_shape, config.task, config.loss.l1_weight,
                 model.dropout_at_eval)


def psnr(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """Per-image PSNR in dB of images in [-1, 1], on the [0, 1] pixel scale (peak 1)."""
  mse = np.mean(((outputs - targets) / 2.0) ** 2, axis=(1, 2, 3))
  return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))


def _side(dataset: data_lib.ImageDataset, feature: str) -> data_lib.ImageDataset:
  """One image of each pair as a dataset of its own (the targets, for FID)."""
  if feature == "image":
    return dataset
  return dataclasses.replace(dataset, images=dataset.images_b, images_b=None)


class Pix2PixEvaluation:
  """Translates the held-out inputs and compares the outputs with their targets."""

  def __init__(self, config: ml_collections.ConfigDict, variant: Pix2Pix):
    self.config, self.variant = config, variant
    spec = batch_spec(config)
    target_feature = spec["target"].feature
    train = data_lib.load_source(config.data, data_lib.Source(config.dataset, "train"))
    held_out = data_lib.load_source(config.data,
                                    data_lib.Source(config.dataset, config.eval.split))
    count = min(config.eval.num_samples, len(held_out))
    self.targets = np.asarray(_side(held_out, target_feature).images[:count])
    self.inputs = (self.targets if variant.task == "complete_top_half" else
                   np.asarray(_side(held_out, spec["input"].feature).images[:count]))
    self.labels = None if held_out.labels is None else held_out.labels[:count]
    if variant.task == "complete_top_half" and self.labels is None:
      raise errors.DataError(f"completion accuracy needs class labels, and "
                               f"{config.dataset!r} ({config.eval.split}) has none")
    target_train, target_held_out = _side(train, target_feature), _side(held_out,
                                                                        target_feature)
    self.evaluator = evaluator.dataset_evaluator(config, target_train, target_held_out)
    self._translate = jax.jit(variant.translate)
    self._inputs = jax.jit(variant.inputs)

  def _model_inputs(self, images: np.ndarray) -> Array:
    field = "target" if self.variant.task == "complete_top_half" else "input"
    return self._inputs({field: data_lib.to_model_range(images)})

  def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
    params, batch_stats = ema_lib.generator_state(state)
    key = jax.random.PRNGKey(self.config.seed)

    def translate(rows: slice):
      model_inputs = self._model_inputs(self.inputs[rows])
      return model_inputs, self._translate(params, batch_stats, model_inputs,
                                           jax.random.fold_in(key, rows.start))

    inputs, outputs = batching.in_batches(translate, len(self.inputs),
                                          self.config.eval.batch_size)
    targets = np.asarray(data_lib.to_model_range(self.targets))
    features, probs = self.evaluator.features(outputs)
    result = {"l1": float(np.mean(np.abs(outputs - targets)) / 2.0),
              "psnr": float(np.mean(psnr(outputs, targets))),
              "fid": metrics.fid(features, self.evaluator.held_out_features),
              "fid_real_floor": self.evaluator.real_floor()["fid"],
              "num_samples": len(outputs)}
    if self.variant.task == "complete_top_half":
      hidden = slice(self.variant.visible_rows, None)
      result["l1_hidden_rows"] = float(np.mean(np.abs(
          outputs[:, hidden] - targets[:, hidden])) / 2.0)
    if self.labels is not None and probs is not None and (
        probs.shape[1] == self.evaluator.held_out.num_classes):
      name = ("completion_accuracy" if self.variant.task == "complete_top_half"
              else "label_accuracy")
      result[name] = float(np.mean(probs.argmax(1) == self.labels))
      if self.variant.task == "complete_top_half":
        _, input_probs = self.evaluator.features(inputs)
        result["top_half_accuracy"] = float(np.mean(input_probs.argmax(1) == self.labels))
      result["classifier_accuracy"] = self.evaluator.classifier_accuracy
    return result
