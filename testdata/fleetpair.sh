#!/bin/bash
# fleetpair.sh: the fleets of issue 9 over loopback, 100 phones against
# 10 000, each on a fresh `authphone emulator` of its own (memory, then
# SQLite: --db a new file), one at a time, ROUNDS rounds with the order
# reversed every other round. Per fleet it prints approvals/s, the fleet's
# and the emulator's CPU per approval in the steady part of the run
# (between the first and the last progress line), and per round and store
# the ratio of the approvals/s of the last K to the first; and the minor
# page faults per approval of both processes (a heap growing into memory
# it never used: one per 4 KiB page, a few µs each on a VM).
#
#   make bench-fleet-pair                      # or: bash testdata/fleetpair.sh
#   STORES=memory KS="100 1000 10000" COUNT=15000 ROUNDS=3 EMUARGS=--h2c FLEETARGS=--h2c bash testdata/fleetpair.sh
#   FLEETENV="GOGC=100" BINS="/tmp/main /tmp/new" bash testdata/fleetpair.sh   # two binaries side by side
#   WARMUP=0 bash testdata/fleetpair.sh          # no warm-up: the heap's growth included
#   WARMUP=auto bash testdata/fleetpair.sh       # each fleet until its second collection
#
# Each fleet runs with --warmup $WARMUP, not counted, so that the figures
# are the steady state's; the warm-up's approvals, time and what ended it
# are printed with them. The default, 45000 at every K, is at least what
# `--warmup auto` takes at 10 000 phones (about 42 000 approvals to the
# fleet's second collection) and the same for every fleet: each emulator
# then holds the same history (finished operations, kept for --retention)
# when the clock starts. With auto the 100-phone fleet's emulator held
# about 500 where the 10 000-phone one's held 42 000, and its tables,
# heap and SQLite file were that much smaller: on memory the pair
# measured a median 0.94x with auto and 1.06x with the same warm-up
# (ARCHITECTURE.md).
#
# BINS runs each fleet with each binary in turn (both the emulator and the
# fleet from it), so that two builds are compared in the same minutes;
# FLEETENV is the fleet's environment as EMUENV is the emulator's.
#
# Each fleet takes /tmp/authphone-bench.lock (flock) while it runs, so two
# measurements never share the machine. Needs python3 (to read the reports).
set -eu
BIN=${BIN:-}
STORES=${STORES:-"memory sqlite"}
KS=${KS:-"100 10000"}
COUNT=${COUNT:-30000}
ROUNDS=${ROUNDS:-2}
FLEETARGS=${FLEETARGS:-}
EMUARGS=${EMUARGS:-}
EMUENV=${EMUENV:-}
FLEETENV=${FLEETENV:-}
BINS=${BINS:-}
WARMUP=${WARMUP:-45000}
W=$(mktemp -d "${TMPDIR:-/tmp}/fleetpair.XXXXXX")
trap 'rm -rf "$W"' EXIT
if [ -z "$BIN" ] && [ -z "$BINS" ]; then
	BIN=$W/authphone
	go build -o "$BIN" ./cmd/authphone
fi
lock() { if command -v flock >/dev/null; then flock /tmp/authphone-bench.lock "$@"; else "$@"; fi; }

# one STORE K: run a fleet against a fresh emulator; its report in $W/rep.json,
# the CPU ticks of both processes every 250 ms with the fleet's last progress line in $W/ticks.
one() {
	rm -f "$W"/ready.json "$W"/db* "$W"/ticks "$W"/faults
	db=""
	[ "$1" = sqlite ] && db="--db $W/db.sqlite"
	# shellcheck disable=SC2086
	env $EMUENV "$BIN" emulator --addr 127.0.0.1:0 --ready-file "$W/ready.json" $db $EMUARGS >"$W/emu.log" 2>&1 &
	ep=$!
	for _ in $(seq 100); do [ -s "$W/ready.json" ] && break; sleep 0.1; done
	url=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["url"])' "$W/ready.json")
	key=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["accessKey"])' "$W/ready.json")
	# shellcheck disable=SC2086
	env $FLEETENV "$BIN" fleet --cloud "$url" --access-key "$key" --phones "$2" --count "$COUNT" --durability relaxed --warmup "$WARMUP" $FLEETARGS --json >"$W/rep.json" 2>"$W/fleet.log" &
	fp=$!
	while kill -0 $fp 2>/dev/null; do
		echo "$(awk '{print $14+$15}' /proc/$ep/stat) $(awk '{print $14+$15}' /proc/$fp/stat 2>/dev/null) $(tail -1 "$W/fleet.log")" >>"$W/ticks"
		echo "$(awk '{print $10}' /proc/$ep/stat) $(awk '{print $10}' /proc/$fp/stat 2>/dev/null) $(tail -1 "$W/fleet.log")" >>"$W/faults"
		sleep 0.25
	done
	wait $fp || true
	kill $ep
	wait $ep 2>/dev/null || true
}
export -f one
export BIN COUNT FLEETARGS EMUENV FLEETENV WARMUP W

echo "load: $(uptime | sed 's/.*load average: //')"
for round in $(seq "$ROUNDS"); do
	order=$KS
	[ $((round % 2)) = 0 ] && order=$(echo "$KS" | tr ' ' '\n' | tac | tr '\n' ' ')
	for store in $STORES; do
	for bin in ${BINS:-$BIN}; do
		BIN=$bin
		[ -n "$BINS" ] && echo "round $round $store: $bin"
		: >"$W/round"
		for k in $order; do
			BIN=$bin lock bash -c 'one "$1" "$2"' _ "$store" "$k"
			python3 - "$W/rep.json" "$W/ticks" "$store" "$k" "$round" "$(uptime | sed 's/.*load average: //')" "$bin" >>"$W/round" <<'PY'
import json, re, sys
rep, ticks, store, k, rnd, load, binary = sys.argv[1:]
r = json.load(open(rep))
rows = []
for l in open(ticks):
    m = re.match(r'(\d+) (\d+) fleet: \S+ done (\d+)/', l)
    if m:
        rows.append(tuple(map(int, m.groups())))
# the tick where each progress line first showed, up to the last one before the end
rows = [x for i, x in enumerate(rows) if x[2] > 0 and (i == 0 or rows[i-1][2] != x[2])]
rows = [x for x in rows if x[2] < max(y[2] for y in rows)] if rows else []
emu = fl = float('nan')
if len(rows) >= 2 and rows[-1][2] > rows[0][2]:
    a, b = rows[0], rows[-1]
    n = b[2] - a[2]
    emu, fl = (b[0] - a[0]) * 10 / n, (b[1] - a[1]) * 10 / n   # clock ticks of 10 ms
# page faults (minor: mostly the heaps growing into memory they never used) the same way
frows = []
for l in open(ticks.replace("ticks", "faults")):
    m = re.match(r'(\d+) (\d+) fleet: \S+ done (\d+)/', l)
    if m:
        frows.append(tuple(map(int, m.groups())))
frows = [x for i, x in enumerate(frows) if x[2] > 0 and (i == 0 or frows[i-1][2] != x[2])]
frows = [x for x in frows if x[2] < max(y[2] for y in frows)] if frows else []
emuF = flF = float('nan')
if len(frows) >= 2 and frows[-1][2] > frows[0][2]:
    a, b = frows[0], frows[-1]
    emuF, flF = (b[0] - a[0]) / (b[2] - a[2]), (b[1] - a[1]) / (b[2] - a[2])
print(json.dumps({"bin": binary, "fleetFaults": flF, "emuFaults": emuF, "store": store, "k": int(k), "round": int(rnd), "perSec": r["approvalsPerSecond"], "fleetMs": fl, "emuMs": emu,
                  "cpuCeilingPercent": r["cpuCeilingPercent"], "cryptoMs": r["cryptoCpuMs"], "drift": r.get("cryptoDriftPercent", 0 if "cryptoCpuMsEnd" in r else float("nan")),
                  "gcCycles": r.get("gcCycles", -1), "gcMs": r.get("gcCpuPerApprovalMs", float("nan")), "protocol": r.get("protocol", ""), "lost": r["lost"],
                  "unexpected": r["unexpected"], "load": load,
                  "warmUp": "%d approvals in %.1f s (%s)" % (r.get("warmUpApprovals", 0), r.get("warmUpApprovalSeconds", 0), r.get("warmUpUntil", "none"))}))
PY
			tail -1 "$W/round" | python3 -c 'import json,sys
d=json.loads(sys.stdin.read())
print("round %(round)d %(store)-6s K=%(k)5d: %(perSec)6.0f approvals/s, CPU/approval fleet %(fleetMs).3f ms + emulator %(emuMs).3f ms, page faults/approval fleet %(fleetFaults).1f + emulator %(emuFaults).1f, %(cpuCeilingPercent).1f%% of the crypto ceiling by the fleet CPU, fleet GC %(gcMs).3f ms/approval in %(gcCycles)d cycles, crypto %(cryptoMs).3f ms (drift %(drift)+.1f%%), lost %(lost)d, unexpected %(unexpected)d, %(protocol)s, warm-up %(warmUp)s, load %(load)s" % d)'
		done
		cat "$W/round" >>"$W/all"
		python3 - "$W/round" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rs.sort(key=lambda d: d["k"])
a, b = rs[0], rs[-1]
print("round %d %s: K=%d / K=%d = %.2fx approvals/s, %.2fx CPU per approval (both processes)" % (
    a["round"], a["store"], b["k"], a["k"], b["perSec"] / a["perSec"], (b["fleetMs"] + b["emuMs"]) / (a["fleetMs"] + a["emuMs"])))
PY
	done
	done
done

# Across the rounds, per store: the median and range of each round's
# ratio, by approvals/s, by CPU per approval, and by approvals/s in units
# of the machine's crypto speed measured in each fleet's run (its start and
# end): on a shared host the machine's own speed moves by 10-40% within
# minutes, and that last ratio takes it out. A round with a fleet that
# measured nothing (interrupted, failed) is left out of a ratio.
if [ -s "$W/all" ]; then python3 - "$W/all" <<'PY'
import json, math, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
for store, binary in dict.fromkeys((r["store"], r["bin"]) for r in rs):
    byround = {}
    for r in rs:
        if r["store"] == store and r["bin"] == binary:
            byround.setdefault(r["round"], []).append(r)
    wall, cpu, norm = [], [], []
    for rnd in sorted(byround):
        g = sorted(byround[rnd], key=lambda d: d["k"])
        if len(g) < 2:
            continue
        a, b = g[0], g[-1]
        ks = (a["k"], b["k"])
        ok = lambda *xs: all(x and not math.isnan(x) for x in xs)
        if ok(a["perSec"], b["perSec"]):
            wall.append(b["perSec"] / a["perSec"])
        if ok(a["fleetMs"] + a["emuMs"], b["fleetMs"] + b["emuMs"]):
            cpu.append((b["fleetMs"] + b["emuMs"]) / (a["fleetMs"] + a["emuMs"]))
        if ok(a["perSec"], b["perSec"], a["cryptoMs"], b["cryptoMs"]):
            norm.append(b["perSec"] * b["cryptoMs"] / (a["perSec"] * a["cryptoMs"]))
    if not wall:
        continue
    f = lambda xs: "median %.2fx (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs)) if xs else "n/a"
    name = store + (" " + binary if len(set(r["bin"] for r in rs)) > 1 else "")
    print("%s, K=%d / K=%d over %d rounds: approvals/s %s; CPU per approval %s; approvals/s per crypto speed %s" % (
        name, ks[1], ks[0], len(wall), f(wall), f(cpu), f(norm)))
PY
fi
