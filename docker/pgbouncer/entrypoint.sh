#!/bin/sh
# PgBouncer in transaction pooling mode in front of one database, from the environment:
#   DB_HOST, DB_NAME, DB_USER, DB_PASSWORD (required), DB_PORT (5432),
#   PGBOUNCER_PORT (6432), PGBOUNCER_DEFAULT_POOL_SIZE (20: server connections, for all
#   replicas together), PGBOUNCER_MAX_CLIENT_CONN (2000: replicas x workers x pool size must
#   fit), PGBOUNCER_CONF_DIR (/tmp/pgbouncer).
# Clients log in with DB_USER/DB_PASSWORD (SCRAM); PgBouncer logs in to PostgreSQL with the same.
# No ignore_startup_parameters: a startup parameter PgBouncer does not track is refused, never
# dropped in silence (SpendGuard sends only application_name through it).
set -eu
: "${DB_HOST:?}" "${DB_NAME:?}" "${DB_USER:?}" "${DB_PASSWORD:?}"
conf=${PGBOUNCER_CONF_DIR:-/tmp/pgbouncer}
umask 077
mkdir -p "$conf"

quote() {  # a userlist.txt field: double quotes, a quote inside doubled
    printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"
}

printf '%s %s\n' "$(quote "$DB_USER")" "$(quote "$DB_PASSWORD")" > "$conf/userlist.txt"
cat > "$conf/pgbouncer.ini" <<INI
[databases]
${DB_NAME} = host=${DB_HOST} port=${DB_PORT:-5432} dbname=${DB_NAME}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = ${PGBOUNCER_PORT:-6432}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${conf}/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_DEFAULT_POOL_SIZE:-20}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-2000}
INI
exec pgbouncer "$conf/pgbouncer.ini"
