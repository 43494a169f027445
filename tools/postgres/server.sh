#!/usr/bin/env bash
# A local PostgreSQL (Debian's, the newest under /usr/lib/postgresql) on
# loopback, for tools/run.sh --postgres and the benchmarks. Development only:
# no password (trust on 127.0.0.1), superuser "postgres".
#
#   server.sh start DIR [PORT]   initdb DIR on first use, start, wait until it
#                                accepts connections, create database
#                                "switchboard" if missing, print its URI
#                                (postgresql://postgres@127.0.0.1:PORT/switchboard)
#   server.sh stop DIR           fast shutdown (open transactions roll back,
#                                committed data stays), wait for it to end
#
# PORT defaults to 5432. PostgreSQL refuses to run as root: as root it runs
# as the `postgres` user (Debian's package makes it), which must be able to
# reach DIR; where it cannot (a folder under /root, mode 700) the cluster
# lives under /var/lib/switchboard and DIR is made a link to it (remove
# both to start afresh). DIR holds the logs, initdb.log and postgres.log.
set -euo pipefail
command=${1:-}
dir=${2:-}
port=${3:-5432}
if [[ -z "$command" || -z "$dir" ]]; then
  echo "usage: server.sh start|stop DIR [PORT]" >&2
  exit 2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ ! -x "$bin/pg_ctl" ]]; then
  echo "postgres: no PostgreSQL server under /usr/lib/postgresql; run tools/setup.sh" >&2
  exit 1
fi
as_pg=()
if (($(id -u) == 0)); then
  as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups)
fi

case "$command" in
  start)
    if [[ ! -e "$dir" ]] && ((${#as_pg[@]})) &&
      ! "${as_pg[@]}" test -x "$(dirname "$(realpath -m "$dir")")"; then
      elsewhere="/var/lib/switchboard/postgres-$(realpath -m "$dir" | sha256sum | cut -c1-12)"
      mkdir -p "$elsewhere" "$(dirname "$dir")"
      ln -s "$elsewhere" "$dir"
      echo "postgres: user postgres cannot reach $dir: the cluster is in $elsewhere" >&2
    fi
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    ((${#as_pg[@]} == 0)) || chown -R postgres:postgres "$dir"
    # From / : the user postgres may not be allowed into the caller's folder.
    cd /
    if [[ ! -f "$dir/PG_VERSION" ]]; then
      # initdb wants an empty folder: its log goes there once it is done.
      log=$(mktemp)
      if ! "${as_pg[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$log" 2>&1; then
        echo "postgres: initdb failed:" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
      fi
      mv "$log" "$dir/initdb.log"
    fi
    # The socket lives in DIR, not /var/run/postgresql (absent without the
    # package's cluster).
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/postgres.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir" start >/dev/null ||
      { echo "postgres: did not start; see $dir/postgres.log" >&2; tail -5 "$dir/postgres.log" >&2; exit 1; }
    psql=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
    if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'switchboard'") ]]; then
      "${psql[@]}" -c 'CREATE DATABASE switchboard'
    fi
    echo "postgresql://postgres@127.0.0.1:$port/switchboard"
    ;;
  stop)
    [[ -f "$dir/postmaster.pid" ]] || exit 0
    dir=$(realpath "$dir")
    cd /
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null
    ;;
  *)
    echo "usage: server.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
