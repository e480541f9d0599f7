#!/bin/sh
# Set-up and the two entry points of README:
#   sh scripts/run.sh        install the Debian packages if missing, build, train the embedded default
#   sh scripts/run.sh test   install the Debian packages if missing, build, run the tests
# Installing needs root (or sudo); on a machine that has the packages nothing is installed.
set -e
cd "$(dirname "$0")/.."
PACKAGES="build-essential libopenblas-openmp-dev libcjson-dev zlib1g-dev"
# The tests also build and run the MPI path (tests/test_mpi.sh).
[ "$1" = test ] && PACKAGES="$PACKAGES python3 python3-torch python3-numpy libopenmpi-dev openmpi-bin"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "$1" = test ]; then
    make -j2 all
    make test
else
    make -j2 all
    ./train --set run.name="default-$(date +%Y%m%d-%H%M%S)"
fi
