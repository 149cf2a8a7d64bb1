"""Small shell programs that run inside sandboxes to supervise commands.

They need only POSIX sh, grep, pkill (procps) and /proc, which every template has.
Each command runs under WRAPPER with VIBEBOX_EXEC_ID=<id> in its environment: the
wrapper's pid is the session id of everything the command starts (docker exec makes it a
session leader), and the marker is inherited by every descendant. At a timeout, KILLER
kills by session and by marker, so daemonised children (setsid, nohup, &) die too.
"""

MARKER_ENV = "VIBEBOX_EXEC_ID"

_OOM_COUNT = "grep -h '^oom_kill ' /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"

# argv: sh -c WRAPPER sh <command argv...>
WRAPPER = f"""f=/tmp/.vbx-$VIBEBOX_EXEC_ID
echo $$ > "$f.pid" 2>/dev/null
{_OOM_COUNT} > "$f.oom"
"$@"
rc=$?
[ "$rc" -eq 137 ] || rm -f "$f.pid" "$f.oom"
exit "$rc"
"""

# argv: sh -c KILLER sh <exec id>
KILLER = """id=$1
sid=$(cat "/tmp/.vbx-$id.pid" 2>/dev/null)
for round in 1 2 3; do
  [ -n "$sid" ] && pkill -9 -s "$sid" 2>/dev/null
  for p in /proc/[0-9]*; do
    grep -qsz "^VIBEBOX_EXEC_ID=$id\\$" "$p/environ" && kill -9 "${p#/proc/}" 2>/dev/null
  done
done
rm -rf "/tmp/.vbx-$id.pid" "/tmp/.vbx-$id.oom" /tmp/vbx-"$id".*
exit 0
"""

# argv: sh -c OOM_CHECK sh <exec id>; prints "oom" when the cgroup's OOM kill count grew.
OOM_CHECK = f"""f=/tmp/.vbx-$1
before=$(cat "$f.oom" 2>/dev/null)
now=$({_OOM_COUNT})
rm -f "$f.pid" "$f.oom"
[ -n "$now" ] && [ "$now" != "$before" ] && echo oom
exit 0
"""

# argv: sh -c SIGNAL sh <exec id> <signal name>; signals every process of the command's session.
SIGNAL = """sid=$(cat "/tmp/.vbx-$1.pid" 2>/dev/null)
[ -n "$sid" ] && pkill -"$2" -s "$sid"
exit 0
"""

# argv: sh -c STRAYS sh; kills every process started by VibeBox (any command or terminal) that
# this user may kill. Run at start-up, when no command of a previous server can still be followed.
REAPER_ID = "reaper"
STRAYS = """for p in /proc/[0-9]*; do
  grep -qsz "^VIBEBOX_EXEC_ID=" "$p/environ" && ! grep -qsz "^VIBEBOX_EXEC_ID=reaper$" "$p/environ" \\
    && kill -9 "${p#/proc/}" 2>/dev/null
done
rm -rf /tmp/.vbx-* /tmp/vbx-*
exit 0
"""
