"""Evaluation: generated images against held-out real ones through a feature network
(gax's digit classifier or pytorch-fid's InceptionV3), and the metrics on its features."""
