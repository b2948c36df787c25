#!/usr/bin/env bash
# A PostgreSQL cluster of the caller's own, in a scratch directory, on 127.0.0.1:PORT with
# trust authentication: the same server binaries and settings as the machine's cluster, plus
# pg_stat_statements, so that a benchmark can count the statements it causes.
#   deploy/scratch-postgres.sh start DIR PORT   # initdb (first time) and start; waits until it answers
#   deploy/scratch-postgres.sh stop DIR         # fast shutdown; the directory is left to the caller
# PostgreSQL refuses to run as root; as root the cluster runs as the postgres system user.
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?directory}
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/pg_ctl" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

case "$cmd" in
  start)
    port=${3:?port}
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
      "${as_pg[@]}" "$bindir/initdb" -U postgres --auth=trust -E UTF8 -D "$dir/data" >/dev/null
    fi
    opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir \
      -c max_connections=200 -c shared_buffers=128MB -c shared_preload_libraries=pg_stat_statements \
      -c pg_stat_statements.track=top -c pg_stat_statements.max=1000 -c pg_stat_statements.track_planning=on"
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/postgres.log" -w -t 60 start >/dev/null
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] && "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
