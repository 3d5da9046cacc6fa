#!/usr/bin/env bash
# Run the figure sweeps, plot each figure and write one page showing them all (index.html);
# the table of commands and measured times is docs/figures.md.
#
#   scripts/make_figures.sh                        # every *_smoke sweep: offline, minutes on 2 cores
#   scripts/make_figures.sh paper                  # every paper sweep (needs the datasets; long)
#   scripts/make_figures.sh smoke heatmap_smoke winner_smoke   # only these sweeps
#
# Sweep NAME writes its job dirs (0, 1, ...) and its figure (png + pdf + caption json; one per
# task when a sweep holds several) to outputs/figures/NAME/ (OUT=dir to change) and its log to
# outputs/figures/NAME.log; outputs/figures/index.html shows every figure with its caption.
# Re-running skips completed jobs; delete the dir to start afresh. Extra overrides for every
# sweep, e.g. another launcher:
#   HYDRA_ARGS="hydra/launcher=submitit_slurm_example" scripts/make_figures.sh paper
set -euo pipefail
cd "$(dirname "$0")/.."

# the python that has tpri: $PYTHON, else the checkout's .venv, else python3 / python on PATH
# (the venv need not be activated)
if [ -z "${PYTHON:-}" ]; then
  for candidate in .venv/bin/python python3 python; do
    if command -v "$candidate" > /dev/null && "$candidate" -c "import tpri" 2> /dev/null; then
      PYTHON=$candidate
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c "import tpri" 2> /dev/null; then
  echo "$0: no python with tpri installed; activate its venv (source .venv/bin/activate)," \
       "run 'make setup', or set PYTHON=/path/to/python" >&2
  exit 2
fi

budget=${1:-smoke}
[ $# -gt 0 ] && shift
out=${OUT:-outputs/figures}
read -r -a extra <<< "${HYDRA_ARGS:-}"

yamls=()
for name in "$@"; do yamls+=("conf/sweep/$name.yaml"); done
if [ ${#yamls[@]} -eq 0 ]; then
  case $budget in
    smoke) yamls=(conf/sweep/*_smoke.yaml) ;;
    paper) for yaml in conf/sweep/*.yaml; do [[ $yaml == *_smoke.yaml ]] || yamls+=("$yaml"); done ;;
    *) echo "usage: $0 [smoke|paper] [sweep ...]" >&2; exit 2 ;;
  esac
fi
# those that make a figure, checked before anything runs (tpri-plot sweeps reads the registry,
# tpri/analysis/figures/registry.py; a sweep it lists as making no figure is left out)
list=$("$PYTHON" -m tpri.analysis.figures sweeps "${yamls[@]}") || exit 2
[ -n "$list" ] || { echo "$0: none of these sweeps makes a figure" >&2; exit 2; }
mapfile -t sweeps <<< "$list"

tpri_plot() {  # tpri-plot, run by the python found above (the venv need not be activated)
  "$PYTHON" -m tpri.analysis.figures "$@"
}

mkdir -p "$out"
for name in "${sweeps[@]}"; do
  start=$SECONDS
  echo "== python train.py sweep=$name hydra.sweep.dir=$out/$name ${extra[*]}"
  if ! "$PYTHON" train.py "sweep=$name" "hydra.sweep.dir=$out/$name" "${extra[@]}" \
      > "$out/$name.log" 2>&1; then
    echo "   FAILED, see $out/$name.log" >&2
    exit 1
  fi
  echo "   sweep: $((SECONDS - start)) s"
  # the figure(s) of sweep $name: its kind and options in the registry
  tpri_plot sweep "$name" "$out/$name" | grep -E '\.(png|pdf|csv)$' | sed 's/^/   /'
done
tpri_plot report "$out" | sed 's/^/== /'   # index.html: every figure below $out
