#!/usr/bin/env bash
# Runs every libFuzzer target (cc_fuzz_test, tagged "fuzz") under ASan and
# UBSan for a while each, starting from its seed corpus, and prints one line
# per target: runs, coverage (cov: edges, ft: features) at the start and at
# the end, corpus size, and the verdict. Exit status 0 only if no target
# crashed, leaked, hit undefined behaviour, timed out or ran out of memory.
#
#   bash tools/fuzz.sh                  # every target, 60 s each
#   bash tools/fuzz.sh --seconds=30 --seed=1   # what CI runs (tools/test.sh)
#   bash tools/fuzz.sh //libs/auth/fuzz:token_fuzz   # some targets only
#
# Without --seed every run explores afresh (libFuzzer picks a random seed and
# prints it). CI fixes the seed: there the run is a regression gate that
# walks the same mutations each time, so a red CI means a change broke
# something, not that this run's dice found an old bug; finding new bugs is
# what the unseeded runs by hand are for.
#
# Targets run two at a time (the machine has two cores). New inputs go to a
# scratch folder, never into the repository's corpora; an input that fails is
# kept under $SWITCHBOARD_FUZZ_OUT (default /tmp/switchboard-fuzz) and printed
# in base64: add it to the target's corpus and as a unit test beside the code
# it broke, with the fix.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=60
seed=()
targets=()
for arg in "$@"; do
  case "$arg" in
    --seconds=*) seconds=${arg#--seconds=} ;;
    --seed=*) seed=(-seed="${arg#--seed=}") ;;
    //*) targets+=("$arg") ;;
    *) echo "usage: bash tools/fuzz.sh [--seconds=N] [--seed=N] [//pkg:target ...]" >&2; exit 2 ;;
  esac
done

if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(bazel query --noshow_progress 'attr(tags, "\bfuzz\b", tests(//...))' 2>/dev/null)
fi
if ((${#targets[@]} == 0)); then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
bazel build --config=asan "${targets[@]}" || exit 1
bin=$(bazel info --config=asan bazel-bin 2>/dev/null)

out=${SWITCHBOARD_FUZZ_OUT:-/tmp/switchboard-fuzz}
mkdir -p "$out"
work=$(mktemp -d)
# The services' targets open a fresh SQLite store for every input, and each
# commit waits for fsync: in memory (tmpfs) that costs nothing.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  stores=$(mktemp -d /dev/shm/switchboard-fuzz.XXXXXX)
else
  stores=$work/stores
  mkdir -p "$stores"
fi
trap 'rm -rf "$work" "$stores"' EXIT

# Runs one target; writes its log and a one-line result to $work/<name>.*.
fuzz_one() {
  local target=$1
  local package=${target#//}
  package=${package%%:*}
  local name=${target##*:}
  local key=${package//\//_}_$name
  local corpora
  read -r -a corpora <<<"${seeds[$target]}"
  local scratch=$work/$key
  mkdir -p "$scratch/corpus" "$stores/$key"
  # As under `bazel test`: from the runfiles root, so that relative paths
  # (seed corpus, data files) resolve the same way.
  (
    cd "$bin/$package/$name.runfiles/switchboard" || exit 1
    # The sanitizers' options (leak checking and the rest) are built in:
    # third_party/sanitizers.
    TEST_TMPDIR=$stores/$key TMPDIR=$stores/$key \
      "$bin/$package/$name" "${seed[@]}" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 \
      -print_final_stats=1 -close_fd_mask=1 -artifact_prefix="$out/$key-" \
      "$scratch/corpus" "${corpora[@]}"
  ) >"$scratch.log" 2>&1
  local status=$?
  local start end runs corpus_size verdict
  start=$(grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$scratch.log" | grep -oE 'cov: [0-9]+ ft: [0-9]+')
  end=$(grep -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|DONE|INITED)' "$scratch.log" | tail -1 |
    grep -oE 'cov: [0-9]+ ft: [0-9]+')
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch.log")
  corpus_size=$(find "$scratch/corpus" -type f | wc -l)
  if ((status == 0)); then
    verdict=ok
  else
    verdict="FAILED (exit $status; log: $out/$key.log)"
    cp "$scratch.log" "$out/$key.log"
  fi
  printf '%-45s %8s runs  %-18s -> %-18s  new inputs: %-5s %s\n' "$target" "${runs:-?}" \
    "${start:-?}" "${end:-?}" "$corpus_size" "$verdict" >"$scratch.result"
  return $status
}

# Each target's seed folders: its test arguments after -runs=0 (see
# third_party/fuzzing/fuzz.bzl), relative to its runfiles.
declare -A seeds
for target in "${targets[@]}"; do
  seeds[$target]=$(bazel query --noshow_progress --output=build "$target" 2>/dev/null |
    sed -n 's/^ *args = \[\(.*\)\],$/\1/p' | tr -d '",' | sed 's/-runs=0//')
done

echo "fuzz: ${#targets[@]} targets, ${seconds} s each, ASan + UBSan"
jobs=$(nproc)
failed=0
running=0
for target in "${targets[@]}"; do
  fuzz_one "$target" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || failed=$((failed + 1))
  running=$((running - 1))
done

cat "$work"/*.result
for log in "$work"/*.log; do
  key=$(basename "$log" .log)
  if [[ -f "$out/$key.log" ]]; then
    echo "---- $key"
    grep -E -A40 '^==[0-9]+==ERROR|runtime error|^SUMMARY|Test unit written|Base64:' "$log" | head -80
  fi
done
echo "fuzz: $((${#targets[@]} - failed)) passed, $failed failed"
exit $((failed != 0))
