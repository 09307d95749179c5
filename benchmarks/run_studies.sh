#!/usr/bin/env bash
# The studies behind the README's tables, one after another, each timed end to end.
#
#   benchmarks/run_studies.sh OUT_DIR [STUDY ...]      (default: every study, in this order)
#
# Each study runs in OUT_DIR/<study>/ (its outputs/ or multirun/ folder lands there) and appends
# "<study> <exit status> <wall seconds> <load average at start> <git commit>" to OUT_DIR/times.txt;
# its terminal output goes to OUT_DIR/<study>.log. Then
#   python benchmarks/study_numbers.py OUT_DIR/<study>
# prints the per-layer peak, final and compression over seeds that the tables quote.
set -uo pipefail
out=$(realpath -m "${1:?usage: benchmarks/run_studies.sh OUT_DIR [STUDY ...]}")
shift
commit=$(git -C "$(dirname "$0")" rev-parse --short HEAD)
declare -A CMD=(
  [default]="python -m infoflow"
  [goldfeld_szt]="python -m infoflow experiment=goldfeld_szt"
  [goldfeld_szt_8]="python -m infoflow experiment=goldfeld_szt ensemble.size=8"
  [goldfeld_variants_8]="python -m infoflow -m experiment=goldfeld_szt_orthonormal,goldfeld_szt_linear ensemble.size=8"
  [tishby_szt_sweep]="python -m infoflow -m experiment=tishby_szt_sweep"
  [tishby_depth]="python -m infoflow -m experiment=tishby_depth"
  [single_neuron_8]="python -m infoflow experiment=single_neuron ensemble.size=8"
  [quantized_szt]="python -m infoflow -m experiment=quantized_szt"
)
ORDER=(default goldfeld_szt goldfeld_szt_8 tishby_szt_sweep single_neuron_8 goldfeld_variants_8
  tishby_depth quantized_szt)
studies=("$@")
[ ${#studies[@]} -eq 0 ] && studies=("${ORDER[@]}")
export WANDB_MODE=offline
for study in "${studies[@]}"; do
  cmd=${CMD[$study]:-}
  if [ -z "$cmd" ]; then echo "run_studies: no study '$study' (have: ${ORDER[*]})" >&2; exit 2; fi
  mkdir -p "$out/$study"
  load=$(cut -d' ' -f1 /proc/loadavg)
  SECONDS=0
  (cd "$out/$study" && $cmd >"$out/$study.log" 2>&1)
  rc=$?
  wall=$SECONDS
  echo "$study $rc $wall $load $commit" | tee -a "$out/times.txt"
done
