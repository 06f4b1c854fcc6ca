#!/usr/bin/env bash
# Runs the Autobahn TestSuite fuzzing client (cases 1-7, 9, 10) against a
# Tollgate WebSocket stage whose $default route echoes, and fails on any
# FAILED case. Needs Python 2.7 with `autobahntestsuite` (wstest); where that
# is missing the script says so and exits 0 (skipped).
#
#   tests/autobahn/run.sh [--quick]     # --quick: cases 1-7 only
set -euo pipefail
cd "$(dirname "$0")/../.."

WSTEST=""
if command -v pyenv >/dev/null 2>&1 && PYENV_VERSION=2.7.18 pyenv which wstest >/dev/null 2>&1; then
  WSTEST="env PYENV_VERSION=2.7.18 $(PYENV_VERSION=2.7.18 pyenv which wstest)"
elif wstest --help >/dev/null 2>&1; then
  WSTEST="wstest"
fi
if [ -z "$WSTEST" ]; then
  echo "autobahn: SKIPPED: wstest (Python 2.7 autobahntestsuite) is not installed"
  exit 0
fi

cases='["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]'
[ "${1:-}" = "--quick" ] && cases='["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*"]'

cargo build --release --quiet
work=$(mktemp -d)
cleanup() { [ -n "${gw_pid:-}" ] && kill "$gw_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Autobahn's 9.* cases send messages up to 16 MiB: raise the AWS-sized
# limits (128 KB) for this run only.
cat > "$work/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:0"
shards = 2
default_api = "echo"
[[websocket_apis]]
id = "echo"
route_selection_expression = "\$request.body.action"
stages = [{ name = "prod", variables = {} }]
[[websocket_apis.routes]]
key = "\$default"
integration = { type = "mock", response_template = "\$input.body" }
route_response = true
[websocket]
max_frame_bytes = 16777216
max_message_bytes = 16777216
# Autobahn echoes binary messages too (API Gateway closes them with 1003).
binary_frames = true
TOML

target/release/tollgate serve --config "$work/tollgate.toml" 2> "$work/gw.log" &
gw_pid=$!
for _ in $(seq 100); do
  addr=$(grep -o 'tollgate listening addr=[0-9.:]*' "$work/gw.log" | sed 's/.*addr=//' || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "tollgate did not start"; cat "$work/gw.log"; exit 1; }

cat > "$work/spec.json" <<JSON
{
  "outdir": "$work/reports",
  "servers": [{"agent": "tollgate", "url": "ws://$addr/prod"}],
  "cases": $cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
(cd "$work" && $WSTEST -m fuzzingclient -s spec.json > wstest.log 2>&1) || { tail -20 "$work/wstest.log"; exit 1; }

python3 - "$work/reports/index.json" <<'PY'
import json, sys, collections
data = json.load(open(sys.argv[1]))["tollgate"]
counts = collections.Counter(v["behavior"] for v in data.values())
failed = sorted((k for k, v in data.items() if v["behavior"] == "FAILED"), key=lambda c: [int(x) for x in c.split(".")])
print("autobahn: %d cases: %s" % (len(data), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
if failed:
    print("autobahn: FAILED cases: " + ", ".join(failed))
    sys.exit(1)
PY
