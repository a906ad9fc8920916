#!/usr/bin/env bash
# ops/kafka/start.sh - start a throw-away, single-node Apache Kafka broker
# (KRaft, broker+controller in one JVM) on 127.0.0.1 for tests and local work.
# No Docker, no apache.org: the jars come from Maven Central via ops/kafka/pom.xml.
#
#   bash ops/kafka/start.sh     # last stdout line: 127.0.0.1:PORT (the bootstrap address)
#   bash ops/kafka/stop.sh
#
# Every start wipes and re-formats the data dir: each run gets an empty cluster.
# A broker that an earlier start.sh left running (same NEIKONG_KAFKA_HOME) is
# stopped first, so running start.sh twice is safe.
#
# Environment (all optional):
#   NEIKONG_KAFKA_HOME             $HOME/.cache/neikong/kafka  libs/, kafka.pid, bootstrap
#   NEIKONG_KAFKA_DATA             $NEIKONG_KAFKA_HOME/data    wiped on start: config, topic
#                                  data (kraft/), server.log, console.log, format.log
#   NEIKONG_KAFKA_PORT             9092   client (PLAINTEXT) listener
#   NEIKONG_KAFKA_CONTROLLER_PORT  9093   KRaft controller listener
#   NEIKONG_KAFKA_START_TIMEOUT    120    seconds to wait for readiness
#   NEIKONG_KAFKA_HEAP_OPTS        "-Xms256m -Xmx1g"
#   NEIKONG_KAFKA_RESOLVE          1 = run Maven even if libs/ matches the pom
#   PYTHON                         interpreter for the readiness probe (default python3)
#   JAVA_HOME                      use $JAVA_HOME/bin/java instead of java on PATH (17+)
#
# Exit status: 0 ready; 2 a prerequisite (java 17+, mvn, python3) is missing;
#   3 resolving the jars with Maven failed; 4 a port is taken by another process
#   or the data dir is not one this script made; 5 the broker failed to start or
#   was not ready in time (log tail printed); 1 anything else.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
me="ops/kafka/start.sh"

say() { echo "$me: $*" >&2; }
die() { local code=$1; shift; echo "$me: ERROR: $*" >&2; exit "$code"; }

# ---------------------------------------------------------------- settings ---
home=${NEIKONG_KAFKA_HOME:-${HOME:?HOME is not set; set NEIKONG_KAFKA_HOME}/.cache/neikong/kafka}
mkdir -p "$home" || die 1 "cannot create NEIKONG_KAFKA_HOME=$home"
home=$(cd "$home" && pwd)
data=${NEIKONG_KAFKA_DATA:-$home/data}
case "$data" in /*) ;; *) data=$PWD/$data ;; esac
port=${NEIKONG_KAFKA_PORT:-9092}
cport=${NEIKONG_KAFKA_CONTROLLER_PORT:-9093}
start_timeout=${NEIKONG_KAFKA_START_TIMEOUT:-120}
heap_opts=${NEIKONG_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
py=${PYTHON:-python3}
libs=$home/libs
pidfile=$home/kafka.pid
marker=.neikong-kafka-data

for v in "$port" "$cport" "$start_timeout"; do
  [[ $v =~ ^[0-9]+$ ]] || die 1 "expected a number, got '$v' (check NEIKONG_KAFKA_PORT, _CONTROLLER_PORT, _START_TIMEOUT)"
done
[ "$port" != "$cport" ] || die 1 "NEIKONG_KAFKA_PORT and NEIKONG_KAFKA_CONTROLLER_PORT are both $port"
case "$data" in
  / | "$HOME" | "$HOME/" | "$home" | "$home/") die 4 "refusing to use '$data' as the data dir (it is wiped on start); set NEIKONG_KAFKA_DATA to a dedicated folder" ;;
esac

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --------------------------------------------------- an earlier broker? ------
if [ -f "$pidfile" ]; then
  say "a pid file from an earlier start exists; stopping that broker first"
  NEIKONG_KAFKA_HOME=$home bash "$here/stop.sh" >&2 || die 1 "could not stop the earlier broker (pid file $pidfile)"
fi
for p in "$port" "$cport"; do
  if port_open "$p"; then
    die 4 "port $p on 127.0.0.1 is already in use by another process (see: ss -ltnp 'sport = :$p'). Stop it, or pick free ports with NEIKONG_KAFKA_PORT / NEIKONG_KAFKA_CONTROLLER_PORT."
  fi
done

# ---------------------------------------------------------- prerequisites ----
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_install() {
  say "installing $* with apt-get (running as root)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >&2 \
    || die 2 "apt-get install $* failed"
}

if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
  java=$JAVA_HOME/bin/java
elif command -v java >/dev/null 2>&1; then
  java=$(command -v java)
elif can_apt; then
  apt_install openjdk-17-jre-headless
  java=$(command -v java)
else
  die 2 "java not found. Install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME."
fi
java_major=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)
java_major=${java_major#1.}
if ! [[ ${java_major:-0} =~ ^[0-9]+$ ]] || [ "${java_major:-0}" -lt 17 ]; then
  die 2 "$java is Java '${java_major:-?}'; Kafka 4.x needs Java 17+. Set JAVA_HOME to a Java 17+ installation."
fi

command -v "$py" >/dev/null 2>&1 || die 2 "Python interpreter '$py' not found (set PYTHON, or install python3)"

# ------------------------------------------------- 1. jars from Maven Central -
# libs/.stamp holds the sha256 of pom.xml that the folder was resolved from;
# while it matches, Maven is not run at all (warm start). Downloads are cached
# in ~/.m2/repository, so even a re-resolve is quick after the first time.
pom_sum=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
if [ "${NEIKONG_KAFKA_RESOLVE:-0}" != 1 ] && [ -f "$libs/.stamp" ] \
   && [ "$(cat "$libs/.stamp")" = "$pom_sum" ] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
  say "jars: $libs is up to date with pom.xml (Maven not run)"
else
  if ! command -v mvn >/dev/null 2>&1; then
    if can_apt; then apt_install maven
    else die 2 "mvn not found. Install Maven (Debian: apt-get install -y maven)."; fi
  fi
  say "jars: resolving with Maven from $here/pom.xml into $libs (first run downloads ~45 MB)"
  tmp_libs=$home/libs.tmp.$$
  rm -rf "$tmp_libs"
  mkdir -p "$tmp_libs"
  if ! (cd "$home" && mvn -q -B -ntp -Dstyle.color=never -f "$here/pom.xml" \
          -Dkafka.libs.dir="$tmp_libs" dependency:copy-dependencies) >"$home/mvn.log" 2>&1; then
    tail -n 40 "$home/mvn.log" >&2 || true
    rm -rf "$tmp_libs"
    die 3 "Maven could not resolve the Kafka jars (full log: $home/mvn.log). Check that Maven Central is reachable (and ~/.m2/settings.xml, if any), then run again."
  fi
  for jar in kafka_2.13 kafka-clients kafka-server kafka-metadata kafka-raft log4j-core log4j-slf4j-impl; do
    compgen -G "$tmp_libs/$jar-[0-9]*.jar" >/dev/null \
      || { rm -rf "$tmp_libs"; die 3 "Maven finished but $jar-*.jar is missing from the resolved folder (log: $home/mvn.log)"; }
  done
  rm -rf "$libs"
  mv "$tmp_libs" "$libs"
  echo "$pom_sum" >"$libs/.stamp"
fi
kafka_jar=$(compgen -G "$libs/kafka_2.13-*.jar" | head -n1)
kafka_version=${kafka_jar##*/kafka_2.13-}
kafka_version=${kafka_version%.jar}
cp_arg="$libs/*"   # kept quoted everywhere: java expands the wildcard, not the shell

# -------------------------------------------------- 2. fresh data directory --
if [ -L "$data" ]; then
  die 4 "data dir $data is a symlink; refusing to wipe it. Point NEIKONG_KAFKA_DATA at a real folder."
fi
if [ -d "$data" ] && [ ! -e "$data/$marker" ] && [ -n "$(ls -A "$data")" ]; then
  die 4 "data dir $data is not empty and was not made by this script (no $marker file); refusing to wipe it. Remove it yourself or set NEIKONG_KAFKA_DATA."
fi
rm -rf "$data"
mkdir -p "$data/kraft"
touch "$data/$marker"

cat >"$data/server.properties" <<EOF
# written by ops/kafka/start.sh - single node, KRaft, broker+controller, 127.0.0.1 only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/kraft

# Topics: auto-creation stays at Kafka's default (enabled) so that clients may
# create topics implicitly; tests should still create theirs explicitly with the
# admin client when they care about partition counts. New topics get 1 partition.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# Internal topics on a single broker: the defaults (replication 3) would leave it
# without a group or transaction coordinator.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Keep it light on a 2-core machine.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
EOF

# ------------------------------------------------------- 3. format storage ---
cluster_id=$("$py" -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    if not s.startswith("-"):
        print(s)
        break')
# (no log4j2 config here: the tool then logs errors only, into format.log)
if ! "$java" -Xmx256m -cp "$cp_arg" kafka.tools.StorageTool format \
       -t "$cluster_id" -c "$data/server.properties" </dev/null >"$data/format.log" 2>&1; then
  cat "$data/format.log" >&2
  die 5 "formatting the storage in $data/kraft failed (output above)"
fi

# ------------------------------------------------ 4. start in the background -
# stdin/stdout/stderr all redirected: the JVM must not hold the caller's pipes
# open (a CI runner waiting for EOF would hang). INFO log: $data/server.log.
read -r -a heap <<<"$heap_opts"
log_opts=(-Dkafka.logs.dir="$data" -Dlog4j2.configurationFile="$here/log4j2.properties")
"$java" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
  -Djava.awt.headless=true "${log_opts[@]}" \
  -cp "$cp_arg" kafka.Kafka "$data/server.properties" \
  </dev/null >"$data/console.log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

ready=0
probe_pid=
cleanup() {
  if [ -n "$probe_pid" ]; then kill "$probe_pid" 2>/dev/null || true; fi
  if [ "$ready" != 1 ]; then
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
  say "---- last lines of $data/console.log ----"
  tail -n 30 "$data/console.log" >&2 || true
  say "---- last lines of $data/server.log ----"
  tail -n 40 "$data/server.log" >&2 2>/dev/null || true
}

# ------------------------------------------------------ 5. wait for ready ----
say "Kafka $kafka_version starting (pid $pid, data $data); waiting up to ${start_timeout}s"
t0=$SECONDS
rc=0
# run the probe in the background and `wait` for it, so that a SIGINT/SIGTERM to
# this script is handled at once (cleanup then stops the half-started broker)
"$py" "$here/kafka_ready.py" --host 127.0.0.1 --port "$port" --timeout "$start_timeout" --pid "$pid" &
probe_pid=$!
wait "$probe_pid" || rc=$?
probe_pid=
case $rc in
  0) ;;
  2) show_logs; die 5 "the broker JVM exited during startup (logs above)" ;;
  1) show_logs; die 5 "the broker did not answer on 127.0.0.1:$port within ${start_timeout}s (logs above); raise NEIKONG_KAFKA_START_TIMEOUT if the machine is just slow" ;;
  *) show_logs; die 5 "readiness probe failed with status $rc" ;;
esac
ready=1
echo "127.0.0.1:$port" >"$home/bootstrap"
say "Kafka $kafka_version ready on 127.0.0.1:$port after $((SECONDS - t0))s (pid $pid; logs: $data/server.log; stop: bash $here/stop.sh)"
echo "127.0.0.1:$port"
