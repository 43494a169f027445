#!/usr/bin/env bash
# Installs the Apache Kafka broker jars (version in pom.xml) from Maven
# Central into $SWITCHBOARD_KAFKA_HOME (default /opt/switchboard/kafka).
# Idempotent: once installed (a marker records the pom's checksum) it returns
# at once. Needs java (17+) and mvn: tools/setup.sh installs both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
home=${SWITCHBOARD_KAFKA_HOME:-/opt/switchboard/kafka}
marker="$home/.installed"
want=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)

if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
  echo "kafka: installed in $home"
  exit 0
fi

echo "kafka: fetching the broker's jars from Maven Central into $home"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/pom.xml" "$work/pom.xml"
(cd "$work" && mvn -q -B dependency:copy-dependencies \
   -DoutputDirectory="$work/libs" -DincludeScope=runtime)
# A stray SLF4J 1.x API from a transitive dependency would shadow 2.x.
rm -f "$work"/libs/slf4j-api-1.*.jar
mkdir -p "$home"
rm -rf "$home/libs"
mv "$work/libs" "$home/libs"
echo "$want" >"$marker"
echo "kafka: installed $(ls "$home/libs" | wc -l) jars in $home"
