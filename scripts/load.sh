#!/usr/bin/env bash
# Load comparison, one run, this machine, loopback only:
#   direct      wrk → nginx upstream ("return 200")
#   nginx       wrk → nginx proxy_pass (no auth at all) → upstream
#   rp-hs256    wrk → revoke-proxy (HS256 + revocation check, memory store) → upstream
#   rp-rs256    wrk → revoke-proxy (RS256, same) → upstream
#   rp-info     HS256 as rp-hs256, at log.level info: one access line per
#               request, written to a file
#   rp-redis    HS256, redis store, replica mode (local copy + change log)
#   rp-redis-pr HS256, redis store, per_request mode (3 GETs per request)
#   rp-memcd    HS256, memcached store (one multi-get per request)
#   nginx-tls   wrk over https → nginx `listen ssl` proxy_pass (P-256 certificate)
#   rp-tls      wrk over https → revoke-proxy `tls:` with the same certificate
#   rp-rs256-f1k RS256 with 1,000 never-seen tokens a second among cached ones
#               (verification cache misses; FRESH_PER_SEC)
#   rp-es256-f1k the same with ES256 (P-256)
#   nginx-h2c   h2load (16 connections × 10 streams, one token) → nginx `http2`
#   rp-h2c      h2load, same → revoke-proxy's plain port (h2 prior knowledge)
# `scripts/load.sh --fleet` instead runs scripts/fleet.py: 10 redis replicas
# and 1,000,000 revocations (start-up, idle, catch-up, memory, propagation).
# BASE_BIN=path/to/an/older/revoke-proxy adds rp-base (rp-hs256's config on
# that binary) to the same rounds and prints rp-hs256 / rp-base: before/after
# figures from one run.
# Each proxy run rotates over TOKENS distinct tokens. Prints requests/s, p50,
# p99 and the ratios the README lists as targets. Bounded: each run lasts DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
TOKENS=${TOKENS:-256}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v memcached >/dev/null || missing+=(memcached)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
if [ "${1:-}" = --fleet ]; then
  # Fleet scale of the redis store (ENTRIES, REPLICAS, IDLE_SECONDS, MISSED).
  exec python3 scripts/fleet.py
fi
BIN=target/release/revoke-proxy

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP=$(free_port); NGX=$(free_port); HS=$(free_port); RS=$(free_port); IN=$(free_port)
RD=$(free_port); MC=$(free_port); RR=$(free_port); RP=$(free_port); MP=$(free_port)
BP=$(free_port); NTLS=$(free_port); TL=$(free_port); NH2=$(free_port); ES=$(free_port)
FRESH_PER_SEC=${FRESH_PER_SEC:-1000}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

write_nginx() { # name port workers body
  cat > "$work/$1.conf" <<CONF
worker_processes $3;
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;  # nginx closes a client connection after 1,000 requests by default (h2load does not reconnect)
  client_body_temp_path $work/$1-body;
  proxy_temp_path $work/$1-proxy;
  fastcgi_temp_path $work/$1-fcgi;
  uwsgi_temp_path $work/$1-uwsgi;
  scgi_temp_path $work/$1-scgi;
  upstream app { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$2; $4 }
}
CONF
  "$NGINX" -c "$work/$1.conf" -p "$work" &
  pids+=($!)
}
write_nginx upstream "$UP" 1 'location / { return 200 "ok\n"; }'
PROXY_PASS='location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }'
write_nginx proxy "$NGX" auto "$PROXY_PASS"
write_nginx proxy-tls "$NTLS ssl" auto "ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; $PROXY_PASS"
write_nginx proxy-h2c "$NH2 http2" auto "$PROXY_PASS"

SECRET=load-test-secret-0123456789-0123456789
cat > "$work/hs.yaml" <<CONF
listen: 127.0.0.1:$HS
upstream: http://127.0.0.1:$UP
jwt:
  algorithms: [HS256]
  secret: $SECRET
log:
  level: warn
CONF
sed -e "s/127.0.0.1:$HS/127.0.0.1:$RS/" -e "s/\[HS256\]/[RS256]/" \
    -e "s|secret: $SECRET|public_key_file: $PWD/tests/fixtures/keys/rsa.pub|" "$work/hs.yaml" > "$work/rs.yaml"
sed -e "s/127.0.0.1:$HS/127.0.0.1:$ES/" -e "s/\[HS256\]/[ES256]/" \
    -e "s|secret: $SECRET|public_key_file: $PWD/tests/fixtures/keys/ec256.pub|" "$work/hs.yaml" > "$work/es.yaml"
sed -e "s/127.0.0.1:$HS/127.0.0.1:$IN/" -e "s/level: warn/level: info/" "$work/hs.yaml" > "$work/in.yaml"
{ sed -e "s/127.0.0.1:$HS/127.0.0.1:$TL/" "$work/hs.yaml"
  printf 'tls:\n  cert_file: %s\n  key_file: %s\n' "$work/cert.pem" "$work/key.pem"; } > "$work/tl.yaml"
redis-server --port "$RD" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 & pids+=($!)
MC_USER=(); [ "$(id -u)" = 0 ] && MC_USER=(-u root)
memcached -l 127.0.0.1 -p "$MC" -U 0 "${MC_USER[@]}" > "$work/memcached.log" 2>&1 & pids+=($!)
for port in "$RD" "$MC"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done
with_store() { # port yaml-store-lines
  sed -e "s/127.0.0.1:$HS/127.0.0.1:$1/" "$work/hs.yaml"
  printf 'revocation:\n  store:\n%b' "$2"
}
with_store "$RR" "    type: redis\n    url: redis://127.0.0.1:$RD\n" > "$work/rr.yaml"
with_store "$RP" "    type: redis\n    url: redis://127.0.0.1:$RD\n    mode: per_request\n" > "$work/rp.yaml"
with_store "$MP" "    type: memcached\n    url: memcache://127.0.0.1:$MC\n" > "$work/mp.yaml"
for name in hs rs es in rr rp mp tl; do
  "$BIN" run --config "$work/$name.yaml" > "$work/$name.log" 2>&1 & pids+=($!)
done
BASE_URL=()
if [ -n "${BASE_BIN:-}" ]; then
  sed -e "s/127.0.0.1:$HS/127.0.0.1:$BP/" "$work/hs.yaml" > "$work/base.yaml"
  "$BASE_BIN" run --config "$work/base.yaml" > "$work/base.log" 2>&1 & pids+=($!)
  BASE_URL=("http://127.0.0.1:$BP/")
fi

python3 scripts/mint.py HS256 "$SECRET" "$TOKENS" > "$work/hs.tokens"
python3 scripts/mint.py RS256 tests/fixtures/keys/rsa.key "$TOKENS" > "$work/rs.tokens"
python3 scripts/mint.py ES256 tests/fixtures/keys/ec256.key "$TOKENS" > "$work/es.tokens"
# Never-seen tokens: FRESH_PER_SEC a second for every round, none reused.
per_round=$(( FRESH_PER_SEC * (${DURATION%s} + 1) ))
python3 scripts/mint.py RS256 tests/fixtures/keys/rsa.key $(( per_round * ROUNDS )) fresh > "$work/rs.fresh"
python3 scripts/mint.py ES256 tests/fixtures/keys/ec256.key $(( per_round * ROUNDS )) fresh > "$work/es.fresh"
cat > "$work/fresh.lua" <<'LUA'
-- FRESH_PER_SEC never-seen tokens each second (from FRESH_OFFSET on), the
-- rest from the cached rotation.
local cached, fresh = {}, {}
for line in io.lines(os.getenv("TOKENS_FILE")) do cached[#cached + 1] = line end
for line in io.lines(os.getenv("FRESH_FILE")) do fresh[#fresh + 1] = line end
local per_sec = tonumber(os.getenv("FRESH_PER_SEC"))
local next_fresh = tonumber(os.getenv("FRESH_OFFSET")) + 1
local second, used, n = 0, 0, 0
request = function()
  n = n + 1
  local now = os.time()
  if now ~= second then second = now; used = 0 end
  local tok
  if used < per_sec and next_fresh <= #fresh then
    used = used + 1
    tok = fresh[next_fresh]
    next_fresh = next_fresh + 1
  else
    tok = cached[(n % #cached) + 1]
  end
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tok })
end
LUA
cat > "$work/rotate.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] })
end
LUA

for port in "$UP" "$NGX" "$HS" "$RS" "$ES" "$IN" "$RR" "$RP" "$MP" "$NTLS" "$TL" "$NH2" ${BASE_BIN:+"$BP"}; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
done
# Every proxy must answer 200 before it is measured.
tok=$(head -1 "$work/hs.tokens")
for url in "http://127.0.0.1:$NGX/" "http://127.0.0.1:$HS/" "http://127.0.0.1:$IN/" "http://127.0.0.1:$RR/" \
           "http://127.0.0.1:$RP/" "http://127.0.0.1:$MP/" "${BASE_URL[@]}"; do
  code=$(python3 - "$url" "$tok" <<'PY'
import sys, time, urllib.error, urllib.request
code = 0
for _ in range(100):  # a replica answers 503 until it has synced with its store
    try:
        req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
        code = urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = 0
    if code == 200:
        break
    time.sleep(0.05)
print(code)
PY
)
  [ "$code" = 200 ] || { echo "$url answered $code"; exit 1; }
done

run() { # name url [tokens [fresh-tokens]]
  local args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" --latency)
  if [ -n "${4:-}" ]; then
    TOKENS_FILE="$3" FRESH_FILE="$4" FRESH_PER_SEC=$(( FRESH_PER_SEC / THREADS )) \
      FRESH_OFFSET=$(( (round - 1) * per_round )) \
      wrk "${args[@]}" -s "$work/fresh.lua" "$2" > "$work/$1.wrk"
  elif [ -n "${3:-}" ]; then
    TOKENS_FILE="$3" wrk "${args[@]}" -s "$work/rotate.lua" "$2" > "$work/$1.wrk"
  else
    wrk "${args[@]}" "$2" > "$work/$1.wrk"
  fi
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.wrk")
  errs=$(awk '/Non-2xx/ {print $NF}' "$work/$1.wrk")
  printf '%-12s %12s %10s %10s %s\n' "$1" "$rps" "$p50" "$p99" "${errs:+non-2xx=$errs}"
  echo "$1 $rps $p99" >> "$work/results"
}

h2run() { # name url: h2load, 16 connections x 10 streams, one (cached) token
  local secs=${DURATION%s}
  h2load -c16 -m10 -t1 -D "$secs" -H "authorization: Bearer $tok" "$2" > "$work/$1.h2" 2>&1 || true
  local rps
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$work/$1.h2")
  local ok
  ok=$(awk '/^status codes:/ {print $3}' "$work/$1.h2")
  printf '%-12s %12s %10s %10s %s\n' "$1" "${rps:-0}" - - "2xx=${ok:-0}"
  echo "$1 ${rps:-0} nan" >> "$work/results"
}

echo "wrk: $THREADS thread(s), $CONNS connections, $DURATION per run, $ROUNDS rounds, $TOKENS distinct tokens"
printf '%-12s %12s %10s %10s\n' scenario 'req/s' p50 p99
# Every run sends the same Authorization headers through the same wrk script,
# so the load generator costs the same CPU in each (the machine is shared).
# Rounds interleave the scenarios so drift on the shared machine hits all of
# them alike; the ratios use each scenario's median.
for round in $(seq 1 "$ROUNDS"); do
  run direct "http://127.0.0.1:$UP/" "$work/hs.tokens"
  run nginx "http://127.0.0.1:$NGX/" "$work/hs.tokens"
  run rp-hs256 "http://127.0.0.1:$HS/" "$work/hs.tokens"
  [ -n "${BASE_BIN:-}" ] && run rp-base "http://127.0.0.1:$BP/" "$work/hs.tokens"
  run rp-rs256 "http://127.0.0.1:$RS/" "$work/rs.tokens"
  run rp-rs256-f1k "http://127.0.0.1:$RS/" "$work/rs.tokens" "$work/rs.fresh"
  run rp-es256-f1k "http://127.0.0.1:$ES/" "$work/es.tokens" "$work/es.fresh"
  run rp-info "http://127.0.0.1:$IN/" "$work/hs.tokens"
  run rp-redis "http://127.0.0.1:$RR/" "$work/hs.tokens"
  run rp-redis-pr "http://127.0.0.1:$RP/" "$work/hs.tokens"
  run rp-memcd "http://127.0.0.1:$MP/" "$work/hs.tokens"
  run nginx-tls "https://127.0.0.1:$NTLS/" "$work/hs.tokens"
  run rp-tls "https://127.0.0.1:$TL/" "$work/hs.tokens"
  h2run nginx-h2c "http://127.0.0.1:$NH2/"
  h2run rp-h2c "http://127.0.0.1:$HS/"
done

python3 - "$work/results" <<'PY'
import statistics, sys
def ms(text):  # wrk prints 417.00us, 1.38ms, 1.02s
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float("nan")
runs, tails = {}, {}
for line in open(sys.argv[1]):
    name, rps, p99 = line.split()
    runs.setdefault(name, []).append(float(rps))
    tails.setdefault(name, []).append(ms(p99))
r = {k: statistics.median(v) for k, v in runs.items()}
t = {k: statistics.median(v) for k, v in tails.items()}
print()
for k, v in r.items():
    print(f"median {k:<11} {v:10.0f} req/s   p99 {t[k]:5.2f} ms")
print(f"rp-hs256 / direct : {r['rp-hs256'] / r['direct']:.2f}")
print(f"rp-hs256 / nginx  : {r['rp-hs256'] / r['nginx']:.2f}   (target >= 1.0)")
print(f"rp-rs256 / hs256  : {r['rp-rs256'] / r['rp-hs256']:.2f}   (target >= 0.9)")
print(f"rp-info / nginx   : {r['rp-info'] / r['nginx']:.2f}   (access line per request)")
print(f"nginx / direct    : {r['nginx'] / r['direct']:.2f}")
print(f"p99 added over direct, rp-hs256 : {t['rp-hs256'] - t['direct']:.2f} ms   (target <= 1 ms)")
print(f"p99 added over direct, rp-info  : {t['rp-info'] - t['direct']:.2f} ms")
print(f"p99 added over direct, nginx    : {t['nginx'] - t['direct']:.2f} ms")
print(f"redis replica / memory     : {r['rp-redis'] / r['rp-hs256']:.2f}   (target >= 0.95)")
print(f"redis per_request / memory : {r['rp-redis-pr'] / r['rp-hs256']:.2f}")
print(f"memcached / memory         : {r['rp-memcd'] / r['rp-hs256']:.2f}")
print(f"rp-rs256-f1k / nginx       : {r['rp-rs256-f1k'] / r['nginx']:.2f}   (1,000 fresh RS256 tokens/s)")
print(f"rp-es256-f1k / nginx       : {r['rp-es256-f1k'] / r['nginx']:.2f}   (1,000 fresh ES256 tokens/s)")
print(f"rp-tls / nginx-tls         : {r['rp-tls'] / r['nginx-tls']:.2f}   (https, same certificate)")
print(f"p99 rp-tls {t['rp-tls']:.2f} ms, nginx-tls {t['nginx-tls']:.2f} ms")
if r.get('nginx-h2c'):
    print(f"rp-h2c / nginx-h2c         : {r['rp-h2c'] / r['nginx-h2c']:.2f}   (h2load -c16 -m10)")
if "rp-base" in r:
    print(f"rp-hs256 / rp-base (this build / BASE_BIN) : {r['rp-hs256'] / r['rp-base']:.2f}")
    print(f"rp-base / nginx   : {r['rp-base'] / r['nginx']:.2f}")
PY
