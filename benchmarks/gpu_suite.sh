#!/usr/bin/env bash
# The GPU rows of the README's performance table, in parts that each fit in ten minutes:
#   bash benchmarks/gpu_suite.sh dcgan|others OUT_DIR PEERS_DIR
# PEERS_DIR holds checkouts of pytorch/examples (as examples/) and of
# junyanz/pytorch-CycleGAN-and-pix2pix (as cyclegan/). Every line of OUT_DIR/PART.jsonl
# is one benchmark's JSON; PYTHON must have both JAX and torch.
set -euo pipefail
part=$1 out=$2 peers=$3
py=${PYTHON:-python3}
mkdir -p "$out"
record() { "$py" "$@" | tee -a "$out/$part.jsonl"; }
step() { record benchmarks/train_step.py "$@"; }
dcgan64=--config=configs/dcgan64.py:dataset=fake,channels=3

case $part in
  dcgan)  # pytorch/examples' DCGAN side by side, as written and compiled
    record benchmarks/compare_with_peer.py --model=dcgan64 --peer_dir="$peers/examples" \
      --peer_python="$py" --batch_sizes=64,512 --rounds=2 --steps=100 --steps_per_dispatch=10 \
      --peer_compile
    ;;
  others)  # a kernel profile, dispatch, the transposed-conv forms, float32 precision,
           # dcgan_mnist, the official CycleGAN, populations
    step "$dcgan64" --batch_size=512 --dtype=bfloat16 --steps=50 --profile=5
    for dispatch in 1 10; do
      step "$dcgan64" --batch_size=64 --dtype=bfloat16 --steps=200 --steps_per_dispatch=$dispatch
    done
    step "$dcgan64" --batch_size=512 --dtype=bfloat16 --steps=100 \
      --config.model.conv_transpose=subpixel
    for precision in tensorfloat32 highest; do
      JAX_DEFAULT_MATMUL_PRECISION=$precision step "$dcgan64" --batch_size=512 --steps=100
    done
    for batch_size in 64 512; do
      for dtype in float32 bfloat16; do
        step --config=configs/dcgan_mnist.py:recipe=radford --batch_size=$batch_size --dtype=$dtype --steps=200
      done
    done
    record benchmarks/compare_with_peer.py --model=cyclegan --peer_dir="$peers/cyclegan" \
      --peer_python="$py" --batch_sizes=1 --rounds=1 --steps=30
    record benchmarks/population.py --config=configs/dcgan_mnist.py:recipe=radford --members=8 \
      --batch_size=64 --steps=50
    ;;
  *)
    echo "part must be dcgan or others, got '$part'" >&2
    exit 2
    ;;
esac
