#!/bin/sh
# Make a private certificate authority (CA) and certificates for a SAMP hub
# and two clients, alice and bob, for mutual TLS on this machine.
# Run it in an empty directory that only you can read; it needs OpenSSL
# 1.1.1 or newer.
set -eu
umask 077

# 1. The CA: a key and a self-signed CA certificate, valid ten years.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca-key.pem -out ca.pem -days 3650 -subj "/CN=SAMP private CA" \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign

# 2. What every SAMP certificate needs: the names clients connect to, as
#    subjectAltName (a certificate naming its host only in CN is refused),
#    and both TLS roles, as hub and clients are each server and client.
cat > samp-ext.cnf <<'END'
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
END

# 3. A key and a CA-signed certificate (valid a year) for each party.
for name in hub alice bob; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=SAMP $name"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem \
        -CAcreateserial -days 365 -extfile samp-ext.cnf -out "$name-cert.pem"
    rm "$name.csr"
done
