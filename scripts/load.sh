#!/usr/bin/env bash
# Load comparison, one run, this machine, loopback only. Every row is
# measured in interleaved rounds against nginx proxying the same upstream:
#   direct        wrk → nginx upstream ("return 200")
#   nginx         wrk → nginx proxy_pass (no auth at all) → upstream
#   rp-hs256      wrk → revoke-proxy (HS256 + revocation check, memory store)
#   rp-info       HS256 at log.level info: one access line per request (file)
#   nginx-log     nginx proxy_pass with its access log on (file), beside rp-info
#   rp-rs256 / rp-es256 / rp-eddsa   the same with RS256 2048, ES256, EdDSA
#   rp-redis      HS256, redis store, replica mode (local copy + change log)
#   rp-redis-pr   HS256, redis store, per_request mode
#   rp-memcd      HS256, memcached store (one multi-get per request)
#   fresh-hs256 / fresh-rs256 / fresh-es256 / fresh-eddsa
#                 every request carries a token never seen before (no
#                 verification cache hit); the proxy's RSS is printed after
#   nginx-tls / rp-tls       wrk over https (P-256 certificate, same for both)
#   nginx-h2c / rp-h2c       h2load, 16 connections x 10 streams, h2 prior knowledge
#   nginx-h2tls / rp-h2tls   h2load over https (ALPN h2), same shape
#   nginx-c512 / rp-c512, nginx-c4096 / rp-c4096   512 and 4,096 keep-alive connections
# `scripts/load.sh --fleet` instead runs scripts/fleet.py: 10 redis replicas
# and 1,000,000 revocations (start-up, idle, catch-up, memory, propagation).
# BASE_BIN=path/to/an/older/revoke-proxy adds rp-base (rp-hs256's config on
# that binary), base-info (rp-info's) and base-tls (rp-tls's) to the same rounds: before/after
# figures from one run. ONLY="nginx rp-hs256 …" limits the rows.
# Each wrk run rotates over TOKENS distinct tokens. Prints requests/s, p50,
# p99 and the table of ratios. Bounded: each run lasts DURATION.
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
# PIN=1 (the default with 2 or more cores): the upstream and every proxy on
# core 0, one worker each; wrk and h2load on core 1. The load generator then
# never takes CPU from what is measured, and nginx and revoke-proxy get the
# same single core. PIN=0 lets everything share every core.
CORES=$(nproc)
PIN=${PIN:-$([ "$CORES" -ge 2 ] && echo 1 || echo 0)}
SERVE=(); LOAD=(); PROXY_WORKERS=auto
if [ "$PIN" = 1 ]; then
  SERVE=(taskset -c 0); LOAD=(taskset -c 1); PROXY_WORKERS=1
fi

cargo build --release --quiet
if [ "${1:-}" = --fleet ]; then
  # Fleet scale of the redis store (ENTRIES, REPLICAS, IDLE_SECONDS, MISSED).
  exec python3 scripts/fleet.py
fi
BIN=target/release/revoke-proxy

source scripts/common.sh
declare -A PORT
for name in UP NGX NGL NTLS NH2 NH2T HS IN RS ES ED RR RP MP TL BP BI BT FH FR FE FD RD MC; do PORT[$name]=$(free_port); done
UP=${PORT[UP]}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

write_nginx() { # name port workers body
  cat > "$work/$1.conf" <<CONF
worker_processes $3;
worker_rlimit_nofile 20000;
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 16384; }
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
  "${SERVE[@]}" "$NGINX" -c "$work/$1.conf" -p "$work" &
  pids+=($!)
}
SSL="ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
write_nginx upstream "$UP" 1 'location / { return 200 "ok\n"; }'
PROXY_PASS='location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }'
write_nginx proxy "${PORT[NGX]}" "$PROXY_WORKERS" "$PROXY_PASS"
# The same with nginx's access log on (combined format, to a file): what a
# log line per request costs nginx, beside rp-info.
write_nginx proxy-log "${PORT[NGL]}" "$PROXY_WORKERS" "access_log $work/nginx-access.log; $PROXY_PASS"
write_nginx proxy-tls "${PORT[NTLS]} ssl" "$PROXY_WORKERS" "$SSL $PROXY_PASS"
write_nginx proxy-h2c "${PORT[NH2]} http2" "$PROXY_WORKERS" "$PROXY_PASS"
write_nginx proxy-h2tls "${PORT[NH2T]} ssl http2" "$PROXY_WORKERS" "$SSL $PROXY_PASS"

SECRET=load-test-secret-0123456789-0123456789
KEYS=$PWD/tests/fixtures/keys
proxy_config() { # port algorithm key-line [extra yaml]
  printf 'listen: 127.0.0.1:%s\nupstream: http://127.0.0.1:%s\njwt:\n  algorithms: [%s]\n  %s\nlog:\n  level: warn\n%b' \
    "$1" "$UP" "$2" "$3" "${4:-}"
}
HS_KEY="secret: $SECRET"
TLS_YAML="tls:\n  cert_file: $work/cert.pem\n  key_file: $work/key.pem\n"
proxy_config "${PORT[HS]}" HS256 "$HS_KEY" > "$work/hs.yaml"
proxy_config "${PORT[IN]}" HS256 "$HS_KEY" | sed 's/level: warn/level: info/' > "$work/in.yaml"
proxy_config "${PORT[RS]}" RS256 "public_key_file: $KEYS/rsa.pub" > "$work/rs.yaml"
proxy_config "${PORT[ES]}" ES256 "public_key_file: $KEYS/ec256.pub" > "$work/es.yaml"
proxy_config "${PORT[ED]}" EdDSA "public_key_file: $KEYS/ed25519.pub" > "$work/ed.yaml"
proxy_config "${PORT[FH]}" HS256 "$HS_KEY" > "$work/fh.yaml"
proxy_config "${PORT[FR]}" RS256 "public_key_file: $KEYS/rsa.pub" > "$work/fr.yaml"
proxy_config "${PORT[FE]}" ES256 "public_key_file: $KEYS/ec256.pub" > "$work/fe.yaml"
proxy_config "${PORT[FD]}" EdDSA "public_key_file: $KEYS/ed25519.pub" > "$work/fd.yaml"
proxy_config "${PORT[TL]}" HS256 "$HS_KEY" "$TLS_YAML" > "$work/tl.yaml"
STORE="revocation:\n  store:\n"
proxy_config "${PORT[RR]}" HS256 "$HS_KEY" "${STORE}    type: redis\n    url: redis://127.0.0.1:${PORT[RD]}\n" > "$work/rr.yaml"
proxy_config "${PORT[RP]}" HS256 "$HS_KEY" "${STORE}    type: redis\n    url: redis://127.0.0.1:${PORT[RD]}\n    mode: per_request\n" > "$work/rp.yaml"
proxy_config "${PORT[MP]}" HS256 "$HS_KEY" "${STORE}    type: memcached\n    url: memcache://127.0.0.1:${PORT[MC]}\n" > "$work/mp.yaml"
"${SERVE[@]}" redis-server --port "${PORT[RD]}" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 & pids+=($!)
MC_USER=(); [ "$(id -u)" = 0 ] && MC_USER=(-u root)
"${SERVE[@]}" memcached -l 127.0.0.1 -p "${PORT[MC]}" -U 0 "${MC_USER[@]}" > "$work/memcached.log" 2>&1 & pids+=($!)
for port in "${PORT[RD]}" "${PORT[MC]}"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done
declare -A PID
for name in hs in rs es ed fh fr fe fd tl rr rp mp; do
  "${SERVE[@]}" "$BIN" run --config "$work/$name.yaml" > "$work/$name.log" 2>&1 & pids+=($!); PID[$name]=$!
done
if [ -n "${BASE_BIN:-}" ]; then
  sed -e "s/127.0.0.1:${PORT[HS]}/127.0.0.1:${PORT[BP]}/" "$work/hs.yaml" > "$work/base.yaml"
  sed -e "s/127.0.0.1:${PORT[TL]}/127.0.0.1:${PORT[BT]}/" "$work/tl.yaml" > "$work/base-tls.yaml"
  sed -e "s/127.0.0.1:${PORT[IN]}/127.0.0.1:${PORT[BI]}/" "$work/in.yaml" > "$work/base-info.yaml"
  "${SERVE[@]}" "$BASE_BIN" run --config "$work/base.yaml" > "$work/base.log" 2>&1 & pids+=($!)
  "${SERVE[@]}" "$BASE_BIN" run --config "$work/base-info.yaml" > "$work/base-info.log" 2>&1 & pids+=($!)
  "${SERVE[@]}" "$BASE_BIN" run --config "$work/base-tls.yaml" > "$work/base-tls.log" 2>&1 & pids+=($!)
fi

# Rotating (cached) tokens, and never-seen ones: FRESH_RATE_<ALG> tokens a
# second are enough for a run of DURATION in every round; a row that runs
# out says so (reused=N) and its figure is not an all-fresh one.
secs=${DURATION%s}
wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
python3 scripts/mint.py HS256 "$SECRET" "$TOKENS" > "$work/hs.tokens"
python3 scripts/mint.py RS256 "$KEYS/rsa.key" "$TOKENS" > "$work/rs.tokens"
python3 scripts/mint.py ES256 "$KEYS/ec256.key" "$TOKENS" > "$work/es.tokens"
python3 scripts/mint.py EdDSA "$KEYS/ed25519.key" "$TOKENS" > "$work/ed.tokens"
fresh_count() { echo $(( $1 * (secs + 1) * ROUNDS )); }
fresh() { # alg key rate name: one file of never-seen tokens per round
  python3 scripts/mint.py "$1" "$2" "$(fresh_count "$3")" fresh > "$work/$4.fresh"
  split -d -n "l/$ROUNDS" "$work/$4.fresh" "$work/$4.fresh."
  rm "$work/$4.fresh"
}
wanted_any() { for n in "$@"; do wanted "$n" && return 0; done; return 1; }
wanted_any fresh-hs256 && fresh HS256 "$SECRET" "${FRESH_RATE_HS256:-90000}" hs
wanted_any fresh-rs256 && fresh RS256 "$KEYS/rsa.key" "${FRESH_RATE_RS256:-25000}" rs
wanted_any fresh-es256 && fresh ES256 "$KEYS/ec256.key" "${FRESH_RATE_ES256:-20000}" es
wanted_any fresh-eddsa && fresh EdDSA "$KEYS/ed25519.key" "${FRESH_RATE_EDDSA:-25000}" ed
cat > "$work/rotate.lua" <<'LUA'
-- TOKENS_FILE in turn; with FRESH=1 each token once, counting the requests
-- that had to reuse one because the file ran out.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local fresh = os.getenv("FRESH") == "1"
local n = 0
reused = 0
request = function()
  n = n + 1
  if fresh and n > #tokens then reused = reused + 1 end
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[((n - 1) % #tokens) + 1] })
end
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function()
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("reused") or 0) end
  io.write("reused ", total, "\n")
end
LUA

for port in "${PORT[@]}"; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
done
# Every proxy must answer 200 before it is measured.
tok=$(head -1 "$work/hs.tokens")
urls=("http://127.0.0.1:${PORT[NGX]}/")
for name in HS IN RR RP MP FH ${BASE_BIN:+BP BI}; do urls+=("http://127.0.0.1:${PORT[$name]}/"); done
for url in "${urls[@]}"; do
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

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

run() { # name url tokens [fresh] [connections]
  wanted "$1" || return 0
  local conns=${5:-$CONNS}
  local file=$3 fresh=0
  if [ "${4:-}" = fresh ]; then file="$3.$(printf %02d $((round - 1)))"; fresh=1; fi
  TOKENS_FILE="$file" FRESH=$fresh \
    "${LOAD[@]}" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -s "$work/rotate.lua" "$2" > "$work/$1.wrk" 2>&1 || true
  local rps p50 p99 errs reused note=""
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.wrk")
  errs=$(awk '/Non-2xx/ {print $NF}' "$work/$1.wrk")
  reused=$(awk '$1=="reused" {print $2}' "$work/$1.wrk")
  [ -n "$errs" ] && note+=" non-2xx=$errs"
  [ "${reused:-0}" != 0 ] && note+=" reused=$reused"
  printf '%-12s %12s %10s %10s%s\n' "$1" "${rps:-0}" "${p50:--}" "${p99:--}" "$note"
  echo "$1 ${rps:-0} ${p99:-nan} ${errs:-0}" >> "$work/results"
}

h2run() { # name url: h2load, 16 connections x 10 streams, one (cached) token
  wanted "$1" || return 0
  "${LOAD[@]}" h2load -c16 -m10 -t1 -D "$secs" -H "authorization: Bearer $tok" "$2" > "$work/$1.h2" 2>&1 || true
  local rps ok
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$work/$1.h2")
  ok=$(awk '/^status codes:/ {print $3}' "$work/$1.h2")
  printf '%-12s %12s %10s %10s %s\n' "$1" "${rps:-0}" - - "2xx=${ok:-0}"
  local total
  total=$(awk '/^requests:/ {print $2}' "$work/$1.h2")
  echo "$1 ${rps:-0} nan $(( ${total:-0} - ${ok:-0} ))" >> "$work/results"
}

echo "wrk: $THREADS thread(s), $CONNS connections, $DURATION per run, $ROUNDS rounds, $TOKENS distinct tokens; $CORES cores, PIN=$PIN"
printf '%-12s %12s %10s %10s\n' scenario 'req/s' p50 p99
rss_before=$(for n in fh fr fe fd; do echo "$n $(rss_kb "${PID[$n]}")"; done)
# Rounds interleave the scenarios so drift on the shared machine hits all of
# them alike; the ratios use each scenario's median.
for round in $(seq 1 "$ROUNDS"); do
  run direct "http://127.0.0.1:$UP/" "$work/hs.tokens"
  run nginx "http://127.0.0.1:${PORT[NGX]}/" "$work/hs.tokens"
  run rp-hs256 "http://127.0.0.1:${PORT[HS]}/" "$work/hs.tokens"
  [ -n "${BASE_BIN:-}" ] && run rp-base "http://127.0.0.1:${PORT[BP]}/" "$work/hs.tokens"
  run rp-info "http://127.0.0.1:${PORT[IN]}/" "$work/hs.tokens"
  run nginx-log "http://127.0.0.1:${PORT[NGL]}/" "$work/hs.tokens"
  [ -n "${BASE_BIN:-}" ] && run base-info "http://127.0.0.1:${PORT[BI]}/" "$work/hs.tokens"
  run rp-rs256 "http://127.0.0.1:${PORT[RS]}/" "$work/rs.tokens"
  run rp-es256 "http://127.0.0.1:${PORT[ES]}/" "$work/es.tokens"
  run rp-eddsa "http://127.0.0.1:${PORT[ED]}/" "$work/ed.tokens"
  run fresh-hs256 "http://127.0.0.1:${PORT[FH]}/" "$work/hs.fresh" fresh
  run fresh-rs256 "http://127.0.0.1:${PORT[FR]}/" "$work/rs.fresh" fresh
  run fresh-es256 "http://127.0.0.1:${PORT[FE]}/" "$work/es.fresh" fresh
  run fresh-eddsa "http://127.0.0.1:${PORT[FD]}/" "$work/ed.fresh" fresh
  run rp-redis "http://127.0.0.1:${PORT[RR]}/" "$work/hs.tokens"
  run rp-redis-pr "http://127.0.0.1:${PORT[RP]}/" "$work/hs.tokens"
  run rp-memcd "http://127.0.0.1:${PORT[MP]}/" "$work/hs.tokens"
  run nginx-tls "https://127.0.0.1:${PORT[NTLS]}/" "$work/hs.tokens"
  run rp-tls "https://127.0.0.1:${PORT[TL]}/" "$work/hs.tokens"
  [ -n "${BASE_BIN:-}" ] && run base-tls "https://127.0.0.1:${PORT[BT]}/" "$work/hs.tokens"
  h2run nginx-h2c "http://127.0.0.1:${PORT[NH2]}/"
  h2run rp-h2c "http://127.0.0.1:${PORT[HS]}/"
  h2run nginx-h2tls "https://127.0.0.1:${PORT[NH2T]}/"
  h2run rp-h2tls "https://127.0.0.1:${PORT[TL]}/"
  run nginx-c512 "http://127.0.0.1:${PORT[NGX]}/" "$work/hs.tokens" "" 512
  run rp-c512 "http://127.0.0.1:${PORT[HS]}/" "$work/hs.tokens" "" 512
  run nginx-c4096 "http://127.0.0.1:${PORT[NGX]}/" "$work/hs.tokens" "" 4096
  run rp-c4096 "http://127.0.0.1:${PORT[HS]}/" "$work/hs.tokens" "" 4096
done
rss_after=$(for n in fh fr fe fd; do echo "$n $(rss_kb "${PID[$n]}")"; done)

python3 - "$work/results" "$rss_before" "$rss_after" <<'PY'
import statistics, sys
def ms(text):  # wrk prints 417.00us, 1.38ms, 1.02s
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float("nan")
runs, tails, failed = {}, {}, {}
for line in open(sys.argv[1]):
    name, rps, p99, errs = line.split()
    runs.setdefault(name, []).append(float(rps))
    tails.setdefault(name, []).append(ms(p99))
    failed[name] = failed.get(name, 0) + int(errs)
r = {k: statistics.median(v) for k, v in runs.items()}
t = {k: statistics.median(v) for k, v in tails.items()}
before = dict(l.split() for l in sys.argv[2].splitlines())
after = dict(l.split() for l in sys.argv[3].splitlines())
# row: (scenario, against, target, what)
rows = [
    ("direct", None, None, "wrk straight to the upstream"),
    ("nginx", None, None, "nginx proxy_pass, no auth"),
    ("rp-hs256", "nginx", 1.1, "HS256, memory store"),
    ("rp-base", "nginx", None, "HS256 on BASE_BIN"),
    ("rp-info", "nginx", 1.0, "HS256, access line per request"),
    ("base-info", "nginx", None, "access line on BASE_BIN"),
    ("nginx-log", "nginx", None, "nginx with its access log"),
    ("rp-rs256", "nginx", None, "RS256 2048, cached"),
    ("rp-es256", "nginx", None, "ES256, cached"),
    ("rp-eddsa", "nginx", None, "EdDSA, cached"),
    ("fresh-hs256", "nginx", None, "HS256, every token new"),
    ("fresh-rs256", "nginx", None, "RS256 2048, every token new"),
    ("fresh-es256", "nginx", None, "ES256, every token new"),
    ("fresh-eddsa", "nginx", None, "EdDSA, every token new"),
    ("rp-redis", "nginx", None, "HS256, redis replica"),
    ("rp-redis-pr", "nginx", None, "HS256, redis per_request"),
    ("rp-memcd", "nginx", None, "HS256, memcached"),
    ("nginx-tls", None, None, "nginx listen ssl"),
    ("rp-tls", "nginx-tls", 1.0, "HTTPS, HTTP/1.1"),
    ("base-tls", "nginx-tls", None, "HTTPS on BASE_BIN"),
    ("nginx-h2c", None, None, "nginx http2 (h2load)"),
    ("rp-h2c", "nginx-h2c", 1.2, "h2c (h2load)"),
    ("nginx-h2tls", None, None, "nginx ssl http2 (h2load)"),
    ("rp-h2tls", "nginx-h2tls", 1.2, "h2 over TLS (h2load)"),
    ("nginx-c512", None, None, "nginx, 512 connections"),
    ("rp-c512", "nginx-c512", 1.0, "HS256, 512 connections"),
    ("nginx-c4096", None, None, "nginx, 4,096 connections"),
    ("rp-c4096", "nginx-c4096", 1.0, "HS256, 4,096 connections"),
]
print()
print(f"| {'scenario':<12} | {'what':<31} | {'req/s':>8} | {'x nginx':>18} | {'target':>6} | {'p99 ms':>7} | {'nginx p99':>9} | {'not 2xx':>7} |")
print(f"|{'-'*14}|{'-'*33}|{'-'*10}|{'-'*20}|{'-'*8}|{'-'*9}|{'-'*11}|{'-'*9}|")
for name, against, target, what in rows:
    if name not in r:
        continue
    ratio = f"{r[name] / r[against]:.2f} ({against})" if against in r and r[against] else ""
    goal = f">= {target}" if target else ""
    mine = f"{t[name]:.2f}" if t[name] == t[name] else "-"
    theirs = f"{t[against]:.2f}" if against in t and t[against] == t[against] else ""
    print(f"| {name:<12} | {what:<31} | {r[name]:8.0f} | {ratio:>18} | {goal:>6} | {mine:>7} | {theirs:>9} | {failed[name]:>7} |")
print()
if "rp-hs256" in r and "direct" in t:
    print(f"p99 added over direct: rp-hs256 {t['rp-hs256'] - t['direct']:.2f} ms, nginx {t.get('nginx', float('nan')) - t['direct']:.2f} ms (target <= 1 ms)")
for cached, fresh in (("rp-hs256", "fresh-hs256"), ("rp-rs256", "fresh-rs256"), ("rp-es256", "fresh-es256"), ("rp-eddsa", "fresh-eddsa")):
    if cached in r and fresh in r:
        key = {"fresh-hs256": "fh", "fresh-rs256": "fr", "fresh-es256": "fe", "fresh-eddsa": "fd"}[fresh]
        print(f"{fresh}: {r[fresh] / r[cached]:.2f} x cached; proxy RSS {int(before[key]) / 1024:.1f} MB before the rounds, {int(after[key]) / 1024:.1f} MB after")
for store in ("rp-redis", "rp-redis-pr", "rp-memcd"):
    if store in r and "rp-hs256" in r:
        print(f"{store} / memory: {r[store] / r['rp-hs256']:.2f}")
if "rp-info" in r and "nginx-log" in r:
    print(f"rp-info / nginx-log (a log line per request on both sides): {r['rp-info'] / r['nginx-log']:.2f}")
if "rp-base" in r and "rp-hs256" in r:
    print(f"rp-hs256 / rp-base (this build / BASE_BIN): {r['rp-hs256'] / r['rp-base']:.2f}")
if "base-info" in r and "rp-info" in r:
    print(f"rp-info / base-info (this build / BASE_BIN): {r['rp-info'] / r['base-info']:.2f}")
if "base-tls" in r and "rp-tls" in r:
    print(f"rp-tls / base-tls (this build / BASE_BIN): {r['rp-tls'] / r['base-tls']:.2f}")
PY
