#!/usr/bin/env bash
# Builds, on a machine without a GPU, what scripts/gpu-check.sh runs on a GPU machine that has
# no Rust: the CUDA test binary (tests/cuda.rs, with the benchmark), the release `mnist`
# example and its unit tests (the CUDA Adam kernel's test among them), all with
# `--features cuda`, stripped and compressed with xz, plus the MNIST files, into
# target/gpu-bundle/ (ignored by git; carry that path to the GPU machine, whose limit is 64 MiB:
# candle's embedded PTX, most of each binary, compresses well; the script prints the size).
#
#   eval "$(scripts/cuda-toolkit.sh /work/cuda-toolkit)"   # CUDA_HOME, NVCC, CUDA_COMPUTE_CAP
#   nice -n 10 scripts/gpu-bundle.sh                       # over 40 min on 2 cores from scratch
#
# Both binaries are built in the release profile, so candle's CUDA kernels are compiled once.
set -euo pipefail

die() { echo "gpu-bundle.sh: error: $*" >&2; exit 1; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/target/gpu-bundle"
MNIST=${MNIST_DIR:-$ROOT/../shared/data/mnist}
[[ -n ${CUDA_HOME:-} && -x ${NVCC:-$CUDA_HOME/bin/nvcc} ]] ||
  die "no CUDA toolkit in the environment: eval \"\$(scripts/cuda-toolkit.sh DIR)\" first"
[[ -n ${CUDA_COMPUTE_CAP:-} ]] || die "set CUDA_COMPUTE_CAP (90 for an H100/H200)"
[[ -f $MNIST/train-images-idx3-ubyte.gz || -f $MNIST/train-images-idx3-ubyte ]] ||
  die "no MNIST files in $MNIST (set MNIST_DIR)"
command -v python3 >/dev/null || die "python3 is needed to read cargo's JSON messages"

cd "$ROOT"
# The path of the executable cargo built for the target named $1 (from --message-format=json),
# its test harness when $2 is "test"; the compiler's messages go to stderr.
executable() {
  python3 -c '
import json, sys
name, harness = sys.argv[1], sys.argv[2] == "test"
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-message":
        sys.stderr.write(m["message"].get("rendered") or "")
    elif (m.get("reason") == "compiler-artifact" and m["target"]["name"] == name
          and m.get("executable") and m["profile"]["test"] == harness):
        print(m["executable"])' "$1" "$2" | tail -n1
}
tests=$(cargo test --release --features cuda --test cuda --no-run --message-format=json |
  executable cuda test) || die "building the cuda test binary failed (messages above)"
[[ -x $tests ]] || die "cargo did not report the cuda test binary"
mnist=$(cargo build --release --features cuda --example mnist --message-format=json |
  executable mnist bin) || die "building the mnist example failed (messages above)"
[[ -x $mnist ]] || die "cargo did not report the mnist example"
mnist_tests=$(cargo test --release --features cuda --example mnist --no-run \
  --message-format=json | executable mnist test) || die "building the mnist tests failed (messages above)"
[[ -x $mnist_tests && $mnist_tests != "$mnist" ]] || die "cargo did not report the mnist tests"

rm -rf "$OUT"
mkdir -p "$OUT/data"
for pair in "cuda-tests:$tests" "mnist:$mnist" "mnist-tests:$mnist_tests"; do
  name=${pair%%:*} bin=${pair#*:}
  strip -o "$OUT/$name" "$bin"
  xz -9 -T0 "$OUT/$name"
done
cp "$MNIST"/*-ubyte* "$OUT/data/"
{
  echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)"
  echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP nvcc: $("${NVCC:-$CUDA_HOME/bin/nvcc}" --version | tail -n2 | head -n1)"
} >"$OUT/BUILD"
du -sh "$OUT"
echo "gpu-bundle.sh: carry target/gpu-bundle and run scripts/gpu-check.sh on the GPU machine" >&2
