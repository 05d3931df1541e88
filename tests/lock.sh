# Sourced by tests/cluster/build and tests/krew/build:  build_lock FILE SECONDS
# Serializes concurrent builds (e.g. two test runs on a fresh checkout). Uses flock(1) where it
# exists; elsewhere (macOS has no flock) a lock directory, which mkdir creates atomically, holding
# the owner's pid: it is taken over when that process is gone, and removed when this shell exits.
# Either way the lock is really taken, or the script fails saying why: never silently unlocked.
build_lock() {
  local file=$1 seconds=$2
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$file"
    if ! flock -w "$seconds" 9; then
      echo "$(basename "$0"): another build still holds $file after ${seconds}s" >&2
      exit 1
    fi
    return 0
  fi
  local dir=$file.d owner deadline=$(( $(date +%s) + seconds ))
  until mkdir "$dir" 2>/dev/null; do
    owner=$(cat "$dir/pid" 2>/dev/null || true)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
      # The owner died without cleaning up: take the lock over (one winner: rename is atomic).
      mv "$dir" "$dir.stale.$$" 2>/dev/null && rm -rf "$dir.stale.$$"
      continue
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$(basename "$0"): another build (pid ${owner:-unknown}) still holds $dir after ${seconds}s; remove it if no build runs" >&2
      exit 1
    fi
    sleep 1
  done
  echo $$ >"$dir/pid"
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" EXIT
}
