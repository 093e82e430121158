# scripts/lib.sh -- shell helpers shared by scripts/*. Source it, don't run it.
#
# Sets APPHOST_ROOT (the repository root, from this file's location, so every
# script works from any current directory) and defines small helpers.
# shellcheck shell=bash

APPHOST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

# Where scripts/services keeps its servers; scripts/test uses a private one.
: "${APPHOST_RUN_DIR:=$APPHOST_ROOT/.run}"

# Messages go to stderr so `eval "$(scripts/services env)"` sees only exports.
say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { say "error: $*"; exit 1; }
# A section header, easy to find in a CI log.
section() { printf '\n==> %s\n' "$*" >&2; }

# apphost_build DIR [meson setup options...]: configure DIR (reconfigure when it
# exists, wipe it when it was set up by another meson version, start over when
# it is not a meson build dir) and compile it. A failing reconfigure (an error
# in a meson.build) is reported, not wiped. Serialized with a lock so two
# scripts in the same tree don't run meson/ninja in the same dir at once.
apphost_build() {
  local dir="$1"
  shift
  case "$dir" in /*) ;; *) dir="$APPHOST_ROOT/$dir" ;; esac
  mkdir -p "$APPHOST_ROOT/.run"
  (
    flock -w 600 8 || die "timed out waiting for the build lock"
    cd "$APPHOST_ROOT"
    if [ -f "$dir/meson-private/coredata.dat" ]; then
      local was now
      was="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["meson_version"]["full"])' \
        "$dir/meson-info/meson-info.json" 2>/dev/null || echo unknown)"
      now="$(meson --version)"
      if [ "$was" != "$now" ]; then
        say "$dir was set up by meson $was, this is $now; wiping it"
        meson setup --wipe "$dir" "$@" || return 1
      else
        local out
        out="$(meson setup --reconfigure "$dir" "$@" 2>&1)" ||
          { printf '%s\n' "$out" >&2; return 1; }
      fi
    else
      if [ -e "$dir" ]; then
        say "$dir is not a meson build dir; removing it"
        rm -rf "$dir"
      fi
      meson setup "$dir" "$@" || return 1
    fi
    meson compile -C "$dir"
  ) 8>"$APPHOST_ROOT/.run/build.lock"
}

# apphost_migrate BUILD_DIR [apphost-migrate args...]: the schema/ of this
# tree applied by the apphost-migrate that BUILD_DIR built (the program that
# is installed; it reads APPHOST_POSTGRES_DSN from the environment, never
# from the command line).
apphost_migrate() {
  local dir="$1"
  shift
  [ -x "$dir/host/apphost-migrate" ] ||
    { say "error: $dir/host/apphost-migrate not built"; return 1; }
  APPHOST_SCHEMA_DIR="$APPHOST_ROOT/schema" "$dir/host/apphost-migrate" "$@"
}
