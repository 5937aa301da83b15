#!/usr/bin/env bash
# Compiles the JMH benchmarks under bench/src against target/classes into bench/target/jmh/{classes,lib}
# (about 1.5 MB: the benchmark classes and the three JMH jars), small enough to carry to the GPU machine with
# one call, where the staged runtime's CLASSPATH supplies jtune and LibTorch. Run from the repository root
# after `mvn -B -DskipTests package`.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
m2=${M2_REPO:-$HOME/.m2/repository}
jmh=1.37
mvn -q -B dependency:get -Dartifact=org.openjdk.jmh:jmh-core:$jmh >/dev/null
mvn -q -B dependency:get -Dartifact=org.openjdk.jmh:jmh-generator-annprocess:$jmh >/dev/null
libs="$m2/org/openjdk/jmh/jmh-core/$jmh/jmh-core-$jmh.jar:$m2/net/sf/jopt-simple/jopt-simple/5.0.4/jopt-simple-5.0.4.jar:$m2/org/apache/commons/commons-math3/3.6.1/commons-math3-3.6.1.jar"
mvn -q -B dependency:build-classpath -Dmdep.outputFile=/tmp/jtune-jmh-cp.$$ >/dev/null
rm -rf bench/target/jmh && mkdir -p bench/target/jmh/classes bench/target/jmh/lib
javac -nowarn -d bench/target/jmh/classes -cp "target/classes:$(cat /tmp/jtune-jmh-cp.$$):$libs" \
  -processorpath "$m2/org/openjdk/jmh/jmh-generator-annprocess/$jmh/jmh-generator-annprocess-$jmh.jar:$libs" \
  $(find bench/src/main/java -name '*.java')
rm -f /tmp/jtune-jmh-cp.$$
cp $(echo "$libs" | tr ':' ' ') bench/target/jmh/lib/
du -sh bench/target/jmh
