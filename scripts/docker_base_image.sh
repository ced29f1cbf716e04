#!/usr/bin/env bash
# Makes a Debian bookworm base image from this machine's own Debian mirror, for building
# deploy/Dockerfile where no public container registry is reachable:
#   bash scripts/docker_base_image.sh                 # -> vcfad/debian-base:bookworm
#   docker build -f deploy/Dockerfile --build-arg BASE_IMAGE=vcfad/debian-base:bookworm -t vcfad:cpu .
# Needs root, debootstrap and an engine (ENGINE=docker or podman). The image also trusts this
# machine's extra CA certificates (/usr/local/share/ca-certificates, e.g. a TLS-inspecting proxy's)
# and points pip at that trust store: it is for building here, not for publishing.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-docker}
TAG=${TAG:-vcfad/debian-base:bookworm}
SUITE=bookworm
# The first mirror of the machine's own apt sources (no mirror written into this script).
mirror=${DEBIAN_MIRROR:-$(python3 scripts/apt_nonfree_sources.py | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; exit } }')}
[ -n "$mirror" ] || { echo "docker_base_image: no Debian mirror in /etc/apt; set DEBIAN_MIRROR" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "docker_base_image: apt-get install debootstrap" >&2; exit 1; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "docker_base_image: debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" >/dev/null
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | "$ENGINE" import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["bash"]' - "$TAG"
echo "docker_base_image: $TAG"
