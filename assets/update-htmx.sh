#!/bin/sh
# Refreshes the vendored htmx from the npm registry (package htmx.org).
# Usage: assets/update-htmx.sh [version]   (default: the newest 2.x; the
# registry's "latest" tag is a newer major that this dashboard does not use).
set -eu
cd "$(dirname "$0")"
spec="htmx.org@${1:-2}"
version=$(npm view "$spec" version --json | tr -d '[]" \n' | tr ',' '\n' | tail -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$version" >/dev/null && tar -xzf htmx.org-"$version".tgz)
{ printf '/* htmx.org %s from the npm registry (BSD Zero Clause, see htmx.LICENSE); refreshed by update-htmx.sh */\n' "$version"; cat "$tmp/package/dist/htmx.min.js"; } > htmx.min.js
cp "$tmp/package/LICENSE" htmx.LICENSE
printf '%s\n' "$version" > htmx.VERSION
echo "htmx $version vendored into $(pwd)"
