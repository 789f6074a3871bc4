"""Model shapes, parameter counts against the reference implementations, and layers."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gax import config_base, errors, models
from gax.models.layers import Conv, ConvTranspose, strided_conv, subpixel_conv_transpose
from gax.models.mlp import MLPDiscriminator, MLPGenerator

KEY = jax.random.PRNGKey(0)


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _networks(name, shape, **fields):
  cfg = models.default_config(name)
  cfg.update(fields)
  return models.create_networks(cfg, shape)


def _run(generator, discriminator, shape, batch=3):
  z = jax.random.normal(KEY, (batch, 100))
  g_vars = generator.init(KEY, z, train=False)
  images, _ = generator.apply(g_vars, z, train=True, mutable=["batch_stats"])
  d_vars = discriminator.init(KEY, images, train=False)
  outputs, _ = discriminator.apply(d_vars, images, train=True, mutable=["batch_stats"],
                                   rngs={"dropout": KEY})
  assert images.shape == (batch, *shape)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  assert outputs["logit"].shape == (batch,)
  return g_vars, d_vars


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_dcgan28_shapes(shape):
  _run(*_networks("dcgan28", shape), shape)


def test_dcgan28_matches_the_tensorflow_tutorial_parameter_counts():
  g_vars, d_vars = _run(*_networks("dcgan28", (28, 28, 1)), (28, 28, 1))
  # model.summary() of the tutorial: G 2,305,472 trainable + 25,472 non-trainable;
  # D 212,865.
  assert _count(g_vars["params"]) == 2_305_472
  assert _count(g_vars["batch_stats"]) == 25_472
  assert _count(d_vars["params"]) == 212_865


@pytest.mark.parametrize("shape", [(64, 64, 3), (64, 64, 1), (32, 32, 1)])
def test_dcgan64_shapes(shape):
  _run(*_networks("dcgan64", shape, ngf=8, ndf=8), shape)


def test_dcgan64_matches_pytorch_examples_parameter_counts():
  g_vars, d_vars = _run(*_networks("dcgan64", (64, 64, 3), ngf=64, ndf=64), (64, 64, 3),
                        batch=2)
  # sum(p.numel() for p in net.parameters()) of pytorch/examples' dcgan, nc=3.
  assert _count(g_vars["params"]) == 3_576_704
  assert _count(d_vars["params"]) == 2_765_568
  kernels = [x for path, x in jax.tree_util.tree_leaves_with_path(g_vars["params"])
             if "kernel" in jax.tree_util.keystr(path)]
  assert abs(float(jnp.std(jnp.concatenate([k.ravel() for k in kernels]))) - 0.02) < 2e-3


def test_mlp_shapes_and_maxout():
  generator = MLPGenerator((28, 28, 1), hidden=(32, 32), output_activation="sigmoid")
  discriminator = MLPDiscriminator(hidden=(16, 8), pieces=5)
  _, d_vars = _run(generator, discriminator, (28, 28, 1))
  assert d_vars["params"]["Maxout_0"]["Dense_0"]["kernel"].shape == (784, 16 * 5)


def test_model_rejects_image_size_it_cannot_make():
  with pytest.raises(errors.ConfigError, match="power of two"):
    _networks("dcgan64", (28, 28, 1), ngf=8, ndf=8)
  with pytest.raises(errors.ConfigError, match="choose one of"):
    models.create_networks(config_base.ml_collections.ConfigDict(dict(name="resnet9000")),
                           (28, 28, 1))


def _assert_equals_flax(reference, ours_by_impl, x):
  """Each of ours computes the flax `reference` layer's values and both gradients."""
  variables = reference.init(jax.random.PRNGKey(1), x)
  variables = jax.tree.map(lambda v: jax.random.normal(KEY, v.shape), variables)
  expected = reference.apply(variables, x)
  cotangent = jax.random.normal(jax.random.PRNGKey(2), expected.shape)
  expected_grads = jax.vjp(reference.apply, variables, x)[1](cotangent)
  for ours in ours_by_impl:
    np.testing.assert_allclose(ours.apply(variables, x), expected, rtol=1e-5, atol=1e-5)
    grads = jax.vjp(ours.apply, variables, x)[1](cotangent)
    for ours_grad, expected_grad in zip(jax.tree.leaves(grads),
                                        jax.tree.leaves(expected_grads), strict=True):
      np.testing.assert_allclose(ours_grad, expected_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("features", [3, 16])  # thin (overlap-add) and wide outputs
@pytest.mark.parametrize("kernel,stride,padding,size", [
    (5, 2, "SAME", 7), (5, 2, "SAME", 14), (5, 1, "SAME", 7), (3, 2, "SAME", 5),
    (4, 2, ((2, 2), (2, 2)), 8), (4, 1, "VALID", 1), (3, 3, "VALID", 4),
])
def test_subpixel_conv_transpose_and_its_gradients_equal_flax(kernel, stride, padding, size,
                                                              features):
  # The subpixel path has its own gradients (through the adjoint strided convolution).
  layer = dict(features=features, kernel_size=(kernel, kernel), strides=(stride, stride),
               padding=padding)
  _assert_equals_flax(nn.ConvTranspose(**layer),
                      [ConvTranspose(**layer, impl=impl) for impl in ("subpixel", "xla")],
                      jax.random.normal(jax.random.PRNGKey(size), (2, size, size + 1, 5)))


@pytest.mark.parametrize("kernel,stride,padding,size", [
    (4, 2, ((1, 1), (1, 1)), 16), (5, 2, "SAME", 14), (5, 2, "SAME", 7), (3, 2, "SAME", 8),
    (4, 2, "VALID", 10), (3, 1, "SAME", 6), (3, 3, "VALID", 9),
])
def test_conv_with_per_phase_input_gradient_equals_flax(kernel, stride, padding, size):
  layer = dict(features=4, kernel_size=(kernel, kernel), strides=(stride, stride),
               padding=padding)
  _assert_equals_flax(nn.Conv(**layer),
                      [Conv(**layer, impl=impl) for impl in ("auto", "xla")],
                      jax.random.normal(jax.random.PRNGKey(size), (2, size, size + 2, 5)))


@pytest.mark.parametrize("kernel,features,thin", [
    (4, 1, True), (4, 3, True), (4, 4, True), (4, 5, False), (5, 3, False), (3, 3, True),
])
def test_thin_transposed_convs_run_as_one_matrix_product(kernel, features, thin):
  x = jnp.ones((2, 8, 8, 16))
  jaxpr = str(jax.make_jaxpr(lambda x, k: subpixel_conv_transpose(
      x, k, (2, 2), "SAME"))(x, jnp.ones((kernel, kernel, 16, features))))
  assert ("dot_general" in jaxpr and "conv_general_dilated" not in jaxpr) == thin


def test_strided_conv_takes_the_per_phase_gradient_only_where_the_shapes_allow():
  kernel = jnp.ones((3, 3, 2, 2))

  def uses_per_phase_gradient(size):
    jaxpr = jax.make_jaxpr(lambda x: strided_conv(x, kernel, (2, 2), "SAME"))(
        jnp.ones((1, size, size, 2)))
    return "custom_vjp" in str(jaxpr)

  assert uses_per_phase_gradient(8)
  assert not uses_per_phase_gradient(7)  # the gradient's 7 rows are not 2 whole phases
