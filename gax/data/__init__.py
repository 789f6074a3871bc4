"""Data: datasets by name (offline, TFDS, ArrayRecord, folders of images), readers that
decode one example at a time, and a run's batches in its seeded order, held in memory or
streamed."""
