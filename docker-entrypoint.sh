#!/bin/sh
# The image's entrypoint: make the data folders writable by the app's user, then run the command
# (gunicorn) as that user.
#
# Render mounts a persistent disk owned by root, as Docker does with a new host folder, while the
# server runs as the non-root user `app` and must write index.csv, the image cache and the search
# log there. Started as root (the image's default), this gives the folders of INDEX_PATH,
# CACHE_DIR and SEARCH_LOG_PATH, and whatever in them belongs to someone else (e.g. files made in
# a root shell), to `app`, then becomes `app` with setpriv, which execs the command: it keeps
# PID 1 and gets the stop signal itself. Started as any other user (`docker run --user ...`), it
# changes nothing. APP_USER names the user (default `app`).
set -eu

app_user="${APP_USER:-app}"

hand_over() {  # a data folder: created if missing, then everything in it not the user's
  case "$1" in
    "" | / | /app | /app/* | /bin* | /etc* | /lib* | /proc* | /sbin* | /sys* | /usr*) return ;;
  esac
  mkdir -p "$1"
  find "$1" -xdev ! -user "$uid" -exec chown -h "$uid:$gid" {} +
}

if [ "$(id -u)" = 0 ]; then
  uid="$(id -u "$app_user")"
  gid="$(id -g "$app_user")"
  hand_over "$(dirname "${INDEX_PATH:-/}")"
  hand_over "${CACHE_DIR:-}"
  [ -z "${SEARCH_LOG_PATH:-}" ] || hand_over "$(dirname "$SEARCH_LOG_PATH")"
  exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
fi
exec "$@"
