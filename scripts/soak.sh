#!/usr/bin/env bash
# Soak (a benchmark, not part of CI): SOAK_MINUTES (default 10) of mixed
# traffic through one release proxy on the file store — wrk with rotating
# tokens, a revocation through the admin API every 100 ms, a logout and a
# purge route hit by a second wrk, a configuration reload (SIGHUP) every
# 30 s — while the proxy's RSS and open file descriptors are sampled every
# 10 s. Prints the samples and the drift after the first minute's warm-up;
# flat means within ±5 %.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${SOAK_MINUTES:-10}
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk nginx-light
}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
BIN=target/release/revoke-proxy
source scripts/common.sh
UP=$(free_port); RP=$(free_port); AD=$(free_port)
cat > "$work/up.conf" <<CONF
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CONF
"$NGINX" -c "$work/up.conf" -p "$work" & pids+=($!)
SECRET=soak-test-secret-0123456789-0123456789
ADMIN=soak-admin-token-0123456789
cat > "$work/rp.yaml" <<CONF
listen: 127.0.0.1:$RP
upstream: http://127.0.0.1:$UP
jwt:
  algorithms: [HS256]
  secret: $SECRET
revocation:
  store:
    type: file
    path: $work/revocations
routes:
  - path: /logout
    methods: [POST]
    action: revoke
  - path: /password
    methods: [POST]
    action: purge
admin:
  listen: 127.0.0.1:$AD
  token: $ADMIN
log:
  level: warn
CONF
"$BIN" run --config "$work/rp.yaml" > "$work/rp.log" 2>&1 & RPID=$!; pids+=($RPID)
for port in "$UP" "$RP" "$AD"; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done
python3 scripts/mint.py HS256 "$SECRET" 5000 > "$work/tokens"
python3 scripts/mint.py HS256 "$SECRET" 5000 route > "$work/route-tokens"
cat > "$work/rotate.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local n = 0
local method = os.getenv("METHOD") or "GET"
local path = os.getenv("PATHS") or "/"
request = function()
  n = n + 1
  local p = path
  if path == "mixed" then p = (n % 2 == 0) and "/logout" or "/password" end
  return wrk.format(method, p, { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] })
end
LUA
secs=$((MINUTES * 60))
TOKENS_FILE="$work/tokens" wrk -t1 -c32 -d"${secs}s" -s "$work/rotate.lua" "http://127.0.0.1:$RP/" > "$work/main.wrk" & WRK1=$!; pids+=($WRK1)
TOKENS_FILE="$work/route-tokens" METHOD=POST PATHS=mixed wrk -t1 -c1 -d"${secs}s" -s "$work/rotate.lua" "http://127.0.0.1:$RP/" > "$work/routes.wrk" &
pids+=($!)
( n=0; while kill -0 "$WRK1" 2>/dev/null; do
    n=$((n + 1))
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
      -d "{\"sub\":\"soak-$n\",\"jti\":\"j-$n\",\"exp\":$(( $(date +%s) + 30 ))}" "http://127.0.0.1:$AD/v1/revoke" || true
    sleep 0.1
  done ) & pids+=($!)
( while kill -0 "$WRK1" 2>/dev/null; do sleep 30; kill -HUP "$RPID" 2>/dev/null || true; done ) & pids+=($!)
printf '%6s %10s %6s\n' second rss_kb fds
samples="$work/samples"
start=$(date +%s)
while kill -0 "$WRK1" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$RPID/status")
  fds=$(ls "/proc/$RPID/fd" | wc -l)
  printf '%6s %10s %6s\n' "$now" "$rss" "$fds" | tee -a "$samples"
  sleep 10
done
wait "$WRK1" || true
sleep 1
echo "main load:"; grep -E 'Requests/sec|Non-2xx|Socket errors' "$work/main.wrk" || true
echo "logout/purge routes:"; grep -E 'Requests/sec|Non-2xx|Socket errors' "$work/routes.wrk" || true
echo "revocations live at the end: $(curl -s "http://127.0.0.1:$AD/metrics" | awk '/^revoke_proxy_revocations_live/ {print $2}')"
python3 - "$samples" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
warm = [r for r in rows if r[0] >= 60] or rows
base_rss, base_fd = warm[0][1], warm[0][2]
for name, i, base in (("rss", 1, base_rss), ("fds", 2, base_fd)):
    lo, hi = min(r[i] for r in warm), max(r[i] for r in warm)
    drift = (warm[-1][i] - base) / base * 100
    print(f"{name}: after warm-up {base} -> {warm[-1][i]} ({drift:+.1f} %), range {lo}..{hi} "
          f"({(lo - base) / base * 100:+.1f} % .. {(hi - base) / base * 100:+.1f} %)")
    # The second half alone: growth that stops (sets and caches filling up)
    # is not a leak; growth that goes on is.
    half = warm[len(warm) // 2:]
    h0 = half[0][i]
    print(f"{name}: second half {h0} -> {half[-1][i]} ({(half[-1][i] - h0) / h0 * 100:+.1f} %)")
PY
