#!/usr/bin/env bash
# Where the plain HTTP/1.1 row's time goes: CPU per request of each proxy,
# against relays that do nothing but copy bytes. One run, this machine,
# loopback only; the upstream and every proxy on core 0, wrk on core 1,
# 32 connections, TOKENS rotating HS256 tokens (default 10,000).
#   nginx   nginx proxy_pass, no auth at all (the comparison of scripts/load.sh)
#   rp      revoke-proxy, HS256 + revocation check, memory store, one worker
#   epoll   a C relay: epoll, recv on one socket, send on its peer, nothing else
#           (the same four system calls per request as revoke-proxy)
#   uring   the same relay on io_uring (one io_uring_enter per batch of
#           completions, DEFER_TASKRUN); only when liburing is installed
# For each: requests/s and × nginx, CPU µs per request of the upstream and
# of the proxy (from /proc/<pid>/stat), and context switches per 1,000
# requests (the upstream's, and the proxy's involuntary ones: the upstream
# preempting it). Bounded: ROUNDS × 4 runs of DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-2}
TOKENS=${TOKENS:-10000}
[ "$(nproc)" -ge 2 ] || { echo "floor.sh pins the proxies and wrk to different cores: needs 2 or more" >&2; exit 1; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v cc >/dev/null || missing+=(gcc)
[ -e /usr/include/liburing.h ] || missing+=(liburing-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || true
  # liburing-dev may be missing from old distributions: the uring row is then left out.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" || true
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
BIN=target/release/revoke-proxy

source scripts/common.sh

# Both relays: argv[1] listen port, argv[2] upstream port; each client
# connection gets its own upstream connection; whatever one side sends is
# sent to the other. Errors close the pair.
cat > "$work/relay.h" <<'C'
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
static int peer[65536];
static struct sockaddr_in at(int port) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(0x7f000001);
  return a;
}
static int listen_on(int port) {
  int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = at(port);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (void *)&a, sizeof a) || listen(l, 1024)) exit(1);
  return l;
}
/* Pairs client socket c with a new upstream connection; -1 on failure. */
static int pair_with_upstream(int c, int port) {
  int one = 1, u = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in b = at(port);
  if (c >= 65536 || u < 0 || u >= 65536 || connect(u, (void *)&b, sizeof b)) {
    close(c); if (u >= 0) close(u); return -1;
  }
  setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  peer[c] = u; peer[u] = c;
  return u;
}
C
cat > "$work/epoll.c" <<'C'
#include "relay.h"
#include <fcntl.h>
#include <sys/epoll.h>
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int up = atoi(argv[2]), l = listen_on(atoi(argv[1])), ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = l}, evs[256];
  static char buf[65536];
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &e);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c = accept4(l, 0, 0, SOCK_NONBLOCK);
        if (c < 0) continue;
        int u = pair_with_upstream(c, up);
        if (u < 0) continue;
        fcntl(u, F_SETFL, O_NONBLOCK);
        struct epoll_event x = {.events = EPOLLIN | EPOLLET, .data.fd = c};
        struct epoll_event y = {.events = EPOLLIN | EPOLLET, .data.fd = u};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &x);
        epoll_ctl(ep, EPOLL_CTL_ADD, u, &y);
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r <= 0) { close(peer[fd]); close(fd); continue; }
      send(peer[fd], buf, r, 0);
    }
  }
}
C
cat > "$work/uring.c" <<'C'
#include "relay.h"
#include <liburing.h>
enum { ACCEPT = 1, RECV, SEND };
static struct io_uring ring;
static char *bufs[65536];
static void post(int kind, int fd) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
  if (kind == ACCEPT) io_uring_prep_accept(s, fd, 0, 0, 0);
  else io_uring_prep_recv(s, fd, bufs[fd], 16384, 0);
  io_uring_sqe_set_data64(s, ((unsigned long long)kind << 32) | (unsigned)fd);
}
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int up = atoi(argv[2]), l = listen_on(atoi(argv[1]));
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(4096, &ring, &p) < 0) return 3;
  post(ACCEPT, l);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cq;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cq) {
      seen++;
      unsigned long long d = io_uring_cqe_get_data64(cq);
      int kind = d >> 32, fd = d & 0xffffffff, res = cq->res;
      if (kind == ACCEPT) {
        post(ACCEPT, l);
        if (res < 0) continue;
        int u = pair_with_upstream(res, up);
        if (u < 0) continue;
        bufs[res] = malloc(16384); bufs[u] = malloc(16384);
        post(RECV, res); post(RECV, u);
      } else if (kind == RECV) {
        if (res <= 0) { close(fd); close(peer[fd]); continue; }
        struct io_uring_sqe *s = io_uring_get_sqe(&ring);
        if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
        io_uring_prep_send(s, peer[fd], bufs[fd], res, 0);
        io_uring_sqe_set_data64(s, ((unsigned long long)SEND << 32) | (unsigned)fd);
      } else {
        post(RECV, fd); /* the buffer is free again */
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
C
cc -O2 -o "$work/epoll" "$work/epoll.c"
rows=(nginx rp epoll)
if cc -O2 -o "$work/uring" "$work/uring.c" -luring 2>/dev/null; then rows+=(uring); else echo "(no liburing: the uring row is left out)"; fi

UP=$(free_port); NP=$(free_port); RP=$(free_port); EP=$(free_port); URP=$(free_port)
T="client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;"
cat > "$work/up.conf" <<CONF
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err warn;
events { worker_connections 4096; }
http { access_log off; $T keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CONF
cat > "$work/np.conf" <<CONF
worker_processes 1; daemon off; pid $work/np.pid; error_log $work/np.err warn;
events { worker_connections 4096; }
http { access_log off; $T keepalive_requests 1000000;
  upstream app { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NP; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
SECRET=load-test-secret-0123456789-0123456789
printf 'listen: 127.0.0.1:%s\nupstream: http://127.0.0.1:%s\njwt:\n  algorithms: [HS256]\n  secret: %s\nlog:\n  level: warn\n' "$RP" "$UP" "$SECRET" > "$work/rp.yaml"
taskset -c 0 "$NGINX" -c "$work/up.conf" -p "$work" & pids+=($!)
taskset -c 0 "$NGINX" -c "$work/np.conf" -p "$work" & pids+=($!)
taskset -c 0 "$BIN" run --config "$work/rp.yaml" > "$work/rp.log" 2>&1 & rp_pid=$!; pids+=($rp_pid)
taskset -c 0 "$work/epoll" "$EP" "$UP" & epoll_pid=$!; pids+=($epoll_pid)
uring_pid=""
if [ -x "$work/uring" ]; then taskset -c 0 "$work/uring" "$URP" "$UP" & uring_pid=$!; pids+=($uring_pid); fi
python3 scripts/mint.py HS256 "$SECRET" "$TOKENS" > "$work/tokens"
cat > "$work/rotate.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] })
end
LUA
for _ in $(seq 50); do
  [ -s "$work/up.pid" ] && [ -s "$work/np.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$RP/" && break
  sleep 0.1
done
# nginx's measured process is its worker (the child of the master).
up_pid=$(pgrep -P "$(cat "$work/up.pid")" | head -1)
np_pid=$(pgrep -P "$(cat "$work/np.pid")" | head -1)
declare -A URL=([nginx]=$NP [rp]=$RP [epoll]=$EP [uring]=$URP)
declare -A PID=([nginx]=$np_pid [rp]=$rp_pid [epoll]=$epoll_pid [uring]=$uring_pid)

# CPU ticks (user + system) summed over a process's threads, and context switches.
ticks() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '{s += $14 + $15} END {print s}'; }
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk -v k="$2" '$1 == k":" {s += $2} END {print s}'; }
HZ=$(getconf CLK_TCK)
declare -A RPS UPC PXC UPS PXS
for round in $(seq "$ROUNDS"); do
  for row in "${rows[@]}"; do
    me=${PID[$row]}
    u0=$(ticks "$up_pid"); m0=$(ticks "$me")
    us0=$(switches "$up_pid" voluntary_ctxt_switches); ms0=$(switches "$me" nonvoluntary_ctxt_switches)
    TOKENS_FILE=$work/tokens taskset -c 1 wrk -t1 -c32 -d"$DURATION" -s "$work/rotate.lua" "http://127.0.0.1:${URL[$row]}/" > "$work/wrk.out" 2>&1 || true
    u1=$(ticks "$up_pid"); m1=$(ticks "$me")
    us1=$(switches "$up_pid" voluntary_ctxt_switches); ms1=$(switches "$me" nonvoluntary_ctxt_switches)
    n=$(awk '/requests in/ {print $1}' "$work/wrk.out"); rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
    [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$row: wrk made no requests" >&2; cat "$work/wrk.out" >&2; exit 1; }
    line=$(python3 -c "
n=$n; hz=$HZ
print(f'{$rps:.0f} {($u1-$u0)*1e6/hz/n:.2f} {($m1-$m0)*1e6/hz/n:.2f} {($us1-$us0)*1000/n:.0f} {($ms1-$ms0)*1000/n:.0f}')")
    read -r r uc pc usw psw <<< "$line"
    RPS[$row]+="$r "; UPC[$row]+="$uc "; PXC[$row]+="$pc "; UPS[$row]+="$usw "; PXS[$row]+="$psw "
    echo "round $round  $row  $line"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
printf '%-6s %9s %9s %13s %13s %15s %17s\n' row 'req/s' '× nginx' 'upstream µs' 'proxy µs' 'upstream cs/1k' 'proxy preempt/1k'
base=$(echo "${RPS[nginx]}" | median)
for row in "${rows[@]}"; do
  r=$(echo "${RPS[$row]}" | median)
  printf '%-6s %9.0f %9.2f %13s %13s %15s %17s\n' "$row" "$r" "$(python3 -c "print($r / $base)")" \
    "$(echo "${UPC[$row]}" | median)" "$(echo "${PXC[$row]}" | median)" \
    "$(echo "${UPS[$row]}" | median)" "$(echo "${PXS[$row]}" | median)"
done
