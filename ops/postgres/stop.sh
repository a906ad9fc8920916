#!/usr/bin/env bash
# ops/postgres/stop.sh - stop the cluster that ops/postgres/start.sh started
# (pg_ctl stop -m fast, as the OS user that owns the cluster). Idempotent: exits 0
# when nothing is running. Removes $NEIKONG_PG_HOME/dsn; leaves the cluster dir
# in place for inspection (the next start.sh wipes it).
#
# Environment: NEIKONG_PG_HOME (default $HOME/.cache/neikong/pg) - the cluster dir
#   is read from $NEIKONG_PG_HOME/datadir, which start.sh writes;
#   NEIKONG_PG_STOP_TIMEOUT (default 60 seconds).
# Exit status: 0 stopped or not running; 1 the server would not stop.
set -euo pipefail

me="ops/postgres/stop.sh"
say() { echo "$me: $*" >&2; }

unset PGDATA PGHOST PGPORT
home=${NEIKONG_PG_HOME:-${HOME:?HOME is not set; set NEIKONG_PG_HOME}/.cache/neikong/pg}
timeout=${NEIKONG_PG_STOP_TIMEOUT:-60}
[[ $timeout =~ ^[0-9]+$ ]] || { say "ERROR: NEIKONG_PG_STOP_TIMEOUT must be a number of seconds, got '$timeout'"; exit 1; }

# NEIKONG_PG_STOP_DATA: used by start.sh to stop a cluster in a given dir
data_root=${NEIKONG_PG_STOP_DATA:-}
if [ -z "$data_root" ] && [ -f "$home/datadir" ]; then data_root=$(cat "$home/datadir"); fi
if [ -z "$data_root" ]; then
  say "no cluster recorded in $home/datadir: nothing to stop"
  exit 0
fi
pgdata=$data_root/pgdata
if [ ! -f "$pgdata/postmaster.pid" ]; then
  say "not running (no $pgdata/postmaster.pid)"
  rm -f "$home/dsn"
  exit 0
fi

bindir=
[ -f "$home/bindir" ] && bindir=$(cat "$home/bindir")
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  bindir=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r | head -n1 || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  if command -v pg_ctl >/dev/null 2>&1; then
    bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
  else
    say "ERROR: pg_ctl not found (looked in $home/bindir, /usr/lib/postgresql/*/bin, PATH); stop the server with: kill -INT \$(head -1 $pgdata/postmaster.pid)"
    exit 1
  fi
fi

owner=$(stat -c %U "$pgdata")
cd /   # the server's OS user may not be allowed into the caller's cwd
if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then
  as_owner() { runuser -u "$owner" -- "$@"; }
elif [ "$owner" = "$(id -un)" ]; then
  as_owner() { "$@"; }
else
  say "ERROR: the cluster in $pgdata belongs to '$owner'; run this script as $owner or as root"
  exit 1
fi

if ! as_owner "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  say "not running (stale postmaster.pid in $pgdata)"
  rm -f "$home/dsn"
  exit 0
fi
say "stopping PostgreSQL in $pgdata (pg_ctl stop -m fast)"
t0=$SECONDS
if ! as_owner "$bindir/pg_ctl" -D "$pgdata" -m fast -w -t "$timeout" -s stop >&2; then
  say "fast shutdown did not finish in ${timeout}s; trying immediate shutdown"
  if ! as_owner "$bindir/pg_ctl" -D "$pgdata" -m immediate -w -t 30 -s stop >&2; then
    say "ERROR: the server in $pgdata would not stop; see $data_root/server.log"
    exit 1
  fi
fi
rm -f "$home/dsn"
say "stopped (in $((SECONDS - t0))s)"
