#!/usr/bin/env bash
# Build alertbot's container image with no daemon and no registry: a Debian bookworm base made by
# debootstrap (Python 3.11, as the Dockerfile's default python:3.11-slim), then the Dockerfile built
# on it by buildah (vfs storage, chroot isolation: runs as root on a plain machine or CI runner).
#
#   tools/build_image.sh [TAG] [STORAGE_DIR]
#
# TAG defaults to localhost/alertbot:dev. STORAGE_DIR (default: buildah's own) holds the image store,
# the base rootfs and its cache. The build machine's CA certificates are mounted while building
# (never copied into the image), so pip reaches PyPI through a TLS-inspecting proxy too.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/alertbot:dev}
storage=${2:-}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
buildah=(buildah)
if [ -n "$storage" ]; then
    mkdir -p "$storage"
    buildah+=(--root "$storage/root" --runroot "$storage/run")
fi
base=localhost/alertbot-base:bookworm
if ! "${buildah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
    rootfs=$(mktemp -d "${storage:-${TMPDIR:-/tmp}}/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "image: debootstrap bookworm from $mirror" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    ctr=$("${buildah[@]}" from scratch)
    "${buildah[@]}" copy --quiet "$ctr" "$rootfs" /
    "${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    "${buildah[@]}" commit --quiet "$ctr" "$base" >/dev/null
    "${buildah[@]}" rm "$ctr" >/dev/null
fi
echo "image: building $tag on $base" >&2
"${buildah[@]}" bud --quiet --layers=false --format docker \
    -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg BASE="$base" -t "$tag" . >/dev/null
echo "$tag"
