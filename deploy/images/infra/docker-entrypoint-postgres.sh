#!/bin/sh
# The part of the postgres image's docker-entrypoint.sh that deploy/compose.yaml relies on, for
# Debian's PostgreSQL 15 (deploy/images/infra/Dockerfile): on the first start (an empty PGDATA),
# initdb as POSTGRES_USER with the password from POSTGRES_PASSWORD_FILE (read as root: the secret's
# file may be the operator's, mode 0600), local connections trusted and TCP ones by
# scram-sha-256, and the database POSTGRES_DB; then the command (`postgres -c ...`) as postgres.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
            password="$(cat "$POSTGRES_PASSWORD_FILE")"
        else
            password="${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is needed}"
        fi
        pwfile="$(mktemp)"
        printf '%s\n' "$password" > "$pwfile"
        chown postgres "$pwfile"
        as_postgres initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        if [ "$POSTGRES_DB" != postgres ]; then
            echo "CREATE DATABASE \"$POSTGRES_DB\";" | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
        fi
        echo "docker-entrypoint-postgres: made the cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
