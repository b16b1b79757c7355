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
# All keys are ECDSA P-256.  Does nothing when DIR/ca.pem exists and is
# newer than this script.
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

genkey() {
    certtool --generate-privkey --key-type ecdsa --curve secp256r1 \
        --no-text --outfile "$1-key.pem" 2>/dev/null
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

# sign NAME CACERT CAKEY
sign() {
    genkey "$1"
    certtool --generate-certificate --load-privkey "$1-key.pem" \
        --load-ca-certificate "$2" --load-ca-privkey "$3" \
        --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
}

local_sans='dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"'
valid='expiration_days = 3650'
past='activation_date = "2001-01-01 00:00:00 UTC"
expiration_date = "2002-01-01 00:00:00 UTC"'

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
mv ca.pem.tmp ca.pem
