"""A small shell program VibeBox runs in sandboxes (through sandboxd) for its own upkeep.

It needs only POSIX sh, grep and /proc, which every template has. Every command VibeBox runs
carries VIBEBOX_EXEC_ID=<id> in its environment (sandboxd sets it; a terminal's shell gets it
too), which is how its processes are found again.
"""

MARKER_ENV = "VIBEBOX_EXEC_ID"

# argv: sh -c STRAYS sh [<exec id to keep>...]; kills every process started by VibeBox (any
# command or terminal) that this user may kill, but those of the exec ids given (sandboxd's
# background processes, which any server can still follow). Run at start-up, when no command of a
# previous server can still be followed. Exec ids are [A-Za-z0-9_] (ids.random_id).
REAPER_ID = "reaper"
STRAYS = """for p in /proc/[0-9]*; do
  grep -qsz "^VIBEBOX_EXEC_ID=" "$p/environ" || continue
  keep=
  for id in reaper "$@"; do grep -qsz "^VIBEBOX_EXEC_ID=$id$" "$p/environ" && keep=1 && break; done
  [ -z "$keep" ] && kill -9 "${p#/proc/}" 2>/dev/null
done
exit 0
"""
