#!/usr/bin/env bash
# ops/postgres/start.sh - start a throw-away PostgreSQL cluster on 127.0.0.1 for
# tests and local work, with a least-privilege role and database:
#   role neikong (LOGIN, not superuser, no CREATEDB/CREATEROLE, random password)
#   database neikong_test owned by neikong
#
#   bash ops/postgres/start.sh   # last stdout line: postgresql://neikong:PASSWORD@127.0.0.1:PORT/neikong_test
#   bash ops/postgres/stop.sh
#
# Every start wipes the cluster directory and runs initdb again (fsync on, data
# checksums on: the tests check durability). A cluster an earlier start.sh left
# running (same NEIKONG_PG_HOME) is stopped first, so running start.sh twice is safe.
# The DSN is also written to $NEIKONG_PG_HOME/dsn (mode 600).
#
# Server binaries: $NEIKONG_PG_BIN, else the newest /usr/lib/postgresql/*/bin,
# else initdb/pg_config on PATH. Missing and running as root: installs them
# (apt-get update && apt-get install -y postgresql; Debian 12 gives PostgreSQL 15).
# As root the server runs as the `postgres` OS user (initdb refuses root); as any
# other user it runs as that user (no sudo needed).
#
# Environment (all optional):
#   NEIKONG_PG_HOME           $HOME/.cache/neikong/pg   dsn, logs, bookkeeping
#   NEIKONG_PG_DATA           $NEIKONG_PG_HOME/data     cluster dir, WIPED on start
#                             (pgdata/ + server.log; the unix socket is in pgdata/).
#                             As root, when the postgres user cannot reach it
#                             (e.g. /root is 0700) and NEIKONG_PG_DATA is unset:
#                             /var/tmp/neikong-pg-PORT instead.
#   NEIKONG_PG_PORT           55432   TCP port on 127.0.0.1 (nothing else listens)
#   NEIKONG_PG_START_TIMEOUT  60      seconds to wait for pg_isready
#   NEIKONG_PG_BIN            folder with initdb, pg_ctl, postgres, pg_isready, psql
#   NEIKONG_PG_OS_USER        postgres  OS user that runs the server when started as root
#
# Exit status: 0 ready; 2 a prerequisite is missing (server binaries, OS user);
#   4 the port is taken by another process, or the cluster dir is not one this
#   script made / not reachable; 5 initdb, start-up or role creation failed (log
#   tail printed); 1 anything else.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
me="ops/postgres/start.sh"

say() { echo "$me: $*" >&2; }
die() { local code=$1; shift; echo "$me: ERROR: $*" >&2; exit "$code"; }

# libpq variables from the caller's environment must not redirect our commands
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE \
      PGSERVICEFILE PGOPTIONS PGDATA PGSSLMODE PGTARGETSESSIONATTRS PGCONNECT_TIMEOUT

# ---------------------------------------------------------------- settings ---
home=${NEIKONG_PG_HOME:-${HOME:?HOME is not set; set NEIKONG_PG_HOME}/.cache/neikong/pg}
mkdir -p "$home" || die 1 "cannot create NEIKONG_PG_HOME=$home"
home=$(cd "$home" && pwd)
port=${NEIKONG_PG_PORT:-55432}
start_timeout=${NEIKONG_PG_START_TIMEOUT:-60}
marker=.neikong-pg-data
for v in "$port" "$start_timeout"; do
  [[ $v =~ ^[0-9]+$ ]] || die 1 "expected a number, got '$v' (check NEIKONG_PG_PORT / NEIKONG_PG_START_TIMEOUT)"
done
if [ -n "${NEIKONG_PG_DATA:-}" ]; then
  data_root=$NEIKONG_PG_DATA
  case "$data_root" in /*) ;; *) data_root=$PWD/$data_root ;; esac
else
  data_root=$home/data
fi
data_root=${data_root%/}
case "$data_root" in
  "" | / | "$HOME" | "$home") die 4 "refusing to use '$data_root' as the cluster dir (it is wiped on start); set NEIKONG_PG_DATA to a dedicated folder" ;;
esac
cd /   # the server's OS user may not be allowed into the caller's cwd

# ----------------------------------------------------------- server binaries -
has_server_bins() {
  local d=$1 b
  for b in initdb pg_ctl postgres; do [ -x "$d/$b" ] || return 1; done
}
find_bindir() {
  local d
  if [ -n "${NEIKONG_PG_BIN:-}" ]; then
    has_server_bins "$NEIKONG_PG_BIN" && { echo "$NEIKONG_PG_BIN"; return 0; }
    die 2 "NEIKONG_PG_BIN=$NEIKONG_PG_BIN has no initdb/pg_ctl/postgres"
  fi
  for d in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r); do
    has_server_bins "$d" && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1; then
    d=$(dirname "$(readlink -f "$(command -v initdb)")")
    has_server_bins "$d" && { echo "$d"; return 0; }
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$d" ] && has_server_bins "$d" && { echo "$d"; return 0; }
  fi
  return 1
}

if ! bindir=$(find_bindir); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL server binaries not found; installing them: apt-get update && apt-get install -y postgresql"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >&2 \
      || die 2 "apt-get install postgresql failed (see above)"
    bindir=$(find_bindir) || die 2 "postgresql is installed but no initdb/pg_ctl/postgres found under /usr/lib/postgresql/*/bin"
  else
    die 2 "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found. Install them (Debian: sudo apt-get install -y postgresql) or set NEIKONG_PG_BIN to their folder."
  fi
fi
tool() {  # client tools: from the server's bindir if there, else PATH
  if [ -x "$bindir/$1" ]; then echo "$bindir/$1"
  elif command -v "$1" >/dev/null 2>&1; then command -v "$1"
  else die 2 "$1 not found (Debian: apt-get install -y postgresql-client)"; fi
}
pg_isready=$(tool pg_isready)
psql=$(tool psql)
pg_version=$("$bindir/postgres" --version | sed 's/^postgres (PostgreSQL) //')

# ------------------------------------------------------- who runs the server -
if [ "$(id -u)" = 0 ]; then
  os_user=${NEIKONG_PG_OS_USER:-postgres}
  id -u "$os_user" >/dev/null 2>&1 \
    || die 2 "OS user '$os_user' does not exist; PostgreSQL refuses to run as root. Create it (useradd --system --home-dir /var/lib/postgresql $os_user), install the postgresql package (it creates it), or set NEIKONG_PG_OS_USER."
  [ "$os_user" != root ] || die 2 "NEIKONG_PG_OS_USER must not be root (PostgreSQL refuses to run as root)"
  as_server() { runuser -u "$os_user" -- "$@"; }
else
  os_user=$(id -un)
  as_server() { "$@"; }
fi

# ---------------------------------------------------- stop an earlier cluster -
NEIKONG_PG_HOME=$home bash "$here/stop.sh" >&2 || die 1 "could not stop the cluster an earlier start left running"
if [ -f "$data_root/pgdata/postmaster.pid" ]; then
  # started with another NEIKONG_PG_HOME but the same cluster dir
  NEIKONG_PG_HOME=$home NEIKONG_PG_STOP_DATA=$data_root bash "$here/stop.sh" >&2 \
    || die 1 "could not stop the cluster running in $data_root"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  die 4 "port $port on 127.0.0.1 is already in use by another process (see: ss -ltnp 'sport = :$port'). Stop it or set NEIKONG_PG_PORT to a free port."
fi

# ---------------------------------------------------- fresh cluster directory -
if [ "$(id -u)" = 0 ] && [ -z "${NEIKONG_PG_DATA:-}" ] \
   && ! runuser -u "$os_user" -- test -x "$(dirname "$data_root")"; then
  data_root=/var/tmp/neikong-pg-$port
  say "the $os_user OS user cannot reach $home (a parent is not searchable); the cluster goes to $data_root"
fi
case "$data_root" in *"'"* | *$'\n'* | *' '*) die 4 "the cluster dir path must not contain quotes, spaces or newlines: $data_root" ;; esac
pgdata=$data_root/pgdata
socket="$pgdata/.s.PGSQL.$port"
[ "${#socket}" -le 100 ] || die 4 "unix socket path too long (${#socket} > 100 chars): $socket; set NEIKONG_PG_DATA to a shorter folder"

if [ -L "$data_root" ]; then
  die 4 "cluster dir $data_root is a symlink; refusing to wipe it. Set NEIKONG_PG_DATA to a real folder."
fi
if [ -d "$data_root" ] && [ ! -e "$data_root/$marker" ] && [ -n "$(ls -A "$data_root")" ]; then
  die 4 "cluster dir $data_root is not empty and was not made by this script (no $marker file); refusing to wipe it. Remove it yourself or set NEIKONG_PG_DATA."
fi
if [ -d "$data_root" ]; then
  owner=$(stat -c %U "$data_root")
  if [ "$(id -u)" = 0 ] && [ "$owner" != root ] && [ "$owner" != "$os_user" ]; then
    die 4 "cluster dir $data_root belongs to '$owner', not root or $os_user; refusing to wipe it"
  fi
fi
rm -rf "$data_root"
mkdir -p "$data_root"
chmod 700 "$data_root"
touch "$data_root/$marker"
if [ "$(id -u)" = 0 ]; then
  chown -R "$os_user": "$data_root"
  runuser -u "$os_user" -- test -w "$data_root" \
    || die 4 "the $os_user OS user cannot write $data_root (a parent dir is not searchable?); set NEIKONG_PG_DATA to a folder it can reach, e.g. /var/tmp/neikong-pg"
fi
echo "$data_root" >"$home/datadir"
echo "$bindir" >"$home/bindir"
rm -f "$home/dsn"

# ------------------------------------------------------------------- initdb --
log=$data_root/server.log
if ! as_server "$bindir/initdb" -D "$pgdata" --auth-local=peer --auth-host=scram-sha-256 \
       --encoding=UTF8 --locale=C --data-checksums --no-instructions >"$home/initdb.log" 2>&1; then
  tail -n 30 "$home/initdb.log" >&2
  die 5 "initdb failed (log above, full: $home/initdb.log)"
fi
as_server tee -a "$pgdata/postgresql.conf" >/dev/null <<EOF

# ---- written by ops/postgres/start.sh: throw-away test cluster ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pgdata'
unix_socket_permissions = 0700
# durability test: keep every durability setting at its safe value
fsync = on
synchronous_commit = on
full_page_writes = on
password_encryption = scram-sha-256
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF

# -------------------------------------------------------------------- start --
say "PostgreSQL $pg_version: starting on 127.0.0.1:$port (cluster $pgdata, OS user $os_user)"
t0=$SECONDS
if ! as_server "$bindir/pg_ctl" -D "$pgdata" -l "$log" -w -t "$start_timeout" -s start >&2; then
  tail -n 30 "$log" >&2 || true
  die 5 "pg_ctl start failed (server log above: $log)"
fi
started=0
cleanup() {
  if [ "$started" != 1 ]; then
    as_server "$bindir/pg_ctl" -D "$pgdata" -m immediate -s stop >/dev/null 2>&1 || true
    rm -f "$home/dsn"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

until "$pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -t 2; do
  if (( SECONDS - t0 >= start_timeout )); then
    tail -n 30 "$log" >&2 || true
    die 5 "pg_isready: no server accepting connections on 127.0.0.1:$port after ${start_timeout}s (log above)"
  fi
  sleep 0.5
done

# ---------------------------------------------- least-privilege role and db --
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
[ "${#password}" = 32 ] || die 1 "could not generate a password from /dev/urandom"
# fed on stdin, so the password never shows up in a process list
if ! as_server "$psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdata" -p "$port" -U "$os_user" -d postgres \
       >"$home/setup.log" 2>&1 <<EOF
\\set pw '$password'
CREATE ROLE neikong WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'pw';
CREATE DATABASE neikong_test OWNER neikong ENCODING 'UTF8' TEMPLATE template0;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
EOF
then
  cat "$home/setup.log" >&2
  die 5 "creating role neikong / database neikong_test failed (output above)"
fi

# check the DSN the way a client will use it: TCP, password, as neikong
if ! check=$(PGPASSWORD=$password PGCONNECT_TIMEOUT=10 "$psql" -X -A -t -v ON_ERROR_STOP=1 \
       -h 127.0.0.1 -p "$port" -U neikong -d neikong_test \
       -c "SELECT current_user || ' ' || rolsuper::text || ' ' || current_setting('fsync') FROM pg_roles WHERE rolname = current_user" 2>&1); then
  echo "$check" >&2
  die 5 "cannot log in as neikong over TCP with the generated password (output above)"
fi
[ "$check" = "neikong false on" ] || die 5 "unexpected role state (want 'neikong false on', got '$check')"

dsn="postgresql://neikong:$password@127.0.0.1:$port/neikong_test"
(umask 077 && echo "$dsn" >"$home/dsn")
started=1
say "PostgreSQL $pg_version ready on 127.0.0.1:$port after $((SECONDS - t0))s (log: $log; DSN also in $home/dsn; stop: bash $here/stop.sh)"
echo "$dsn"
