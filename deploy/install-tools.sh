#!/bin/sh
# Install the command-line tools the tests and `make bench` use, from Debian's packages, only when missing:
#   kcat        (package kcat)        a librdkafka client: tests/integration/test_kcat.py
#   prometheus  (package prometheus)  a live Prometheus: tests/deploy/test_live_prometheus.py
#   promtool    (package prometheus)  config, rules and /metrics checks: tests/deploy
#   wrk         (package wrk)         the HTTP load generator of `make bench`'s ingress benchmark
# Usage: deploy/install-tools.sh [TOOL...]   (no TOOL: all of them). Needs root and apt-get
# for anything missing; prints each tool's path; exits 1 naming what could not be installed.
# Called by `make test`; safe to run by hand. Idempotent.
set -eu

[ "$#" -gt 0 ] || set -- kcat prometheus promtool wrk

package_of() {
    case "$1" in
        kcat) echo kcat ;;
        prometheus | promtool) echo prometheus ;;
        wrk) echo wrk ;;
        *) echo "install-tools: unknown tool '$1' (kcat, prometheus, promtool, wrk)" >&2; exit 2 ;;
    esac
}

missing=""
packages=""
for tool in "$@"; do
    package=$(package_of "$tool")
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing="$missing $tool"
        case " $packages " in *" $package "*) ;; *) packages="$packages $package" ;; esac
    fi
done

if [ -n "$packages" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-tools:$missing missing and this is not root: apt-get install$packages" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-tools:$missing missing and there is no apt-get (packages:$packages)" >&2
        exit 1
    fi
    # Only the binaries are wanted: keep a package's post-install from starting a daemon
    # (Prometheus on :9090) via policy-rc.d exit 101 = "do not start services", unless a
    # policy already exists.
    policy=/usr/sbin/policy-rc.d
    created_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        created_policy=yes
    fi
    cleanup() {
        if [ "$created_policy" = yes ]; then rm -f "$policy"; fi
    }
    trap cleanup EXIT
    export DEBIAN_FRONTEND=noninteractive
    echo "install-tools: installing$packages (for$missing)" >&2
    apt-get -o DPkg::Lock::Timeout=300 update -q >&2
    # shellcheck disable=SC2086  # one word per package
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $packages >&2
fi

status=0
for tool in "$@"; do
    if ! command -v "$tool"; then
        echo "install-tools: $tool is still missing after apt-get install" >&2
        status=1
    fi
done
exit $status
