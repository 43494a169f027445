#!/usr/bin/env bash
# Draws the latency distributions of a suite report as pictures: for every
# run of report.json holding histograms (objects with `buckets_us`, written
# by tools/loadgen/results.h), OUT_DIR/<run>.svg plots each histogram's
# latency (ms, log scale) against its percentile from 0 to 99.99 % (log scale
# of 1/(1-p), so that every nine gets the same width and the tail shows).
# Prints the name of each picture drawn. Needs gnuplot (tools/setup.sh
# installs gnuplot-nox) and jq.
#
#   plot.sh REPORT_JSON OUT_DIR
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: plot.sh REPORT_JSON OUT_DIR" >&2; exit 2; }
report=$1
out=$2
command -v gnuplot >/dev/null || { echo "plot.sh: needs gnuplot" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-plot.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One histogram as "x y" lines: x = 1/(1-p) at the end of each bucket
# (capped at 99.99 %), y = the bucket's highest value in ms; a first point at
# p = 0. gnuplot's fsteps then draws each bucket's value over its span of
# percentiles.
percentiles='
  getpath($path).buckets_us as $b
  | ($b | map(.[1]) | add // 0) as $n
  | if $n == 0 then empty else
      ("1 \([$b[0][0] / 1000, 0.001] | max)"),
      (foreach $b[] as $x (0; . + $x[1];
         (. / $n) as $p
         | "\(if $p >= 0.9999 then 10000 else 1 / (1 - $p) end) \([$x[0] / 1000, 0.001] | max)"))
    end'

runs=$(jq -r '.runs | to_entries[]
  | select([.value | paths(type == "object" and has("buckets_us"))] | length > 0) | .key' "$report")
for run in $runs; do
  plots=()
  i=0
  while IFS=$'\t' read -r name path; do
    data="$work/$run.$i.dat"
    jq -r --argjson path "$path" ".runs[\"$run\"] | $percentiles" "$report" >"$data"
    [[ -s "$data" ]] || continue
    plots+=("\"$data\" using 1:2 with fsteps linewidth 2 title \"$name\"")
    i=$((i + 1))
  done < <(jq -r --arg run "$run" '.runs[$run] | paths(type == "object" and has("buckets_us"))
    | [(map(tostring) | join(".")), tojson] | @tsv' "$report")
  ((${#plots[@]})) || continue
  plot_list=$(printf '%s, ' "${plots[@]}")
  gnuplot <<GNUPLOT
set terminal svg size 800,450 noenhanced font "sans,12" background "#ffffff"
set output "$out/$run.svg"
set title "$run: latency by percentile"
set logscale xy
set xrange [1:10000]
set xtics ("0%%" 1, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000)
set xlabel "percentile"
set ylabel "latency (ms)"
set grid xtics ytics mytics
set key top left box opaque
plot ${plot_list%, }
GNUPLOT
  echo "$run"
done
