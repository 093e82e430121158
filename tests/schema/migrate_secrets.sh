#!/usr/bin/env bash
# migrate_secrets.sh MIGRATE SCHEMA_DIR -- apphost-migrate never puts the
# DSN on a command line (ps(1) shows argv to every user): it refuses one
# given there without echoing it, reads it from its environment, hands it
# to psql (a wrapper first on PATH records any run), and
# prints no password, also for a DSN libpq refuses. Needs
# APPHOST_POSTGRES_DSN (a server that does not check passwords, as
# scripts/services starts); without it the test is skipped (exit 77), or
# fails when CI is set.
set -euo pipefail
migrate="$1"
export APPHOST_SCHEMA_DIR="$2"
if [ -z "${APPHOST_POSTGRES_DSN:-}" ]; then
  [ -z "${CI:-}" ] || { echo "APPHOST_POSTGRES_DSN not set under CI" >&2; exit 1; }
  echo "skip: APPHOST_POSTGRES_DSN not set" >&2
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# psql, which a migrate in shell would run: apphost-migrate must not.
cat >"$tmp/psql" <<WRAP
#!/bin/sh
printf '%s\n' "\$0" "\$@" >>"$tmp/argv"
exit 1
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

# On the command line: refused as a usage error, and not echoed.
rc=0
out="$(APPHOST_POSTGRES_DSN= "$migrate" "$dsn" 2>&1)" || rc=$?
[ $rc -eq 2 ] || fail "a DSN argument was not a usage error (exit $rc): $out"
case "$out" in *"$secret"*) fail "the DSN argument was echoed: $out" ;; esac

# As an option that does not exist (--dsn=..., a short one glued to its
# value): the same usage error, naming the option without its value.
for arg in "--dsn=$dsn" "-d$dsn"; do
  rc=0
  out="$(APPHOST_POSTGRES_DSN= "$migrate" "$arg" 2>&1)" || rc=$?
  [ $rc -eq 2 ] || fail "${arg%%=*}: not a usage error (exit $rc): $out"
  case "$out" in *"$secret"*) fail "an unknown option's value was echoed: $out" ;; esac
  case "$out" in *"unknown option '${arg:0:2}"*) ;; *) fail "the option is not named: $out" ;; esac
done

# From the environment: it works, through libpq alone.
out="$(PATH="$tmp:$PATH" APPHOST_POSTGRES_DSN="$dsn" "$migrate" 2>&1)" ||
  fail "apphost-migrate failed: $out"
[ ! -s "$tmp/argv" ] || fail "apphost-migrate ran another program: $(cat "$tmp/argv")"
case "$out" in *"$secret"*) fail "the password was printed: $out" ;; esac

# A DSN libpq refuses: an error that shows nothing of it.
if out="$(PATH="$tmp:$PATH" APPHOST_POSTGRES_DSN="host=x password=$secret junk" \
  "$migrate" 2>&1)"; then
  fail "a malformed DSN was accepted: $out"
fi
case "$out" in *"$secret"* | *junk*) fail "the DSN was printed: $out" ;; esac
case "$out" in *"value withheld"*) ;; *) fail "no reason given: $out" ;; esac
[ ! -s "$tmp/argv" ] || fail "apphost-migrate ran another program: $(cat "$tmp/argv")"
echo "ok: the DSN reached apphost-migrate through its environment only"
