#!/bin/sh
# Generate the test PKI used by the test suite into DIR.
#
#   ca.pem, ca-key.pem             test CA (the trusted one)
#   backend.pem, backend-key.pem   server cert for the test mail servers
#   gateway.pem, gateway-key.pem   server cert for the gateway itself
#   wrongname.pem, -key.pem        valid chain, SAN DNS:wrong.example only
#   expired.pem, -key.pem          valid chain, validity in the past
#   untrusted.pem, -key.pem        signed by other-ca.pem, not in ca.pem
#   other-ca.pem, other-ca-key.pem the second, untrusted CA
#
# For the backend certificate checks (all signed by ca.pem unless said
# otherwise; SANs DNS:localhost, IP:127.0.0.1, IP:::1 unless said):
#
#   notyet.pem            valid from 2090 on
#   wildcard.pem          SAN DNS:*.example.test only
#   dnsonly.pem           SAN DNS:localhost only, no IP SAN
#   cnonly.pem            CN=localhost, no SAN at all
#   selfsigned.pem        self-signed leaf (not a CA), not in ca.pem
#   inter-ca.pem          intermediate CA, signed by ca.pem
#   chained.pem           leaf signed by inter-ca.pem, leaf only
#   chained-full.pem      chained.pem followed by inter-ca.pem
#   chained-reversed.pem  inter-ca.pem followed by chained.pem
#   sha1.pem              signed with ECDSA-SHA1
#   rsa1024.pem           RSA key of 1024 bits
#   rsa2048.pem           RSA key of 2048 bits
#   clientonly.pem        key purpose TLS client only
#   nopurpose.pem         no key purpose extension at all
#   notca.pem             signed by backend.pem (not a CA)
#   notca-full.pem        notca.pem followed by backend.pem
#
# Each NAME.pem has its key in NAME-key.pem (chained-full and
# chained-reversed use chained-key.pem, notca-full uses notca-key.pem).
# Keys are ECDSA P-256 unless said otherwise.  Does nothing when
# DIR/ca.pem exists and is newer than this script.
set -eu

usage() { echo "usage: $0 DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
dir=$1
self=$0

if [ -f "$dir/ca.pem" ] && [ "$dir/ca.pem" -nt "$self" ]; then
    exit 0
fi
mkdir -p "$dir"
cd "$dir"
rm -f ca.pem

# genkey NAME [rsa BITS]
genkey() {
    if [ "${2:-}" = rsa ]; then
        certtool --generate-privkey --key-type rsa --bits "$3" \
            --no-text --outfile "$1-key.pem" 2>/dev/null
    else
        certtool --generate-privkey --key-type ecdsa --curve secp256r1 \
            --no-text --outfile "$1-key.pem" 2>/dev/null
    fi
}

# write_ca_tmpl NAME CN
write_ca_tmpl() {
    cat > "$1.tmpl" <<EOF
cn = "$2"
organization = "mailgate tests"
serial = 1
expiration_days = 3650
ca
cert_signing_key
crl_signing_key
EOF
}

# write_srv_tmpl NAME CN SERIAL EXTRA...  (EXTRA: extra template lines)
write_srv_tmpl() {
    name=$1 cn=$2 serial=$3
    shift 3
    {
        echo "cn = \"$cn\""
        echo "organization = \"mailgate tests\""
        echo "serial = $serial"
        echo "signing_key"
        echo "tls_www_server"
        for line in "$@"; do echo "$line"; done
    } > "$name.tmpl"
}

# selfsign NAME OUTFILE
selfsign() {
    genkey "$1"
    certtool --generate-self-signed --load-privkey "$1-key.pem" \
        --template "$1.tmpl" --outfile "$2" 2>/dev/null
}

# sign NAME CACERT CAKEY [rsa BITS | hash ALGO]
sign() {
    name=$1 cacert=$2 cakey=$3
    shift 3
    hash=
    case "${1:-}" in
    rsa) genkey "$name" rsa "$2" ;;
    hash) genkey "$name"; hash="--hash $2" ;;
    *) genkey "$name" ;;
    esac
    # shellcheck disable=SC2086
    certtool --generate-certificate --load-privkey "$name-key.pem" \
        --load-ca-certificate "$cacert" --load-ca-privkey "$cakey" \
        $hash --template "$name.tmpl" --outfile "$name.pem" 2>/dev/null
}

local_sans='dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"'
valid='expiration_days = 3650'
past='activation_date = "2001-01-01 00:00:00 UTC"
expiration_date = "2002-01-01 00:00:00 UTC"'
future='activation_date = "2090-01-01 00:00:00 UTC"
expiration_date = "2099-01-01 00:00:00 UTC"'

# The trusted CA gets its final name last: ca.pem marks a complete run.
write_ca_tmpl ca "mailgate test CA"
selfsign ca ca.pem.tmp
write_ca_tmpl other-ca "mailgate other CA (untrusted)"
selfsign other-ca other-ca.pem

write_srv_tmpl backend localhost 2 "$valid" "$local_sans"
write_srv_tmpl gateway localhost 3 "$valid" "$local_sans"
write_srv_tmpl wrongname wrong.example 4 "$valid" \
    'dns_name = "wrong.example"'
write_srv_tmpl expired localhost 5 "$past" "$local_sans"
write_srv_tmpl untrusted localhost 6 "$valid" "$local_sans"

for n in backend gateway wrongname expired; do
    sign "$n" ca.pem.tmp ca-key.pem
done
sign untrusted other-ca.pem other-ca-key.pem

# Backend certificate checks.
write_srv_tmpl notyet localhost 7 "$future" "$local_sans"
write_srv_tmpl wildcard "*.example.test" 8 "$valid" \
    'dns_name = "*.example.test"'
write_srv_tmpl dnsonly localhost 9 "$valid" 'dns_name = "localhost"'
write_srv_tmpl cnonly localhost 10 "$valid"
write_srv_tmpl sha1 localhost 11 "$valid" "$local_sans"
write_srv_tmpl rsa1024 localhost 12 "$valid" "$local_sans"
write_srv_tmpl rsa2048 localhost 13 "$valid" "$local_sans"
write_srv_tmpl clientonly localhost 14 "$valid" "$local_sans"
sed -i 's/^tls_www_server$/tls_www_client/' clientonly.tmpl
write_srv_tmpl nopurpose localhost 19 "$valid" "$local_sans"
sed -i '/^tls_www_server$/d' nopurpose.tmpl
write_ca_tmpl inter-ca "mailgate test intermediate CA"
sed -i 's/^serial = 1$/serial = 15/' inter-ca.tmpl
write_srv_tmpl chained localhost 16 "$valid" "$local_sans"
write_srv_tmpl notca "leaf signed by a leaf" 17 "$valid" "$local_sans"
write_srv_tmpl selfsigned localhost 18 "$valid" "$local_sans"

for n in notyet wildcard dnsonly cnonly clientonly nopurpose inter-ca; do
    sign "$n" ca.pem.tmp ca-key.pem
done
sign sha1 ca.pem.tmp ca-key.pem hash SHA1
sign rsa1024 ca.pem.tmp ca-key.pem rsa 1024
sign rsa2048 ca.pem.tmp ca-key.pem rsa 2048
sign chained inter-ca.pem inter-ca-key.pem
cat chained.pem inter-ca.pem > chained-full.pem
cat inter-ca.pem chained.pem > chained-reversed.pem
sign notca backend.pem backend-key.pem
cat notca.pem backend.pem > notca-full.pem
selfsign selfsigned selfsigned.pem

mv ca.pem.tmp ca.pem
