#!/bin/sh
# The folder graph reads top to bottom: tool, policies, serve, api,
# models and traces, sim. Every `#include "dir/...h"` between top-level
# folders must be one this table allows; a new arrow fails `make test`.
set -u
allowed() {
    case $1 in
    sim) echo "sim" ;;
    models) echo "models sim" ;;
    traces) echo "traces sim" ;;
    api) echo "api sim" ;;
    serve) echo "serve api models traces sim" ;;
    policies) echo "policies api sim" ;;
    tool) echo "tool policies serve api models traces sim" ;;
    calib) echo "calib models sim" ;;
    plugins | examples) echo "api sim" ;;   # plugins see servesim only through api/
    *) echo "" ;;
    esac
}
bad=0
for dir in sim models traces api serve policies tool calib plugins examples; do
    ok=$(allowed $dir)
    for f in $(find $dir -name '*.[ch]' -o -name '*.cu' -o -name '*.def'); do
        for inc in $(sed -n 's/^#include "\([a-z_]*\)\/.*/\1/p' "$f" | sort -u); do
            case " $ok " in
            *" $inc "*) ;;
            *) echo "layers: $f includes $inc/, which $dir/ may not"; bad=$((bad + 1)) ;;
            esac
        done
    done
done
[ $bad -eq 0 ] && echo "layers: 1 passed, 0 failed" || { echo "layers: 0 passed, 1 failed"; exit 1; }
