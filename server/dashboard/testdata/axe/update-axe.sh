#!/bin/sh
# Refreshes the vendored axe-core (npm package axe-core, MPL-2.0, see LICENSE)
# that the dashboard's browser tests inject into each screen. Test-only: it is
# never embedded in the binary nor served.
# Usage: server/dashboard/testdata/axe/update-axe.sh [version]   (default: newest 4.x)
set -eu
cd "$(dirname "$0")"
spec="axe-core@${1:-4}"
version=$(npm view "$spec" version --json | tr -d '[]" \n' | tr ',' '\n' | tail -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null && tar -xzf axe-core-"$version".tgz)
cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$tmp/package/LICENSE-3RD-PARTY.txt" .
printf '%s\n' "$version" > VERSION
echo "axe-core $version vendored into $(pwd)"
