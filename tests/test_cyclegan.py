"""CycleGAN: the image pool, the losses by hand, network shapes, data, resume, evaluation."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import load_config, read_metrics, tiny

from gax import errors
from gax.models import cyclegan as networks
from gax.training import train
from gax.variants import cyclegan


def test_pool_passes_the_first_fifty_then_swaps_half_at_random():
  pool = cyclegan.empty_pool(50, (2, 2, 1))
  images = jnp.arange(120, dtype=jnp.float32)[:, None, None, None] * jnp.ones((1, 2, 2, 1))
  key = jax.random.PRNGKey(0)
  pool, returned = cyclegan.query_pool(pool, images[:50], key)
  np.testing.assert_array_equal(returned, images[:50])  # filling: returned unchanged
  np.testing.assert_array_equal(pool["images"], images[:50])
  assert int(pool["count"]) == 50
  full = pool
  later, returned = cyclegan.query_pool(full, images[50:], jax.random.PRNGKey(1))
  ids = np.asarray(returned[:, 0, 0, 0])
  swapped = ids != np.arange(50, 120)  # a stored image came back instead of the new one
  assert 0.35 < swapped.mean() < 0.65  # probability 1/2 over 70 queries
  assert (ids[swapped] < np.arange(50, 120)[swapped]).all()  # only older images return
  # Every new image is either returned or now stored; nothing is lost or duplicated.
  stored = set(np.asarray(later["images"][:, 0, 0, 0]).astype(int))
  assert stored | set(ids.astype(int)) == set(range(120))
  again, returned_again = cyclegan.query_pool(full, images[50:], jax.random.PRNGKey(1))
  np.testing.assert_array_equal(returned_again, returned)  # deterministic under the key
  np.testing.assert_array_equal(again["images"], later["images"])


class _Scale(nn.Module):
  """A "generator" that multiplies by a learnable factor (starts at `factor`)."""

  factor: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = True):
    return x * self.param("factor", lambda key: jnp.float32(self.factor))


class _MeanPatch(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = True):
    return jnp.mean(x, axis=(1, 2, 3))[:, None, None] + self.param("b", nn.initializers.zeros,
                                                                    ())


def _variant(factor: float, shape):
  return cyclegan.CycleGAN(_Scale(factor), _MeanPatch(), shape)


def test_identity_and_cycle_losses_vanish_for_identity_generators():
  variant = _variant(1.0, (4, 4, 1))
  params, stats = variant.init(jax.random.PRNGKey(0))
  real = {"a": jax.random.uniform(jax.random.PRNGKey(1), (3, 4, 4, 1), minval=-1),
          "b": jax.random.uniform(jax.random.PRNGKey(2), (3, 4, 4, 1), minval=-1)}
  _, (_, metrics) = variant.generator_loss(params, stats, real, jax.random.PRNGKey(3))
  for name in ("identity_a", "identity_b", "cycle_a", "cycle_b"):
    assert float(metrics[name]) == 0.0, name


def test_generator_loss_against_a_hand_computed_value():
  variant = _variant(0.5, (2, 2, 1))
  params, stats = variant.init(jax.random.PRNGKey(0))
  a = jnp.array([[0.8, -0.4], [0.2, 0.6]])[None, :, :, None]
  b = jnp.array([[-1.0, 0.5], [0.3, -0.1]])[None, :, :, None]
  _, (_, m) = variant.generator_loss(params, stats, {"a": a, "b": b}, jax.random.PRNGKey(0))
  # G(x) = x / 2, so G(G(x)) = x / 4: cycle = mean |x/4 - x| = 0.75 mean|x|; identity
  # = mean |x/2 - x| = 0.5 mean|x|. D(x) = mean(x): adversarial = (mean(G(x)) - 1)^2.
  mean_abs_a, mean_abs_b = 0.5, 0.475
  assert float(m["cycle_a"]) == pytest.approx(0.75 * mean_abs_a)
  assert float(m["cycle_b"]) == pytest.approx(0.75 * mean_abs_b)
  assert float(m["identity_a"]) == pytest.approx(0.5 * mean_abs_a)
  adversarial = (0.5 * 0.3 - 1) ** 2 + (0.5 * -0.075 - 1) ** 2  # D_B(G(a)), D_A(G(b))
  expected = adversarial + 10 * 0.75 * (mean_abs_a + mean_abs_b) + 5 * 0.5 * (
      mean_abs_a + mean_abs_b)
  assert float(m["g_loss"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("size,blocks,patches", [(32, 2, 2), (128, 6, 14), (256, 9, 30)])
def test_network_shapes_and_parameter_counts(size, blocks, patches):
  generator = networks.ResnetGenerator(3, num_blocks=blocks)
  discriminator = networks.PatchDiscriminator()
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  g_vars = jax.eval_shape(generator.init, jax.random.PRNGKey(0), x)
  d_vars = jax.eval_shape(discriminator.init, jax.random.PRNGKey(0), x)
  assert jax.eval_shape(generator.apply, g_vars, x).shape == (1, size, size, 3)
  assert jax.eval_shape(discriminator.apply, d_vars, x).shape == (1, patches, patches)
  count = lambda tree: sum(leaf.size for leaf in jax.tree.leaves(tree))
  assert count(d_vars) == 2_764_737  # the official NLayerDiscriminator, n_layers 3
  if blocks == 9:
    assert count(g_vars) == 11_378_179  # the official resnet_9blocks generator


def _params_and_pool(workdir, step):
  import orbax.checkpoint as ocp
  state = ocp.StandardCheckpointer().restore(
      (workdir / "checkpoints" / str(step) / "state").absolute())
  return state["params"], state["batch_stats"]["pool"]


def test_cyclegan_resumes_exactly_with_its_image_pool(tmp_path):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(tiny(load_config("cyclegan_digits"), steps=4), str(straight))
  train.train_and_evaluate(tiny(load_config("cyclegan_digits"), steps=2), str(resumed))
  train.train_and_evaluate(tiny(load_config("cyclegan_digits"), steps=4), str(resumed))
  assert read_metrics(resumed) == read_metrics(straight)
  for x, y in zip(jax.tree.leaves(_params_and_pool(straight, 4)),
                  jax.tree.leaves(_params_and_pool(resumed, 4))):
    np.testing.assert_array_equal(x, y)
  _, pool = _params_and_pool(straight, 4)
  assert int(pool["a"]["count"]) == 8  # 4 steps of 2 fakes per domain went in
  record = read_metrics(straight)[-1]
  for key in ("d_loss", "g_loss", "d_a_loss", "d_b_loss", "cycle_a", "cycle_b",
              "identity_a", "identity_b", "g_adv_ab", "g_adv_ba"):
    assert np.isfinite(record[key]), key


def test_reusing_the_d_step_fake_is_refused_with_a_clear_error():
  config = tiny(load_config("cyclegan_digits"), steps=1)
  config.g_step_fake = "reuse"
  with pytest.raises(errors.ConfigError, match="'cyclegan' variant does not"):
    train.create_run(config)


def projected_features(eval_config, train_split, held_out):
  """A cheap stand-in for the digit classifier: a fixed random projection of the pixels
  as features, and a softmax of its first ten as class probabilities."""
  projection = np.random.default_rng(0).normal(size=(int(np.prod(train_split.image_shape)),
                                                     16)).astype(np.float32)

  def extract(images):
    features = images.reshape(len(images), -1).astype(np.float32) / 255.0 @ projection
    logits = features[:, :10] - features[:, :10].max(axis=1, keepdims=True)
    return features, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

  return extract


def test_cyclegan_evaluation_reports_both_directions(tmp_path):
  config = tiny(load_config("cyclegan_digits"), steps=2)
  config.eval.features = "test_cyclegan:projected_features"  # the classifier has its tests
  config.eval_every, config.eval.num_samples = 2, 64
  config.eval.kid_subsets, config.eval.kid_subset_size = 5, 32
  train.train_and_evaluate(config, str(tmp_path))
  result = json.loads((tmp_path / "eval" / "step_2.json").read_text())
  for key in ("label_preservation_a2b", "label_preservation_b2a", "cycle_l1_a",
              "cycle_l1_b", "fid_a", "fid_b", "fid_a_real_floor", "fid_b_real_floor"):
    assert np.isfinite(result[key]), key
  assert 0 <= result["label_preservation_a2b"] <= 1
  assert json.loads((tmp_path / "best.json").read_text())["step"] == 2
  grid = sorted((tmp_path / "samples").glob("*.png"))[-1]
  from PIL import Image
  width, height = Image.open(grid).size
  assert (width, height) == (2 * (1 * 34 + 2), 2 * (6 * 34 + 2))  # 4 // 8 -> 1 column, 6 rows


def test_horse2zebra_config_under_mock_data(tmp_path):
  config = tiny(load_config("cyclegan_horse2zebra"), steps=2)
  assert (config.data.crop_size, config.data.random_flip) == (32, True)
  with tfds.testing.mock_data(num_examples=8):
    final = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(final["g_loss"])
