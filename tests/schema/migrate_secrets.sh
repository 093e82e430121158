#!/usr/bin/env bash
# migrate_secrets.sh SOURCE_ROOT -- scripts/migrate never puts the DSN on
# psql's command line (ps(1) shows argv to every user): a psql wrapper
# first on PATH records each argv and what reached it through the
# environment, then runs the real psql. Needs APPHOST_POSTGRES_DSN (a
# server that does not check passwords, as scripts/services starts);
# without it the test is skipped (exit 77), or fails when CI is set.
set -euo pipefail
root="$1"
if [ -z "${APPHOST_POSTGRES_DSN:-}" ]; then
  [ -z "${CI:-}" ] || { echo "APPHOST_POSTGRES_DSN not set under CI" >&2; exit 1; }
  echo "skip: APPHOST_POSTGRES_DSN not set" >&2
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
real="$(command -v psql)"
cat >"$tmp/psql" <<WRAP
#!/bin/sh
printf '%s\n' "\$0" "\$@" >>"$tmp/argv"
printf 'PGPASSWORD=%s\n' "\${PGPASSWORD:-}" >>"$tmp/env"
exec "$real" "\$@"
WRAP
chmod +x "$tmp/psql"

secret='Sup3r-S3cret_pw'
case "$APPHOST_POSTGRES_DSN" in
  postgres://* | postgresql://*)
    case "$APPHOST_POSTGRES_DSN" in *\?*) sep='&' ;; *) sep='?' ;; esac
    dsn="$APPHOST_POSTGRES_DSN${sep}password=$secret" ;;
  *) dsn="$APPHOST_POSTGRES_DSN password='$secret'" ;;
esac

fail() { echo "FAIL: $*" >&2; exit 1; }

out="$(PATH="$tmp:$PATH" APPHOST_POSTGRES_DSN="$dsn" "$root/scripts/migrate" 2>&1)" ||
  fail "scripts/migrate failed: $out"
[ -s "$tmp/argv" ] || fail "psql was not run through the wrapper"
if grep -qF -- "$secret" "$tmp/argv"; then
  fail "the password is on psql's command line: $(cat "$tmp/argv")"
fi
grep -qxF -- "PGPASSWORD=$secret" "$tmp/env" ||
  fail "the password did not reach psql: $(cat "$tmp/env")"
case "$out" in *"$secret"*) fail "the password was printed: $out" ;; esac

# A DSN libpq refuses: an error that shows nothing of it, psql never run.
: >"$tmp/argv"
if out="$(PATH="$tmp:$PATH" APPHOST_POSTGRES_DSN="host=x password=$secret junk" \
  "$root/scripts/migrate" 2>&1)"; then
  fail "a malformed DSN was accepted: $out"
fi
case "$out" in *"$secret"* | *junk*) fail "the DSN was printed: $out" ;; esac
case "$out" in *"not a valid libpq conninfo"*) ;; *) fail "no reason given: $out" ;; esac
[ ! -s "$tmp/argv" ] || fail "psql ran with a malformed DSN"
echo "ok: the DSN reached psql through its environment only"
