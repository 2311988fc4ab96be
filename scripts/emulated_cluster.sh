#!/bin/sh
# An emulated cluster on one Linux machine, to hold basin's simulator against real Gloo traffic.
#
# N "hosts" are network namespaces basin-h0 .. basin-h<N-1>. Each has one veth pair: `eth0` inside
# the namespace (address 10.77.0.<i+1>/24) and `bec-v<i>` in the root namespace, enslaved to the
# bridge `bec-br0`, which is the cluster's one non-blocking switch. Each host's link is shaped to
# --rate in both directions with tc's token bucket filter (netem is not available here): on `eth0`
# (host -> switch) and on `bec-v<i>` (switch -> host, i.e. what the host receives).
#
# tbf parameters, and why:
#  - burst 131072 bytes (two 64 KiB GSO packets). Linux hands tbf TCP segments of up to 64 KiB
#    (GSO); one larger than the bucket is split into 1514-byte frames in software (tbf_segment),
#    and on this 2-core machine that CPU cost, not the rate, then limits the links: with a 10-frame
#    bucket four concurrent flows got 40-49 MB/s each; with gso_max_size 16384 and buckets of 32
#    and 48 KB, 96-110 MB/s; with the default GSO and 128 KiB, 117-119.4 MB/s, the payload share
#    of 1 Gbit/s (see below). A bucket of two packets also absorbs timer lateness, which a
#    one-packet bucket turns into lost rate.
#    The price: tokens accumulate while a link idles (between an allreduce's steps, while ranks
#    sum), and up to 128 KiB then leaves at memory speed: each idle period of up to 1.05 ms at
#    1 Gbit/s is partly won back. The predictor models that bucket (tests/cluster).
#  - latency 20 ms (the queue limit, rate x 20 ms + burst): deep enough that two senders into one
#    receiver's link (halving-doubling's binary blocks) do not drop and send TCP into recovery,
#    shallow enough that a mistake shows up as delay rather than hiding in a huge buffer.
#  - tbf counts each frame's full length (Ethernet + IP + TCP headers; for a GSO packet the
#    kernel counts every segment's headers, qdisc_pkt_len_init), so TCP's payload gets 1448/1514
#    of --rate with timestamps on: 119.5 MB/s at 1 Gbit/s, where one flow per link measured
#    117.1-119.4 MB/s. The predictor (tests/cluster) models exactly that.
#
# Usage: scripts/emulated_cluster.sh up|down|status [--hosts N] [--rate RATE] [--burst BYTES]
#   up      creates the cluster, or, when one with the same --hosts is up, re-applies the shaping
#   down    removes every namespace, veth and bridge this script creates (nothing else); no-op when
#           nothing is up
#   status  prints the hosts, their addresses and qdiscs; exit 1 when the cluster is not up
# Run a rank on host i:  ip netns exec basin-h<i> <command>   (its address: 10.77.0.<i+1>)
set -eu

cmd=${1:-}
[ $# -gt 0 ] && shift
hosts=4
rate=1gbit
burst=131072
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=${2:-}; shift 2 || { echo "emulated_cluster: --hosts needs a value" >&2; exit 2; } ;;
    --rate) rate=${2:-}; shift 2 || { echo "emulated_cluster: --rate needs a value" >&2; exit 2; } ;;
    --burst) burst=${2:-}; shift 2 || { echo "emulated_cluster: --burst needs a value" >&2; exit 2; } ;;
    *) echo "emulated_cluster: unknown argument '$1': expected --hosts N, --rate RATE or --burst BYTES" >&2; exit 2 ;;
  esac
done
case "$cmd" in
  up|down|status) ;;
  *) echo "usage: $0 up|down|status [--hosts N] [--rate 1gbit] [--burst 131072]" >&2; exit 2 ;;
esac
case "$hosts" in
  ''|*[!0-9]*) echo "emulated_cluster: --hosts '$hosts': expected an integer in [1, 200]" >&2; exit 2 ;;
esac
if [ "$hosts" -lt 1 ] || [ "$hosts" -gt 200 ]; then
  echo "emulated_cluster: --hosts $hosts: expected an integer in [1, 200]" >&2; exit 2
fi
case "$rate" in
  [0-9]*bit|[0-9]*bps) ;;
  *) echo "emulated_cluster: --rate '$rate': expected a tc rate such as 1gbit, 500mbit or 100mbit" >&2; exit 2 ;;
esac
case "$burst" in
  ''|*[!0-9]*) echo "emulated_cluster: --burst '$burst': expected bytes, at least 1514 (one frame)" >&2; exit 2 ;;
esac
if [ "$burst" -lt 1514 ]; then
  echo "emulated_cluster: --burst $burst: expected bytes, at least 1514 (one frame)" >&2; exit 2
fi

BR=bec-br0
PREFIX=basin-h
STATE=/run/basin-emulated-cluster

need_root_and_netns() {
  if [ "$(id -u)" != 0 ]; then
    echo "emulated_cluster: needs root (creates network namespaces, veths and a bridge); run with sudo" >&2
    exit 3
  fi
  for tool in ip tc; do
    command -v $tool >/dev/null 2>&1 || { echo "emulated_cluster: '$tool' not found (Debian package iproute2)" >&2; exit 3; }
  done
  probe=basin-netns-probe-$$
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "emulated_cluster: 'ip netns add' failed: network namespaces are unavailable here (a container without CAP_SYS_ADMIN?)" >&2
    exit 3
  fi
  ip netns del "$probe"
}

# Our namespaces, whatever --hosts said when they were made.
our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX[0-9][0-9]*\$" || true; }

down() {
  for ns in $(our_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
  # Deleting a namespace deletes its veth end and with it the peer; these catch half-made ones.
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^bec-v[0-9][0-9]*$' || true); do
    ip link del "$dev" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  rm -f "$STATE"
}

shape() {  # shape DEVICE [NAMESPACE]
  if [ -n "${2:-}" ]; then
    ip netns exec "$2" tc qdisc replace dev "$1" root tbf rate "$rate" burst "$burst" latency 20ms
  else
    tc qdisc replace dev "$1" root tbf rate "$rate" burst "$burst" latency 20ms
  fi
}

is_up() {
  [ -f "$STATE" ] || return 1
  ip link show "$BR" >/dev/null 2>&1 || return 1
  n=$(sed -n 's/^hosts=//p' "$STATE")
  [ "$n" = "$hosts" ] || return 1
  i=0
  while [ "$i" -lt "$hosts" ]; do
    ip netns exec "$PREFIX$i" ip link show eth0 >/dev/null 2>&1 || return 1
    i=$((i + 1))
  done
}

up() {
  if is_up; then
    i=0
    while [ "$i" -lt "$hosts" ]; do shape eth0 "$PREFIX$i"; shape "bec-v$i"; i=$((i + 1)); done
    printf 'hosts=%s\nrate=%s\nburst=%s\n' "$hosts" "$rate" "$burst" > "$STATE"
    echo "emulated cluster already up: $hosts hosts, shaping re-applied at $rate (burst $burst B)"
    return
  fi
  down
  # Undo a half-made cluster when any step fails, so a failed `up` leaves nothing behind.
  trap 'echo "emulated_cluster: up failed; removing what was made" >&2; down' EXIT
  ip link add "$BR" type bridge stp_state 0 forward_delay 0
  ip link set "$BR" up
  i=0
  while [ "$i" -lt "$hosts" ]; do
    ns=$PREFIX$i
    ip netns add "$ns"
    ip link add "bec-v$i" type veth peer name eth0 netns "$ns"
    ip link set "bec-v$i" master "$BR"
    ip link set "bec-v$i" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "10.77.0.$((i + 1))/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    # Linux restarts slow start on a connection idle for more than one RTO (RFC 2861's congestion
    # window validation). Halving-doubling talks to a different peer at each step, so every
    # connection sits idle between its steps and would restart from a small window each time;
    # the rings keep theirs busy. Clusters that run collectives over TCP turn this off, and the
    # simulator models links, not TCP's window, so the emulated hosts do too.
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_slow_start_after_idle=0
    shape eth0 "$ns"
    shape "bec-v$i"
    i=$((i + 1))
  done
  printf 'hosts=%s\nrate=%s\nburst=%s\n' "$hosts" "$rate" "$burst" > "$STATE"
  # The bridge forwards once its ports are up; check every host reaches host 0 before saying so.
  # (No ping in Debian's base image: a TCP connect to a closed port that is refused, not timed
  # out, proves the path both ways.)
  i=1
  while [ "$i" -lt "$hosts" ]; do
    out=$(ip netns exec "$PREFIX$i" timeout 3 bash -c 'exec 3<>/dev/tcp/10.77.0.1/9' 2>&1 || true)
    case "$out" in
      *refused*) ;;
      *) echo "emulated_cluster: host $i cannot reach 10.77.0.1 through $BR ($out)" >&2; exit 1 ;;
    esac
    i=$((i + 1))
  done
  trap - EXIT
  echo "emulated cluster up: $hosts hosts (namespaces ${PREFIX}0..${PREFIX}$((hosts - 1)), 10.77.0.1..$hosts), every link $rate each way (tbf burst $burst B, latency 20ms)"
}

status() {
  if [ ! -f "$STATE" ] || ! ip link show "$BR" >/dev/null 2>&1; then
    echo "emulated cluster: down"; exit 1
  fi
  cat "$STATE"
  for ns in $(our_namespaces); do
    addr=$(ip netns exec "$ns" ip -o -4 addr show dev eth0 | awk '{print $4}')
    q=$(ip netns exec "$ns" tc qdisc show dev eth0 | head -1)
    echo "$ns $addr egress: $q"
  done
  for dev in $(ip -o link show master "$BR" | awk -F': ' '{print $2}' | sed 's/@.*//'); do
    echo "switch port $dev: $(tc qdisc show dev "$dev" | head -1)"
  done
}

need_root_and_netns
case "$cmd" in
  up) up ;;
  down) down; echo "emulated cluster down" ;;
  status) status ;;
esac
