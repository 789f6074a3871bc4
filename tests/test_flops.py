"""benchmarks/flops.py counts against multiply-adds worked out by hand."""

import flops
import jax
import jax.numpy as jnp
import pytest

from gax.models import layers


def test_a_matrix_product_is_two_flops_per_multiply_add():
  x, w = jnp.ones((8, 16)), jnp.ones((16, 32))
  assert flops.count(jnp.matmul, x, w) == 2 * 8 * 32 * 16


def test_a_convolution_counts_its_taps_and_input_features():
  x, kernel = jnp.ones((2, 10, 10, 3)), jnp.ones((3, 3, 3, 5))

  def conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  assert flops.count(conv, x, kernel) == 2 * (2 * 10 * 10 * 5) * (3 * 3 * 3)


def test_a_transposed_convolution_counts_no_inserted_zeros_in_either_form():
  x, kernel = jnp.ones((2, 10, 10, 3)), jnp.ones((4, 4, 3, 5))
  pads = ((2, 2), (2, 2))
  # Output 20x20; each output pixel meets 2x2 of the 4x4 taps, over 3 input features.
  expected = 2 * (2 * 20 * 20 * 5) * (2 * 2 * 3)

  def dilated(x, kernel):
    return jax.lax.conv_transpose(x, kernel, (2, 2), pads,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def subpixel(x, kernel):
    return layers.subpixel_conv_transpose(x, kernel, (2, 2), pads)

  assert flops.count(dilated, x, kernel) == expected
  assert flops.count(subpixel, x, kernel) == pytest.approx(expected)


def test_a_scan_counts_its_body_once_per_iteration():
  w = jnp.ones((16, 16))

  def three_products(x):
    return jax.lax.scan(lambda x, _: (x @ w, None), x, length=3)[0]

  assert flops.count(three_products, jnp.ones((8, 16))) == 3 * 2 * 8 * 16 * 16


def test_a_gradient_counts_only_the_products_it_needs():
  x = jnp.ones((8, 16))
  # Forward x @ w, then the kernel gradient x.T @ g; no input gradient is asked for.
  assert flops.count(jax.grad(lambda w: (x @ w).sum()), jnp.ones((16, 32))) == 2 * (
      2 * 8 * 32 * 16)
