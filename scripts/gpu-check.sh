#!/usr/bin/env bash
# Every GPU check of polyact, on a machine with an NVIDIA GPU and no Rust: the prebuilt binaries
# of scripts/gpu-bundle.sh (carry target/gpu-bundle there) run, in parts:
#   tests    tests/cuda.rs: every CUDA op against the CPU op (values, gradients, dtypes, layouts),
#            and the example's CUDA Adam kernel against the CPU update, bit for bit;
#   sanitize the same tests under compute-sanitizer: memcheck (an out-of-bounds or misaligned
#            access, e.g. from a launch whose arguments do not match the kernel's parameters)
#            and racecheck on the power-sum reduction (shared memory between __syncthreads);
#   bench    the 16M-f32 benchmark: fused PolyAct forward(+backward) vs candle's sigmoid vs a copy;
#   profile  where a training step's time goes on the GPU (--profile-steps): relu and m_sigmoid
#            (candle's conv, fused Adam), relu with --conv gemm, relu with candle's AdamW;
#   quick    the MNIST example's --quick (six activations, one epoch, two jobs);
#   full     the study's 12-epoch run of m_sigmoid, timed;
#   six      the study's six activations, 12 epochs each, six jobs side by side, timed.
#
#   scripts/gpu-check.sh [BUNDLE]                 # every part; BUNDLE defaults to target/gpu-bundle
#   PARTS="tests sanitize bench profile quick" scripts/gpu-check.sh   # some parts (5-6 minutes)
#   PARTS="full six" scripts/gpu-check.sh                    # the timed training (5 to 10 minutes)
#
# Each part runs under its own time limit, cut to what is left of BUDGET_S (default 570 s, under
# the device tool's 600 s per command); a part that no longer fits is reported as not run, and
# the script goes on after a failure. The last lines sum up the exit status of every part. With
# $OUT set (the device tool's folder that comes back), every part's log and the runs' results
# are packed into $OUT/gpu-check.tar.gz. compute-sanitizer works on the Firecracker machines
# (KINDS.md: ask for nvidia-h100-x1), not on gVisor, where its parts say so. The binaries need the driver's libcuda.so.1 and the CUDA 13
# libraries cuBLAS, cuBLASLt, cuRAND, NVRTC and the runtime: found in LD_LIBRARY_PATH, the
# system's library cache, /usr/local/cuda*, or Python's nvidia/cu13 wheels (as PyTorch installs
# them).
set -uo pipefail

BUNDLE=${1:-target/gpu-bundle}
BUDGET_S=${BUDGET_S:-570}
WORK=$(mktemp -d)
declare -A STATUS
log() { echo "== gpu-check: $*"; }
PARTS=" ${PARTS:-tests sanitize bench profile quick full six} "
want() { [[ $PARTS == *" $1 "* ]]; }
[[ -f $BUNDLE/cuda-tests.xz && -f $BUNDLE/mnist.xz && -f $BUNDLE/mnist-tests.xz ]] || {
  echo "gpu-check.sh: error: no bundle in $BUNDLE (build it with scripts/gpu-bundle.sh)" >&2
  exit 2
}
cat "$BUNDLE/BUILD" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,memory.used --format=csv ||
  log "nvidia-smi failed: is there a GPU?"

unxz_to() { # FILE.xz DEST: with xz, else Python's lzma
  if command -v xz >/dev/null; then
    xz -dc "$1" >"$2"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
for bin in cuda-tests mnist mnist-tests; do
  unxz_to "$BUNDLE/$bin.xz" "$WORK/$bin" && chmod +x "$WORK/$bin" || {
    echo "gpu-check.sh: error: cannot unpack $BUNDLE/$bin.xz (no xz, and no python3 with lzma?)" >&2
    exit 2
  }
done

# Folders holding the CUDA libraries the binaries link to, added to LD_LIBRARY_PATH.
NEEDED=(libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13)
candidates=$(
  { echo "${LD_LIBRARY_PATH:-}" | tr ':' '\n'
    ls -d /usr/local/cuda*/lib64 /usr/lib/x86_64-linux-gnu 2>/dev/null
    python3 -c 'import site, glob; [print(p) for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib")]' 2>/dev/null
  } | grep -v '^$' | awk '!seen[$0]++'
)
for lib in "${NEEDED[@]}"; do
  ldconfig -p 2>/dev/null | grep -q "$lib" && continue
  dir=$(for d in $candidates; do [[ -e $d/$lib ]] && echo "$d" && break; done)
  if [[ -n $dir ]]; then
    export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    log "MISSING $lib (install the CUDA 13.0 wheels: pip install nvidia-cublas==13.0.* ...)"
  fi
done
if ldd "$WORK/cuda-tests" | grep 'not found'; then
  log "the binaries cannot load the libraries above; the checks below will fail"
fi

part() { # NAME LIMIT_S COMMAND...: runs COMMAND for at most LIMIT_S, or what is left of BUDGET_S
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - SECONDS))
  if ((left < 20)); then
    STATUS[$name]="not run: ${left} s of the ${BUDGET_S} s budget left"
    log "$name: ${STATUS[$name]}"
    return
  fi
  ((limit > left)) && limit=$left
  log "$name (at most $limit s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  STATUS[$name]="rc=${PIPESTATUS[0]} in $((SECONDS - start)) s"
  if grep -q "Device not supported" "$WORK/$name.log"; then
    STATUS[$name]="not run: compute-sanitizer does not support this machine's GPU runtime (gVisor?)"
  fi
  log "$name: ${STATUS[$name]}"
}

MNIST_ARGS=(--device cuda --data-dir "$BUNDLE/data" --offline --no-save --no-plots)
if want tests; then
  part tests 240 "$WORK/cuda-tests" --test-threads=1 --nocapture
  part adam-test 60 "$WORK/mnist-tests" --exact train::tests::fused_adam_on_cuda_is_the_cpu_update \
    --nocapture
fi
if want sanitize; then
  # The image's CUDA tools, or a toolkit's; the part reports it missing otherwise.
  sanitizer=$(command -v compute-sanitizer ||
    ls /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer \
      /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -n1)
  if [[ -x $sanitizer ]]; then
    SAN=("$sanitizer" --error-exitcode 3 --print-limit 20)
    part memcheck 150 "${SAN[@]}" --tool memcheck "$WORK/cuda-tests" --test-threads=1 --nocapture
    part memcheck-adam 60 "${SAN[@]}" --tool memcheck "$WORK/mnist-tests" \
      --exact train::tests::fused_adam_on_cuda_is_the_cpu_update --nocapture
    part racecheck 90 "${SAN[@]}" --tool racecheck "$WORK/cuda-tests" --test-threads=1 \
      --nocapture learnable
  else
    STATUS[sanitize]="not run: no compute-sanitizer found"
    log "sanitize: ${STATUS[sanitize]}"
  fi
fi
want bench && part bench 120 "$WORK/cuda-tests" --ignored --nocapture --test-threads=1 bench_
if want profile; then
  part profile-relu 90 "$WORK/mnist" "${MNIST_ARGS[@]}" --activations relu --profile-steps 200
  part profile-m_sigmoid 90 "$WORK/mnist" "${MNIST_ARGS[@]}" --activations m_sigmoid \
    --profile-steps 200
  part profile-relu-gemm 90 "$WORK/mnist" "${MNIST_ARGS[@]}" --activations relu --conv gemm \
    --profile-steps 200
  part profile-relu-candle-adam 90 "$WORK/mnist" "${MNIST_ARGS[@]}" --activations relu \
    --optimizer candle --profile-steps 200
fi
want quick && part mnist-quick 240 "$WORK/mnist" "${MNIST_ARGS[@]}" --quick --out "$WORK/quick"
want full && part mnist-12-epochs 300 "$WORK/mnist" "${MNIST_ARGS[@]}" --activations m_sigmoid \
  --epochs 12 --out "$WORK/full"
want six && part mnist-six-12-epochs 420 "$WORK/mnist" "${MNIST_ARGS[@]}" --jobs 6 --epochs 12 \
  --out "$WORK/six"

log "summary"
for name in "${!STATUS[@]}"; do echo "  $name: ${STATUS[$name]}"; done
if grep -h SKIPPED "$WORK"/{tests,adam-test,memcheck,memcheck-adam,racecheck}.log 2>/dev/null; then
  echo "  the tests above were SKIPPED: they did not reach a GPU, so nothing was verified"
fi
if [[ -n ${OUT:-} && -d $OUT ]]; then
  tar -czf "$OUT/gpu-check.tar.gz" -C "$WORK" --exclude=cuda-tests --exclude=mnist \
    --exclude=mnist-tests --exclude='*.safetensors' . && log "logs and results: $OUT/gpu-check.tar.gz"
fi
rm -rf "$WORK"
