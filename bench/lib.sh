# Shared by bench/*.sh: locate a benchmark binary in ${MIRA_BUILD_DIR:-build/ci}.
# bench_find_binary NAME: prints the path of NAME (in <build>/bench/ or <build>/), or exits 2.
bench_find_binary() {
  local name=$1 root build cand
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  build=${MIRA_BUILD_DIR:-build/ci}
  case $build in /*) ;; *) build=$root/$build ;; esac
  for cand in "$build/bench/$name" "$build/$name"; do
    if [ -x "$cand" ]; then echo "$cand"; return 0; fi
  done
  echo "$name not found in $build (cmake --build $build --target $name)" >&2
  exit 2
}
