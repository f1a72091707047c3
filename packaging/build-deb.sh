#!/bin/sh
# build-deb.sh - build the postroom Debian package from this source tree.
#
#   packaging/build-deb.sh [OUTDIR]    build; the .deb lands in OUTDIR
#                                      (default: build-deb/ at the top)
#   packaging/build-deb.sh --link      only make debian -> packaging/debian
#                                      at the top, for debuild, sbuild, ...
#
# The build runs on a copy of the tree (the files git tracks plus new ones
# it does not ignore) in OUTDIR/postroom-VERSION, with packaging/debian
# copied in as debian/, so it never writes into the working tree and
# dpkg-buildpackage's results, which go to the parent directory, stay in
# OUTDIR.  Extra dpkg-buildpackage options come from $DPKG_BUILDPACKAGE_OPTS.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--link" ]; then
	ln -sfn packaging/debian "$top/debian"
	echo "$top/debian -> packaging/debian"
	exit 0
fi

out=${1:-$top/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
upstream=${version%-*}
meson_version=$(sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" \
	"$top/meson.build" | head -n 1)
if [ "$upstream" != "$meson_version" ]; then
	echo "build-deb.sh: packaging/debian/changelog says $version but" \
		"meson.build says $meson_version; add a changelog entry" \
		"(dch -v $meson_version-1)" >&2
	exit 1
fi

src=$out/postroom-$upstream
rm -rf "$src"
rm -f "$out"/postroom_"$version"_*.deb "$out"/postroom-dbgsym_"$version"_*.*deb \
	"$out"/postroom_"$version"_*.buildinfo "$out"/postroom_"$version"_*.changes
mkdir -p "$src"

# Copy the tree: with git, exactly what a commit would hold (ignored
# build directories, an in-tree debian/ link and .git stay out).
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# shellcheck disable=SC2016 # $f belongs to the inner shell
	(cd "$top" &&
	    git ls-files -z --cached --others --exclude-standard |
	    xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh |
	    tar --null -T - -cf -) | tar -C "$src" -xf -
else
	(cd "$top" &&
	    tar --exclude=./.git --exclude='./build*' --exclude=./debian \
	    --exclude='./obj-*' -cf - .) | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -R "$top/packaging/debian" "$src/debian"

# Build in parallel unless the caller chose otherwise; never run the test
# suites (debian/rules skips them as well).
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-"parallel=$(nproc) nocheck"}
export DEB_BUILD_OPTIONS

cd "$src"
# shellcheck disable=SC2086 # word splitting of the options is intended
dpkg-buildpackage -us -uc -b ${DPKG_BUILDPACKAGE_OPTS:-}

deb=$(ls "$out"/postroom_"$version"_*.deb)
echo "built $deb"
