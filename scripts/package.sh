#!/usr/bin/env bash
# npm run package [-- --out DIR]: the standalone executable and the Debian package, from the sources
# (after `npm ci`), into dist/pkg (or DIR):
#   dss-spark-k8s-linux-x64           the CLI with Node.js embedded (packaging/build-executable.mjs)
#   dss-spark-k8s_<version>_amd64.deb  that executable in /usr/bin, the example configuration (a conffile),
#                                      the RBAC manifests, a sudoers example, the cleanup service and timer
#                                      (disabled), man pages from the executable's --help, the licences
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$project_root"

out=dist/pkg
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?package: --out needs a directory}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    *) echo "package: unknown argument $1; usage: scripts/package.sh [--out DIR]" >&2; exit 64 ;;
  esac
done

fail() { echo "package: $*" >&2; exit 1; }
for tool in dpkg-deb gzip md5sum; do
  command -v "$tool" >/dev/null || fail "$tool is missing (Debian's dpkg, gzip and coreutils packages)"
done
[ -d node_modules/esbuild ] && [ -d node_modules/postject ] || fail "node_modules is incomplete; run 'npm ci' first"
ensure_node

version=$(node -p 'require("./package.json").version')
changelog_version=$(sed -n '1s/^dss-spark-k8s (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$changelog_version" = "$version" ] \
  || fail "packaging/debian/changelog starts with version '${changelog_version}', package.json says '$version'; add a changelog entry for $version"
# The changelog's date is the package's: file dates inside it and the man pages' date (reproducible builds).
SOURCE_DATE_EPOCH=$(date -d "$(sed -n 's/^ -- .*>  //p' packaging/debian/changelog | head -1)" +%s)
export SOURCE_DATE_EPOCH
build_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)

# The configuration's JSON schema, when the repository has one: a committed schema must be there.
schema=
if [ -f config.schema.json ]; then
  schema=config.schema.json
elif git ls-files --error-unmatch config.schema.json >/dev/null 2>&1; then
  fail "config.schema.json is committed but missing from the work tree; restore it (git checkout config.schema.json)"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
# Built in a directory of its own, then moved into place: `npm run build` empties dist/ meanwhile.
tmp=$(mktemp -d /tmp/dss-spark-k8s-package-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
executable="$tmp/dss-spark-k8s-linux-x64"
deb="$tmp/dss-spark-k8s_${version}_amd64.deb"
work="$tmp/sea"
started=$(date +%s%N)
step() { echo "package: $1 ($(( ($(date +%s%N) - started) / 1000000 )) ms)" >&2; }

step "building the standalone executable (Node.js $(node -p process.version) embedded)"
node packaging/build-executable.mjs "$executable"
"$executable" --version | grep -qxF "$version" || fail "$executable --version does not print $version"

step "building the Debian package"
umask 022
root="$tmp/deb-root"
doc="$root/usr/share/doc/dss-spark-k8s"
share="$root/usr/share/dss-spark-k8s"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/dss-spark-k8s" "$share/rbac" "$doc" \
  "$root/usr/lib/systemd/system" "$root/usr/share/man/man1"

install -m 0755 "$executable" "$root/usr/bin/dss-spark-k8s"
install -m 0644 deploy/rbac/*.yaml "$share/rbac/"
if command -v visudo >/dev/null; then
  visudo -cqf packaging/sudoers.example >/dev/null || fail "packaging/sudoers.example does not pass visudo -c"
fi
install -m 0644 packaging/sudoers.example "$share/sudoers.example"
install -m 0644 packaging/systemd/dss-spark-k8s-cleanup.service packaging/systemd/dss-spark-k8s-cleanup.timer "$root/usr/lib/systemd/system/"
{
  if [ -n "$schema" ]; then
    echo '# yaml-language-server: $schema=/usr/share/dss-spark-k8s/config.schema.json'
    install -m 0644 "$schema" "$share/config.schema.json"
  fi
  cat packaging/config.yaml
} >"$root/etc/dss-spark-k8s/config.yaml"
chmod 0644 "$root/etc/dss-spark-k8s/config.yaml"

node packaging/manpages.mjs "$executable" "$root/usr/share/man/man1" "$build_date"
gzip -9n "$root"/usr/share/man/man1/*.1

bundled=$(node -e '
  const { packages } = require(process.argv[1]);
  console.log(packages.map((p) => ` ${p.name} ${p.version} (${p.license})`).join("\n"));' "$work/bundled-packages.json")
node_version=$(node -p 'require(process.argv[1]).node' "$work/bundled-packages.json")
# The bundled list is indented one space, as a continuation of the Copyright field.
awk -v node="$node_version" -v bundled="$bundled" '{ gsub(/@NODE_VERSION@/, node); if ($0 == "@BUNDLED_PACKAGES@") print bundled; else print }' \
  packaging/debian/copyright.in >"$doc/copyright"
gzip -9nc packaging/debian/changelog >"$doc/changelog.gz"
gzip -9nc "$work/LICENSE.node" >"$doc/LICENSE.node.gz"
gzip -9nc README.md >"$doc/README.md.gz"
chmod 0644 "$doc"/*

installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_size/" packaging/debian/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

step "compressing the Debian package"
# File dates no later than the changelog's (dpkg-deb of Debian 12 does not clamp them itself).
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

mkdir -p "$out"
for artifact in "$executable" "$deb"; do
  mv -f "$artifact" "$out/${artifact##*/}.partial" && mv -f "$out/${artifact##*/}.partial" "$out/${artifact##*/}"
  echo "package: $out/${artifact##*/} ($(stat -c %s "$out/${artifact##*/}") bytes)" >&2
done
step "done"
