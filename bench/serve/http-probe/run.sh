#!/usr/bin/env bash
# The experiment behind serve's choice of HTTP server (docs/serve.md, "Why Netty"): for the JDK's HttpServer,
# Jetty 12 core and Netty 4.1, does the server tell the handler when a client closes its socket during a pending
# non-streaming request, and how long does each take to start? Fetches the two libraries with Maven, REPEATS runs each.
#   bench/serve/http-probe/run.sh [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")"
repeats="${1:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# both libraries with their transitive jars, through a throwaway pom
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>probe</groupId><artifactId>probe</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.eclipse.jetty</groupId><artifactId>jetty-server</artifactId><version>12.1.13</version></dependency>
    <dependency><groupId>io.netty</groupId><artifactId>netty-codec-http</artifactId><version>4.1.138.Final</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>2.0.16</version></dependency>
  </dependencies></project>
POM
(cd "$work" && mvn -B -q -ntp dependency:build-classpath -Dmdep.outputFile=cp.txt >/dev/null)
cp="$(cat "$work/cp.txt")"
javac -d "$work/classes" -cp "$cp" HttpProbe.java
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); $(java -version 2>&1 | head -1)"
for i in $(seq 1 "$repeats"); do
  for server in jdk jetty netty; do java -cp "$cp:$work/classes" HttpProbe "$server"; done
done
echo "jar weight (bytes, the library's own jars without slf4j):"
tr ':' '\n' < "$work/cp.txt" | grep -E '/(jetty|netty)-' | while read -r j; do echo "$(stat -c %s "$j") $(basename "$j")"; done \
  | awk '{n=$2; sub(/-[0-9].*/, "", n); lib=(n ~ /^jetty/) ? "jetty" : "netty"; s[lib]+=$1; f[lib]=f[lib] " " $2} END {for (l in s) printf "  %s: %d bytes:%s\n", l, s[l], f[l]}'
