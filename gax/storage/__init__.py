"""Files gax writes: atomic writes and the workdir lock, the metric log, image files."""
