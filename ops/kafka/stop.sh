#!/usr/bin/env bash
# ops/kafka/stop.sh - stop the broker that ops/kafka/start.sh recorded in
# $NEIKONG_KAFKA_HOME/kafka.pid, by that PID only (after checking that
# /proc/PID/cmdline is a java running kafka.Kafka). SIGTERM first (clean
# shutdown), SIGKILL after NEIKONG_KAFKA_STOP_TIMEOUT seconds (default 30).
# Idempotent: exits 0 when nothing is running. The data dir is left in place
# for inspection (the next start.sh wipes it).
#
# Environment: NEIKONG_KAFKA_HOME (default $HOME/.cache/neikong/kafka),
#              NEIKONG_KAFKA_STOP_TIMEOUT (default 30).
# Exit status: 0 stopped or not running; 1 the process would not die.
set -euo pipefail

me="ops/kafka/stop.sh"
say() { echo "$me: $*" >&2; }

home=${NEIKONG_KAFKA_HOME:-${HOME:?HOME is not set; set NEIKONG_KAFKA_HOME}/.cache/neikong/kafka}
pidfile=$home/kafka.pid
grace=${NEIKONG_KAFKA_STOP_TIMEOUT:-30}
[[ $grace =~ ^[0-9]+$ ]] || { say "ERROR: NEIKONG_KAFKA_STOP_TIMEOUT must be a number of seconds, got '$grace'"; exit 1; }

# alive = exists and is not a zombie (an exited child not yet reaped by its parent)
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  case ${stat:0:1} in Z | X) return 1 ;; *) return 0 ;; esac
}

if [ ! -f "$pidfile" ]; then
  say "no broker running (no $pidfile)"
  exit 0
fi
pid=$(tr -dc '0-9' <"$pidfile")
if [ -z "$pid" ] || ! alive "$pid"; then
  say "no broker running (stale pid file ${pid:+for pid $pid }removed)"
  rm -f "$pidfile" "$home/bootstrap"
  exit 0
fi

cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
case "$cmdline" in
  *java*kafka.Kafka*) ;;
  *)
    say "pid $pid is not a Kafka broker (cmdline: ${cmdline:0:120}); PIDs get reused - removing the stale pid file, killing nothing"
    rm -f "$pidfile" "$home/bootstrap"
    exit 0
    ;;
esac

say "stopping Kafka broker pid $pid (SIGTERM, up to ${grace}s)"
kill -TERM "$pid" 2>/dev/null || true
t0=$SECONDS
while alive "$pid" && (( SECONDS - t0 < grace )); do sleep 0.5; done
if alive "$pid"; then
  say "pid $pid still running after ${grace}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.5; done
  if alive "$pid"; then
    say "ERROR: pid $pid survived SIGKILL; check it with: ps -o pid,stat,cmd -p $pid"
    exit 1
  fi
fi
rm -f "$pidfile" "$home/bootstrap"
say "stopped (in $((SECONDS - t0))s)"
