"""gax: GAN experiments in JAX on one compiled alternating update."""
