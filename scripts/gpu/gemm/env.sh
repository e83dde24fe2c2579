# Sourced by the scripts beside it: finds the build directory and makes the
# CUDA libraries halo-blas binaries need (libcublasLt.so.13, libnvrtc.so.13)
# and, for binaries carried from another machine, libfmt.so.9 loadable.
#   HALO_BUILD_DIR  build directory (default: build-gpu, else build-blas)
# A directory "$HALO_BUILD_DIR/carry-lib" (copies of the build machine's
# libfmt.so.9 etc.) is put first on LD_LIBRARY_PATH.
if [ -z "${HALO_BUILD_DIR:-}" ]; then
  if [ -x build-gpu/bin/halo-bench-gemm ] || [ ! -d build-blas ]; then
    HALO_BUILD_DIR=build-gpu
  else
    HALO_BUILD_DIR=build-blas
  fi
fi
export HALO_BUILD_DIR
halo_libdirs="$PWD/$HALO_BUILD_DIR/carry-lib"
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib \
           /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && halo_libdirs="$halo_libdirs:$dir"
done
export LD_LIBRARY_PATH="$halo_libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Builds the named targets unless they exist (GTest-less machines: build only
# halo-bench-gemm with HALO_ENABLE_TESTS=OFF).
halo_build() {
  local missing=0 target
  for target in "$@"; do
    [ -x "$HALO_BUILD_DIR/bin/$target" ] || missing=1
  done
  [ "$missing" = 0 ] && return 0
  local tests=ON
  case " $* " in *" halo-blas-tests "*) ;; *) tests=OFF ;; esac
  cmake -G Ninja -S . -B "$HALO_BUILD_DIR" -DHALO_ENABLE_COMPILER=OFF \
    -DHALO_ENABLE_TESTS=$tests >/dev/null
  ninja -C "$HALO_BUILD_DIR" "$@"
}
