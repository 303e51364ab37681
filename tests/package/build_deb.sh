#!/bin/bash
# Build appliance_<version>_<arch>.deb from the files of a checkout.
#
#   build_deb.sh SOURCE OUT
#
# The tracked and untracked-but-not-ignored files of SOURCE (a clean
# checkout plus work in progress, never .venv, var/ or build/) are copied
# to OUT/src, built there with dpkg-buildpackage on Debian's own tools
# (PATH reset, so no pyenv or venv Python leaks into the build), and the
# .deb lands in OUT.  Prints the .deb's path last.
set -euo pipefail
SOURCE=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SRC=$OUT/src/appliance
rm -rf "$OUT/src" "$OUT"/appliance_*.deb
mkdir -p "$SRC"
if git -C "$SOURCE" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$SOURCE" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    tar -C "$SOURCE" --exclude=./.venv --exclude=./var --exclude=./build \
        --exclude=./.git -cf - . | tar -xf - -C "$SRC"
fi
start=$(date +%s)
(cd "$SRC" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" \
    LANG=C.UTF-8 DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -us -uc) 2>&1 \
    | while IFS= read -r line; do printf '%4d %s\n' $(( $(date +%s) - start )) "$line"; done \
    > "$OUT/build.log" || {
    tail -50 "$OUT/build.log" >&2
    echo "build_deb.sh: dpkg-buildpackage failed; the whole log is $OUT/build.log" >&2
    exit 1
}
deb=$(ls "$OUT"/src/appliance_*.deb)
mv "$OUT"/src/appliance_*.deb "$OUT"/
rm -f "$OUT"/src/appliance_*.buildinfo "$OUT"/src/appliance_*.changes
echo "built $(basename "$deb") in $(( $(date +%s) - start )) s" >&2
echo "$OUT/$(basename "$deb")"
