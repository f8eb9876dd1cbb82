#!/usr/bin/env bash
# Fetches the Groovy 5 jars that QuPath 0.7 ships (groovy, groovy-jsr223, groovy-xml: no other Groovy
# module) from Maven Central into .cache/groovy5/ (git-ignored), checked against Maven Central's SHA-1.
# Idempotent: does nothing when they are there. Called by .ci/run and, when missing, by the Groovy tests.
# Prints the folder on success; exits non-zero with a message naming what could not be had.
set -euo pipefail
VERSION="${GROOVY5_VERSION:-5.0.7}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.cache/groovy5/$VERSION"
BASE="https://repo1.maven.org/maven2/org/apache/groovy"
mkdir -p "$DIR"
for m in groovy groovy-jsr223 groovy-xml; do
  jar="$DIR/$m-$VERSION.jar"
  [ -s "$jar" ] && continue
  command -v curl >/dev/null 2>&1 || { echo "groovy5.sh: curl is needed to fetch $m $VERSION from Maven Central" >&2; exit 2; }
  url="$BASE/$m/$VERSION/$m-$VERSION.jar"
  if ! curl -fsSL --retry 2 --max-time 120 -o "$jar.part" "$url" || ! sha=$(curl -fsSL --max-time 30 "$url.sha1"); then
    rm -f "$jar.part"
    echo "groovy5.sh: could not download $url (Maven Central not reachable?)" >&2
    exit 3
  fi
  got=$(sha1sum "$jar.part" | cut -d' ' -f1)
  if [ "$got" != "${sha%% *}" ]; then
    rm -f "$jar.part"
    echo "groovy5.sh: $m-$VERSION.jar checksum mismatch ($got, Maven Central says ${sha%% *})" >&2
    exit 4
  fi
  mv "$jar.part" "$jar"
done
echo "$DIR"
