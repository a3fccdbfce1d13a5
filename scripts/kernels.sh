#!/usr/bin/env bash
# Run a command with the CPU kernels of another machine: bash scripts/kernels.sh avx2|default CMD [ARGS...]
#   bash scripts/kernels.sh avx2 bash scripts/test.sh      # the test suite as on an AVX2-only CPU
# torch dispatches its own kernels (ATEN_CPU_CAPABILITY), oneDNN its convolutions, MKL its matmuls and numpy
# its ufuncs, each on what the CPU offers: this caps all four, so float results round as they would there.
set -euo pipefail
level=${1:?usage: bash scripts/kernels.sh avx2|default CMD [ARGS...]}
shift
case "$level" in
  avx2)
    export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
    export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" ;;
  default)
    export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
    export NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" ;;
  *) echo "error: kernels: unknown level '$level'; choose avx2 or default" >&2; exit 2 ;;
esac
exec "$@"
