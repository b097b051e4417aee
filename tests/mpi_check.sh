#!/bin/sh
# make test's MPI step: a sweep run with mpirun over 2 and 3 ranks, and one
# interrupted (--limit) then resumed under mpirun, must give the same
# results file as the local run with -j 2 (compared point by point,
# bit for bit, but for the wall-clock columns). Run from the repository
# root after `make servesim servesim-mpi`.
set -u
PYTHON=${PYTHON:-/usr/bin/python3}
exp=experiments/sweep_rate_policy.json
dir=$(mktemp -d /tmp/servesim-mpi-XXXXXX)
trap 'rm -rf "$dir"' EXIT
# Root in CI, and more ranks than cores on a small machine; the
# single-copy mechanism needs ptrace rights that containers often lack.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
passed=0
failed=0
check() {   # check NAME RESULTS: compare with the local run
    if "$PYTHON" tests/compare_results.py "$dir/local.h5" "$2"; then
        passed=$((passed + 1))
    else
        echo "mpi: FAILED: $1"
        failed=$((failed + 1))
    fi
}

./servesim sweep $exp --out "$dir/local.h5" -j 2 --quiet || exit 1
for n in 2 3; do
    mpirun -n $n ./servesim-mpi sweep $exp --out "$dir/mpi$n.h5" --quiet
    check "mpirun -n $n" "$dir/mpi$n.h5"
done
mpirun -n 2 ./servesim-mpi sweep $exp --out "$dir/resumed.h5" --limit 7 --quiet &&
    mpirun -n 2 ./servesim-mpi sweep $exp --out "$dir/resumed.h5" --quiet
check "mpirun -n 2, --limit 7 then resumed" "$dir/resumed.h5"
# Policies from plugins, C and Python (experiments/sweep_plugins.json): each
# rank loads them itself; skipped when the Python bridge was not built.
if [ -e build/plugins/libservesim_py.so ]; then
    pexp=experiments/sweep_plugins.json
    if ./servesim sweep $pexp --out "$dir/plocal.h5" -j 2 --quiet &&
        mpirun -n 2 ./servesim-mpi sweep $pexp --out "$dir/pmpi.h5" --quiet &&
        "$PYTHON" tests/compare_results.py "$dir/plocal.h5" "$dir/pmpi.h5"; then
        passed=$((passed + 1))
    else
        echo "mpi: FAILED: plugins"
        failed=$((failed + 1))
    fi
else
    echo "mpi: the Python bridge was not built: the plugin sweep is skipped"
fi
echo "mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
