"""gax's XLA flag defaults: added unless the user named the flag, and in effect."""

import subprocess
import sys

from gax import xla_flags

FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def test_defaults_are_appended_to_the_users_flags():
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert xla_flags.set_defaults(environ) == [f"{FLAG}=-individual_convolution"]
  assert environ["XLA_FLAGS"] == (
      f"--xla_force_host_platform_device_count=8 {FLAG}=-individual_convolution")
  assert xla_flags.set_defaults(environ) == []  # named now: nothing added twice


def test_a_flag_the_user_sets_wins():
  environ = {"XLA_FLAGS": f"{FLAG}="}
  assert xla_flags.set_defaults(environ) == [] and environ["XLA_FLAGS"] == f"{FLAG}="
  environ = {}
  xla_flags.set_defaults(environ)
  assert environ["XLA_FLAGS"] == f"{FLAG}=-individual_convolution"


PROBE = """
import {first}
import jax, jax.numpy as jnp
conv = jax.jit(lambda x, w: jax.nn.relu(jax.lax.conv_general_dilated(
    x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))))
print("ynn_fusion" in conv.lower(jnp.ones((8, 32, 32, 64)),
                                 jnp.ones((4, 4, 64, 128))).compile().as_text())
"""


def _conv_goes_to_ynnpack(first_import: str, xla_flags_value: str | None = None) -> bool:
  env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
  if xla_flags_value is not None:
    env["XLA_FLAGS"] = xla_flags_value
  result = subprocess.run([sys.executable, "-c", PROBE.format(first=first_import)],
                          capture_output=True, text=True, env=env, timeout=300, check=True)
  return result.stdout.split()[-1] == "True"


def test_importing_gax_sends_cpu_convolutions_to_xla_own_kernels():
  assert _conv_goes_to_ynnpack("jax")  # jaxlib's default, which the flag changes
  assert not _conv_goes_to_ynnpack("gax")
  assert _conv_goes_to_ynnpack("gax", f"{FLAG}=+individual_convolution")
