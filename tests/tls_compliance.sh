#!/usr/bin/env bash
# Checks the TLS listener against Mozilla's "intermediate" server profile
# with sslyze (PyPI), and the protocol floor with openssl s_client.
#
#   tests/tls_compliance.sh [path/to/tollgate]
#
# Certificates come from a throwaway CA made here, which no public trust
# store knows, so sslyze's "certificate_path_validation" check cannot pass;
# every other point of the profile must. Exits 0 when compliant, 1 when
# not, 2 when sslyze or openssl is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/tollgate}
[ -x "$BIN" ] || cargo build --quiet
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 2; }
python3 -c "import sslyze" 2>/dev/null || { echo "SKIP: sslyze missing (python3 -m pip install sslyze)"; exit 2; }

work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 365 -subj "/CN=Tollgate test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out req.csr \
  -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n" > ext.cnf
openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 90 \
  -extfile ext.cnf 2>/dev/null
cat leaf.pem ca.pem > chain.pem
cat > api.json <<'JSON'
{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {
 "x-amazon-apigateway-integration": {"type": "mock",
  "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
  "responses": {"default": {"statusCode": "200"}}}}}}}
JSON
cat > tollgate.toml <<'TOML'
[server]
listen = "127.0.0.1:0"
shards = 1
default_api = "a"
[server.tls]
listen = "127.0.0.1:0"
certificates = [{ cert = "chain.pem", key = "key.pem" }]
[[apis]]
id = "a"
swagger = "api.json"
[[stages]]
api = "a"
name = "prod"
TOML
"$OLDPWD/$BIN" serve --config tollgate.toml 2> gw.log &
pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*tollgate TLS listening addr=127.0.0.1:\([0-9]*\).*/\1/p' gw.log | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "${port:-}" ] || { cat gw.log; echo "FAIL: no TLS listener"; exit 1; }

fail=0
for old in -tls1 -tls1_1; do
  if echo | openssl s_client -connect "127.0.0.1:$port" -servername localhost $old \
       -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1; then
    echo "FAIL: $old handshake accepted"; fail=1
  else
    echo "ok: $old refused"
  fi
done
alpn=$(echo | openssl s_client -connect "127.0.0.1:$port" -servername localhost -alpn h2,http/1.1 \
  -CAfile ca.pem 2>/dev/null | sed -n 's/^ALPN protocol: //p')
[ "$alpn" = "http/1.1" ] && echo "ok: ALPN http/1.1" || { echo "FAIL: ALPN '$alpn'"; fail=1; }

out=$(python3 -m sslyze --mozilla_config=intermediate "localhost:$port" 2>&1 || true)
problems=$(printf '%s\n' "$out" | sed -n '/COMPLIANCE AGAINST/,$p' | grep -E '^ +\* ' \
  | grep -v 'certificate_path_validation' || true)
if printf '%s\n' "$out" | grep -q 'COMPLIANCE AGAINST'; then
  if [ -n "$problems" ]; then
    echo "FAIL: not compliant with Mozilla intermediate:"; echo "$problems"; fail=1
  else
    echo "ok: Mozilla intermediate (all checks but the throwaway CA's trust)"
  fi
else
  echo "$out" | tail -20; echo "FAIL: sslyze did not run its compliance check"; fail=1
fi
exit $fail
