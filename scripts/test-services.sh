# Sourced by scripts/test: make sure Redis and PostgreSQL answer on localhost.
# Uses the servers already running (TICKETD_TEST_REDIS / TICKETD_TEST_PG name
# others); otherwise starts throwaway ones under a temp directory.

ensure_redis() {
  local url=${TICKETD_TEST_REDIS:-redis://127.0.0.1:6379/15}
  local port=${url##*:}; port=${port%%/*}
  if redis-cli -p "$port" ping >/dev/null 2>&1; then return; fi
  echo "starting a throwaway Redis on port $port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$(mktemp -d)" --logfile "$(mktemp)"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "Redis did not start" >&2; exit 1
}

ensure_postgres() {
  if [ -n "${TICKETD_TEST_PG:-}" ]; then return; fi
  if psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then return; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start 2>/dev/null || true
    for _ in $(seq 50); do
      psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && return; sleep 0.2
    done
  fi
  # A private cluster owned by the postgres user (initdb refuses root).
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  local dir; dir=$(mktemp -d); chown postgres "$dir" 2>/dev/null || true
  local port=55432
  echo "starting a throwaway PostgreSQL on port $port"
  su postgres -c "$bindir/initdb -D $dir/data -A trust -U postgres >/dev/null && \
    $bindir/pg_ctl -D $dir/data -o '-p $port -k $dir -c listen_addresses=127.0.0.1' -l $dir/log start >/dev/null"
  export TICKETD_TEST_PG="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}
