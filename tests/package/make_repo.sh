#!/bin/bash
# Put .deb files into a signed apt repository (flat pool, one suite).
#
#   make_repo.sh REPO KEYDIR DEB...
#
# REPO/pool holds every .deb given so far (older versions stay, so apt can
# also downgrade), REPO/dists/bookworm the indexes made by apt-ftparchive,
# signed (InRelease, Release.gpg) with the key in KEYDIR, a GnuPG home made
# with a new Ed25519 key the first time.  REPO/appliance-archive-keyring.gpg
# is the public key for a sources line:
#   deb [signed-by=REPO/appliance-archive-keyring.gpg] file:REPO bookworm main
set -euo pipefail
REPO=$1 KEYDIR=$2
shift 2
mkdir -p "$REPO/pool/main" "$REPO/dists/bookworm/main/binary-amd64" "$KEYDIR"
REPO=$(cd "$REPO" && pwd) KEYDIR=$(cd "$KEYDIR" && pwd)
chmod 0700 "$KEYDIR"
export GNUPGHOME=$KEYDIR
if ! gpg --batch --list-secret-keys appliance-repo >/dev/null 2>&1; then
    gpg --batch --quiet --passphrase '' --quick-generate-key \
        "Appliance local repository <appliance-repo@localhost>" ed25519 sign never
fi
for deb in "$@"; do cp "$deb" "$REPO/pool/main/"; done
cd "$REPO"
apt-ftparchive packages pool > dists/bookworm/main/binary-amd64/Packages
gzip -9n < dists/bookworm/main/binary-amd64/Packages > dists/bookworm/main/binary-amd64/Packages.gz
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=appliance \
    -o APT::FTPArchive::Release::Label=appliance \
    -o APT::FTPArchive::Release::Suite=bookworm \
    -o APT::FTPArchive::Release::Codename=bookworm \
    -o APT::FTPArchive::Release::Architectures=amd64 \
    -o APT::FTPArchive::Release::Components=main \
    release dists/bookworm > dists/bookworm/Release.new
mv dists/bookworm/Release.new dists/bookworm/Release
rm -f dists/bookworm/InRelease dists/bookworm/Release.gpg
gpg --batch --yes --local-user appliance-repo --clearsign \
    -o dists/bookworm/InRelease dists/bookworm/Release
gpg --batch --yes --local-user appliance-repo --detach-sign --armor \
    -o dists/bookworm/Release.gpg dists/bookworm/Release
gpg --batch --yes --export appliance-repo > appliance-archive-keyring.gpg
echo "deb [signed-by=$REPO/appliance-archive-keyring.gpg] file:$REPO bookworm main"
