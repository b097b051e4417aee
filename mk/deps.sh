#!/bin/sh
# Checks the build dependencies and installs the missing Debian packages with
# apt-get when this user can (root, or password-less sudo). Then writes the
# compiler and linker flags to $1 (a makefile fragment). Tell-tale of success:
# that fragment exists; on failure it says what to install by hand.
set -u
out=${1:?usage: deps.sh OUT.mk}

# Debian package : pkg-config module
wanted="libgsl-dev:gsl libcjson-dev:libcjson libhdf5-dev:hdf5 zlib1g-dev:zlib check:check"

missing=""
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"
for pair in $wanted; do
    deb=${pair%%:*}
    mod=${pair#*:}
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod"; then
        missing="$missing $deb"
    fi
done

# Wanted by `make mpi` (servesim-mpi) and by make test's MPI and plot steps,
# not by the core build: missing ones are installed along with the rest,
# and if they cannot be, the core build goes on with a warning.
extra=""
command -v mpicc >/dev/null 2>&1 || extra="$extra libopenmpi-dev"
command -v mpirun >/dev/null 2>&1 || extra="$extra openmpi-bin"
/usr/bin/python3 -c "import h5py" >/dev/null 2>&1 || extra="$extra python3-h5py"
# The Python bridge plugin (plugins/servesim_py.c) embeds CPython.
pkg-config --exists python3-embed 2>/dev/null || extra="$extra python3-dev"
/usr/bin/python3 -c "import matplotlib" >/dev/null 2>&1 || extra="$extra python3-matplotlib"
if [ -n "$extra" ] && [ -z "$missing" ] && [ "$(id -u)" != 0 ] &&
   ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    echo "servesim: warning: make mpi and make test need:$extra" >&2
    echo "servesim: install them as root: apt-get install$extra" >&2
    extra=""
fi
missing="$missing$extra"

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        echo "servesim: missing build dependencies:$missing" >&2
        echo "servesim: install them as root: apt-get install$missing" >&2
        exit 1
    fi
    echo "servesim: installing missing packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! $as_root apt-get install -y -q --no-install-recommends $missing; then
        # A fresh machine may have no package lists yet.
        $as_root apt-get update -q &&
            $as_root apt-get install -y -q --no-install-recommends $missing || {
            echo "servesim: apt-get could not install:$missing" >&2
            exit 1
        }
    fi
fi

mkdir -p "$(dirname "$out")"
{
    echo "# written by mk/deps.sh"
    echo "DEP_CFLAGS := $(pkg-config --cflags gsl libcjson hdf5 zlib)"
    echo "DEP_LIBS := $(pkg-config --libs gsl libcjson hdf5 zlib) -pthread"
    echo "CHECK_CFLAGS := $(pkg-config --cflags check)"
    echo "CHECK_LIBS := $(pkg-config --libs check)"
    if pkg-config --exists python3-embed 2>/dev/null; then
        echo "PY_CFLAGS := $(pkg-config --cflags python3-embed)"
        echo "PY_LIBS := $(pkg-config --libs python3-embed)"
    fi
} > "$out.tmp" && mv "$out.tmp" "$out"
