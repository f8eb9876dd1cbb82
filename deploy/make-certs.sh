#!/bin/sh
# Makes a private certificate authority (once) and a server certificate it signs, for nginx in front
# of Cell Bridge. Clients trust the CA: cellbridge --ca ca.crt; QuPath caCertificate=/path/to/ca.crt.
#
#   deploy/make-certs.sh [-o DIR] NAME [NAME|IP ...]    e.g. deploy/make-certs.sh cellbridge.lab.example.org 10.0.0.5
#
# DIR (default deploy/certs) receives ca.crt + ca.key (keep ca.key off the server) and server.crt +
# server.key (for nginx). Running it again keeps the CA and issues a new server certificate, so clients
# need not be touched. A certificate from your institution's CA works as well: put it in server.crt/key.
set -eu
out="$(dirname "$0")/certs"
if [ "${1:-}" = "-o" ]; then out=$2; shift 2; fi
if [ $# -lt 1 ]; then echo "usage: $0 [-o DIR] HOSTNAME [MORE_NAMES_OR_IPS ...]" >&2; exit 2; fi
mkdir -p "$out"
umask 077
san=""
for name in "$@"; do
  if echo "$name" | grep -Eq '^[0-9.]+$|:'; then kind=IP; else kind=DNS; fi  # IPv4 or IPv6 address
  san="${san:+$san,}$kind:$name"
done
if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=Cell Bridge private CA" -keyout "$out/ca.key" -out "$out/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
  -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$san" > "$out/server.ext"
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days 825 \
  -extfile "$out/server.ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/server.crt"
echo "$out/server.crt: $san, signed by $out/ca.crt" >&2
