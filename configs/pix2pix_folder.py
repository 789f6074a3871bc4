"""pix2pix on a folder of paired images, facades-style (Isola et al., 2017).

`dataset=folder:PATH` (required): pix2pix's own layout, PATH/train/*.jpg and
PATH/test/*.jpg (or val/) with A on the left half of each image and B on the right
(`layout=side_by_side`, the default), or PATH/train/A/ and PATH/train/B/ holding the same
file names (`layout=folders`); see gax/data/folders.py. The paper's facades settings:
U-Net with 8 levels, 70x70 PatchGAN, L1 lambda = 100, Adam 2e-4 with beta1 0.5, batch
1, images resized to 286 then randomly cropped to 256 and mirrored (the same crop and
flip for both images of a pair), 200 epochs (400 training pairs per epoch in facades).
`direction=b_to_a` translates B to A (facades' labels are B: use it there, as the paper).
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="", layout="side_by_side", direction="a_to_b",
                              epoch_steps=400, epochs=200)
  if not arg.dataset.startswith("folder:"):
    raise ValueError("pix2pix_folder.py needs dataset=folder:PATH (a folder of pairs)")
  if arg.layout not in ("side_by_side", "folders"):
    raise ValueError(f"layout={arg.layout!r} must be side_by_side or folders")
  config = variants.base_config("pix2pix")
  config.dataset = arg.dataset
  config.task = arg.direction
  config.data.pairs = "side_by_side" if arg.layout == "side_by_side" else "auto"
  config.data.image_size, config.data.channels = 286, 3
  config.data.crop_size, config.data.random_flip = 256, True
  config.num_train_steps = arg.epochs * arg.epoch_steps
  config.log_every = 100
  config.sample_every = 1000
  config.checkpoint_every = 5000
  config.num_samples = 12  # 4 pairs: input, output, target
  config.eval.features = "inception"
  return config
