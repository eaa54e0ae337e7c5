#!/usr/bin/env bash
# Make a private certificate authority and the certificates of a dask cluster's
# scheduler, workers and clients (dasknmf jobs), with openssl:
#
#   deploy/tls/make-certs.sh --out /etc/dasknmf/tls --host scheduler.example.org --host 10.0.0.5
#
# writes, in --out:
#   ca.pem, ca-key.pem                 the CA (keep ca-key.pem off the cluster)
#   scheduler.pem, scheduler-key.pem   for `dask scheduler`
#   worker.pem, worker-key.pem         for `dask worker`
#   client.pem, client-key.pem         for `dasknmf submit` / a job's cluster.tls
# Every certificate names localhost, 127.0.0.1 and each --host as subject alternative
# names, and may act as TLS server and client (dask's processes are both). Keys are
# ECDSA P-256, readable by their owner only. See deploy/README.md for where they go.
set -euo pipefail

usage() {
    cat <<EOF
Usage: $(basename "$0") [--out DIR] [--host NAME_OR_IP ...] [--days N] [--force]

  --out DIR         where to write the files (default: ./tls)
  --host NAME|IP    a host name or IP address the scheduler and workers are reached at,
                    added to every certificate's subject alternative names; repeatable
                    (localhost and 127.0.0.1 are always included)
  --days N          validity in days (default: 365)
  --force           replace existing files in DIR
EOF
}

die() {
    echo "make-certs: error: $*" >&2
    exit 2
}

out=./tls
days=365
force=0
hosts=()
while [ "$#" -gt 0 ]; do
    case "$1" in
    --out) [ "$#" -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    --host) [ "$#" -ge 2 ] || die "--host needs a value"; hosts+=("$2"); shift 2 ;;
    --days) [ "$#" -ge 2 ] || die "--days needs a value"; days=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$days" in '' | *[!0-9]*) die "--days must be a whole number; got '$days'" ;; esac
command -v openssl >/dev/null || die "openssl not found"

names=(ca scheduler worker client)
mkdir -p "$out"
if [ "$force" = 0 ]; then
    for name in "${names[@]}"; do
        for f in "$out/$name.pem" "$out/$name-key.pem"; do
            [ ! -e "$f" ] || die "$f exists (use --force to replace the certificates)"
        done
    done
fi

# Subject alternative names: IPs as IP:, anything else as DNS:.
san="DNS:localhost,IP:127.0.0.1"
for h in ${hosts[@]+"${hosts[@]}"}; do
    case "$h" in
    *[!0-9.]* | '') case "$h" in *:*) san="$san,IP:$h" ;; *) san="$san,DNS:$h" ;; esac ;;
    *) san="$san,IP:$h" ;;
    esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077 # keys readable by their owner only

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

cat >"$work/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = dasknmf cluster CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat >"$work/leaf.ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
EOF

new_key "$work/ca-key.pem"
openssl req -x509 -new -key "$work/ca-key.pem" -config "$work/ca.cnf" -extensions v3_ca \
    -days "$days" -out "$work/ca.pem"

for name in scheduler worker client; do
    new_key "$work/$name-key.pem"
    openssl req -new -key "$work/$name-key.pem" -subj "/CN=dasknmf-$name" \
        -out "$work/$name.csr"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" \
        -CAcreateserial -days "$days" -extfile "$work/leaf.ext" -out "$work/$name.pem" 2>/dev/null
    openssl verify -CAfile "$work/ca.pem" "$work/$name.pem" >/dev/null
done

for name in "${names[@]}"; do
    mv -f "$work/$name.pem" "$work/$name-key.pem" "$out/"
done
chmod 644 "$out"/ca.pem "$out"/scheduler.pem "$out"/worker.pem "$out"/client.pem
out=$(cd "$out" && pwd)
echo "make-certs: CA and scheduler/worker/client certificates in $out"
echo "  names: $san; valid for $days days"
echo "  cluster: deploy/processes/start-cluster.sh --tls-dir $out ..."
echo "  job    : dasknmf submit JOB.yaml --scheduler-file FILE --tls-ca-file $out/ca.pem \\"
echo "               --tls-cert $out/client.pem --tls-key $out/client-key.pem"
