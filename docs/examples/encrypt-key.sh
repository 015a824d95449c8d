#!/bin/sh
# Encrypt the hub's private key with a passphrase kept in a file of its own
# (its first line); passphrases never go on a command line.
set -eu
umask 077
printf '%s\n' 'correct horse battery staple' > hub-passphrase.txt
openssl pkey -in hub-key.pem -aes256 -passout file:hub-passphrase.txt \
    -out hub-key-encrypted.pem
