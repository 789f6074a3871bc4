"""Class-conditional variants: cGAN, projection and ACGAN networks, losses, grids, the
conditional metrics, `gax.sample`, and their bad input."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds
from helpers import ROOT, load_config, tiny

from gax import errors, models
from gax.data import datasets as data_lib
from gax.evaluation import evaluator
from gax.training import train
from gax.variants import acgan

KEY = jax.random.PRNGKey(0)


def _count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("model", ["mlp", "dcgan28", "dcgan64"])
@pytest.mark.parametrize("generator,discriminator,aux", [
    ("concat", "concat", 0), ("cbn", "projection", 0), ("concat", "none", 10)])
def test_conditional_networks_take_labels(model, generator, discriminator, aux):
  shape = (32, 32, 1) if model == "dcgan64" else (28, 28, 1)
  cfg = models.default_config(model)
  if model == "dcgan64":
    cfg.ngf = cfg.ndf = 8
  if model == "mlp":
    cfg.g_hidden, cfg.d_hidden = (32,), (16,)
  if model == "mlp" and generator == "cbn":
    with pytest.raises(errors.ConfigError, match="model 'mlp' has no batch norm"):
      models.create_networks(cfg, shape, cond=models.Conditioning(10, generator, discriminator))
    return
  g, d = models.create_networks(cfg, shape,
                                cond=models.Conditioning(10, generator, discriminator, aux))
  z, labels = jax.random.normal(KEY, (4, 100)), jnp.array([0, 3, 3, 9])
  g_vars = g.init(KEY, z, labels, train=False)
  images = g.apply(g_vars, z, labels, train=False)
  assert images.shape == (4, *shape)
  d_vars = d.init(KEY, images, labels, train=False)
  out = d.apply(d_vars, images, labels, train=False)
  assert out["logit"].shape == (4,)
  assert ("class_logits" in out) == bool(aux)
  # The label changes what G draws and how D scores it (unless D never sees it). At
  # init a conditional norm's per-class scales are all 1: move them apart first.
  moved = {**g_vars, "params": jax.tree.map(
      lambda x: x + 0.1 * jax.random.normal(KEY, x.shape), g_vars["params"])}
  assert not np.allclose(g.apply(moved, z, labels, train=False),
                         g.apply(moved, z, labels[::-1], train=False))
  if discriminator != "none":
    assert not np.allclose(out["logit"], d.apply(d_vars, images, labels[::-1],
                                                 train=False)["logit"])


def test_conditioning_adds_exactly_its_parameters_to_dcgan28():
  cfg = models.default_config("dcgan28")
  z, labels = jnp.zeros((2, 100)), jnp.zeros((2,), jnp.int32)
  counts = {}
  for name, cond in (("plain", models.UNCONDITIONAL),
                     ("concat", models.Conditioning(10, "concat", "concat")),
                     ("projection", models.Conditioning(10, "cbn", "projection")),
                     ("acgan", models.Conditioning(10, "concat", "none", 10))):
    g, d = models.create_networks(cfg, (28, 28, 1), cond=cond)
    g_params = g.init(KEY, z, labels, train=False)["params"]
    d_params = d.init(KEY, jnp.zeros((2, 28, 28, 1)), labels, train=False)["params"]
    counts[name] = (_count(g_params), _count(d_params))
  plain_g, plain_d = counts["plain"]
  assert counts["plain"] == (2_305_472, 212_865)  # the tutorial's networks
  # concat: 10 more inputs to G's first dense (7*7*256 units) and 10 more input channels
  # to each of its 5x5 transposed convs (128, 64, 1 filters); 10 more input channels to
  # each of D's 5x5 convs (64, 128 filters).
  g_concat = 10 * 7 * 7 * 256 + 10 * 25 * (128 + 64 + 1)
  assert counts["concat"] == (plain_g + g_concat, plain_d + 10 * 25 * (64 + 128))
  # projection: per-class scale and offset in G's 3 norms (12544, 128, 64 features)
  # instead of one shared pair; a 10 x 6272 class embedding in D.
  norms = 7 * 7 * 256 + 128 + 64
  assert counts["projection"] == (plain_g + (10 - 1) * 2 * norms, plain_d + 10 * 6272)
  assert counts["acgan"] == (plain_g + g_concat, plain_d + 6272 * 10 + 10)


def test_acgan_class_terms_against_cross_entropy_by_hand():
  variant = acgan.ACGAN(None, None, None, 4, num_classes=3, d_class_weight=0.5,
                        g_class_weight=2.0)
  real = {"class_logits": jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}
  fake = {"class_logits": jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 3.0]])}
  batch, fake_batch = {"label": jnp.array([0, 2])}, {"label": jnp.array([1, 2])}
  ce = lambda logits, label: float(jax.nn.logsumexp(logits) - logits[label])
  real_ce = (ce(real["class_logits"][0], 0) + ce(real["class_logits"][1], 2)) / 2
  fake_ce = (ce(fake["class_logits"][0], 1) + ce(fake["class_logits"][1], 2)) / 2
  loss, metrics = variant.discriminator_terms(real, fake, batch, fake_batch)
  assert float(loss) == pytest.approx(0.5 * (real_ce + fake_ce), rel=1e-6)
  assert float(metrics["d_class_accuracy_real"]) == 0.5
  loss, _ = variant.generator_terms(fake, fake_batch)
  assert float(loss) == pytest.approx(2.0 * fake_ce, rel=1e-6)
  assert fake_ce == pytest.approx(float(optax.softmax_cross_entropy_with_integer_labels(
      fake["class_logits"], fake_batch["label"]).mean()), rel=1e-6)


def test_conditional_grid_has_one_row_per_class_and_fixed_noise_per_column():
  run = train.create_run(tiny(load_config("cgan_mnist"), steps=1))
  inputs = run.variant.sample_inputs(KEY, 25, None)
  assert run.variant.grid_columns(25) == 2
  np.testing.assert_array_equal(inputs["label"], np.repeat(np.arange(10), 2))
  noise = np.asarray(inputs["noise"]).reshape(10, 2, -1)
  np.testing.assert_array_equal(noise, np.broadcast_to(noise[:1], noise.shape))


@pytest.fixture(scope="module")
def mnist_evaluator():
  config = load_config("cgan_mnist")
  config.eval.num_samples = 1000
  return evaluator.create_dataset_evaluator(
      config, data_lib.Source("mnist5k", "train"), data_lib.Source("mnist5k", "test"))


def test_conditional_accuracy_on_hand_made_generators(mnist_evaluator):
  held_out = mnist_evaluator.held_out
  labels = np.arange(1000) % 10
  # A "generator" that returns real held-out images of the asked class.
  by_class = {c: held_out.images[held_out.labels == c] for c in range(10)}
  faithful = np.stack([by_class[c][i // 10 % len(by_class[c])] for i, c in
                       enumerate(labels)])
  result = mnist_evaluator.conditional_metrics(mnist_evaluator.features(faithful), labels)
  assert abs(result["conditional_accuracy"] - mnist_evaluator.classifier_accuracy) < 0.01
  assert result["intra_fid"] < 0.1 * result["intra_fid_real_floor"]  # the same images
  # One that ignores the label: the same held-out images, in an order unrelated to it.
  ignoring = held_out.images[np.random.default_rng(0).permutation(1000)]
  result = mnist_evaluator.conditional_metrics(mnist_evaluator.features(ignoring), labels)
  assert abs(result["conditional_accuracy"] - 0.1) < 0.04
  assert result["intra_fid"] > 5 * result["intra_fid_real_floor"]
  assert result["conditional_accuracy_real_floor"] > 0.95


@pytest.mark.parametrize("name,arg", [("cgan_mnist", None), ("cgan_mnist", "disc=projection"),
                                      ("acgan_mnist", None)])
def test_conditional_configs_train_and_evaluate(name, arg, tmp_path):
  config = tiny(load_config(name, arg), steps=2)
  config.eval_every, config.eval.num_samples = 2, 200
  config.eval.kid_subsets, config.eval.kid_subset_size = 5, 50
  train.train_and_evaluate(config, str(tmp_path))
  result = json.loads((tmp_path / "eval" / "step_2.json").read_text())
  for key in ("conditional_accuracy", "intra_fid", "conditional_accuracy_real_floor",
              "intra_fid_real_floor", "fid"):
    assert np.isfinite(result[key]), key
  assert 0 <= result["conditional_accuracy"] <= 1


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


TINY = ["--config.batch_size=8", "--config.num_train_steps=2", "--config.log_every=1",
        "--config.checkpoint_every=2", "--config.num_samples=20"]


def test_gax_sample_writes_grid_npz_and_walks_and_refuses_bad_labels(tmp_path):
  result = _run("gax.main", "--config=configs/cgan_mnist.py", f"--workdir={tmp_path}",
                *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  out = tmp_path / "picked"
  result = _run("gax.sample", f"--workdir={tmp_path}", "--labels=3,3,7", f"--out={out}",
                "--walks=2", "--walk_steps=3")
  assert result.returncode == 0, result.stderr[-3000:]
  saved = np.load(out / "images.npz")
  assert saved["images"].shape == (3, 28, 28, 1) and saved["images"].dtype == np.uint8
  np.testing.assert_array_equal(saved["labels"], [3, 3, 7])
  for name in ("grid.png", "interpolation.png", "interpolation.gif"):
    assert (out / name).stat().st_size > 0, name
  result = _run("gax.sample", f"--workdir={tmp_path}", "--num_images=20")
  assert result.returncode == 0, result.stderr[-3000:]
  default = np.load(tmp_path / "sampled" / "step_2" / "images.npz")
  np.testing.assert_array_equal(default["labels"], np.repeat(np.arange(10), 2))

  result = _run("gax.sample", f"--workdir={tmp_path}", "--labels=3,10,-1")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "gax: error: --labels=3,10,-1: classes must lie in 0..9 for this run; -1, 10 " \
         "do not" in result.stderr


def test_an_unconditional_workdir_refuses_a_conditional_config(tmp_path):
  # The quick start, which acgan_mnist derives from: the variant is the only difference.
  result = _run("gax.main", "--config=configs/dcgan_mnist.py",
                f"--workdir={tmp_path}", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "lock"}
  result = _run("gax.main", "--config=configs/acgan_mnist.py", f"--workdir={tmp_path}",
                *TINY)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "holds checkpoints of another kind of run (variant: 'gan' -> 'acgan'" in (
      result.stderr)
  after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "lock"}
  assert after == before  # nothing moved, rewritten or added
  result = _run("gax.sample", f"--workdir={tmp_path}", "--labels=1")
  assert result.returncode == 2 and "--labels needs a class-conditional run" in result.stderr


def test_a_conditional_config_on_a_dataset_without_labels_names_it():
  config = tiny(load_config("cgan_mnist", "dataset=celeb_a"), steps=1)
  with tfds.testing.mock_data(num_examples=8):
    with pytest.raises(errors.DataError, match="the cgan variant needs class labels, "
                       "and dataset 'celeb_a'"):
      train.create_run(config)


def test_unknown_conditioning_lists_the_choices():
  config = tiny(load_config("cgan_mnist"), steps=1)
  config.model.conditioning = "film"
  with pytest.raises(errors.ConfigError, match="'concat' or 'projection'"):
    train.create_run(config)


def test_conditional_configs_take_tfds_datasets_by_argument(tmp_path):
  config = tiny(load_config("acgan_mnist", "dataset=cifar10"), steps=1)
  with tfds.testing.mock_data(num_examples=16):
    run = train.create_run(config)
    assert run.batches.info.field_shapes == {"image": (32, 32, 3), "label": ()}
    assert run.batches.info.num_classes == 10  # from the dataset's ClassLabel
    final = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(final["d_class_loss_real"])
