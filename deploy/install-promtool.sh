#!/bin/sh
# Install promtool (Debian's `prometheus` package) when it is missing. Needs root and apt.
# Used by tests/deploy (once per test session); safe to run by hand. Idempotent.
set -eu

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-promtool: promtool is missing and this is not root: apt-get install prometheus" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-promtool: promtool is missing and there is no apt-get" >&2
    exit 1
fi

# Only promtool is wanted: keep the package's post-install from starting a Prometheus
# daemon (policy-rc.d exit 101 = "do not start services"), unless a policy already exists.
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
apt-get update -q
apt-get install -y -q --no-install-recommends prometheus
command -v promtool
