#!/usr/bin/env bash
# Print the path of a program taken from a Debian package's .deb, without installing the package.
#
#   tools/debian-tool.sh PACKAGE BINARY        e.g.  tools/debian-tool.sh prometheus promtool
#
# Installing some packages would start a service on this machine (prometheus, alertmanager); the tests only
# need their command-line tools. The package's candidate version is fetched once with `apt-get download`
# (running `apt-get update -qq` only when that fails), unpacked with `dpkg-deb -x` into
# $SPOT_REDIS_TOOLS_CACHE/<package>_<version>/ (default /var/cache/spot-redis-lab/tools), and later calls just
# print the path. Unpacking happens in a temporary directory that is renamed into place, so two calls at once
# never see a half-extracted tree. BINARY is looked up in usr/bin, usr/sbin, bin and sbin of the package, or,
# when it contains a slash, taken as a path inside the package.
set -euo pipefail

usage() {
  echo "usage: $0 PACKAGE BINARY" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
package=$1
binary=$2
[[ $package =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || {
  echo "$0: not a Debian package name: $package" >&2
  exit 2
}
[[ -n $binary && $binary != *..* ]] || {
  echo "$0: bad binary name: $binary" >&2
  exit 2
}

cache_root=${SPOT_REDIS_TOOLS_CACHE:-/var/cache/spot-redis-lab/tools}

candidate_version() {
  apt-cache policy "$package" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
}

# The path of BINARY inside an extracted package tree, or nothing.
find_binary() {
  local tree=$1 dir
  if [[ $binary == */* ]]; then
    [[ -f $tree/${binary#/} && -x $tree/${binary#/} ]] && echo "$tree/${binary#/}"
    return 0
  fi
  for dir in usr/bin usr/sbin bin sbin; do
    if [[ -f $tree/$dir/$binary && -x $tree/$dir/$binary ]]; then
      echo "$tree/$dir/$binary"
      return 0
    fi
  done
}

# The newest tree already extracted for this package (used when apt knows no candidate, e.g. offline).
newest_cached() {
  local tree
  tree=$(find "$cache_root" -mindepth 1 -maxdepth 1 -type d -name "${package}_*" -printf '%f\n' 2>/dev/null |
    sed "s/^${package}_//" | sort -V | tail -n 1)
  [[ -n $tree ]] && echo "$cache_root/${package}_$tree"
}

version=$(candidate_version)
if [[ -z $version ]]; then
  tree=$(newest_cached || true)
  if [[ -n $tree ]]; then
    path=$(find_binary "$tree")
    if [[ -n $path ]]; then
      echo "$path"
      exit 0
    fi
  fi
  apt-get update -qq >&2
  version=$(candidate_version)
  [[ -n $version ]] || {
    echo "$0: apt knows no candidate version of $package" >&2
    exit 1
  }
fi

tree="$cache_root/${package}_${version//:/%3a}"
if [[ -d $tree ]]; then
  path=$(find_binary "$tree")
  [[ -n $path ]] || {
    echo "$0: $package $version has no executable $binary (looked in $tree)" >&2
    exit 1
  }
  echo "$path"
  exit 0
fi

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.${package}.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

download() {
  # apt-get download writes into the current directory; as root it warns that the _apt user cannot write there.
  (cd "$work" && apt-get download -qq "$package=$version") >&2 2>"$work/download.log"
}
if ! download; then
  apt-get update -qq >&2
  download || {
    cat "$work/download.log" >&2
    echo "$0: could not download $package=$version" >&2
    exit 1
  }
fi

debs=("$work"/*.deb)
[[ -f ${debs[0]} ]] || {
  echo "$0: apt-get download left no .deb for $package=$version" >&2
  exit 1
}
dpkg-deb -x "${debs[0]}" "$work/root"

path=$(find_binary "$work/root")
[[ -n $path ]] || {
  echo "$0: $package $version has no executable $binary" >&2
  exit 1
}

# Publish atomically. If another call got there first the rename fails (the target is a non-empty directory)
# and its tree, identical to ours, is used.
mv -T "$work/root" "$tree" 2>/dev/null || [[ -d $tree ]]
find_binary "$tree"
