"""Small shell programs that run inside sandboxes to supervise commands.

They need only POSIX sh, grep, pkill (procps) and /proc, which every template has.
Each command runs under WRAPPER with VIBEBOX_EXEC_ID=<id> in its environment: the
wrapper's pid is the session id and process group of everything the command starts (docker
exec makes it a session leader), and the marker is inherited by every descendant.

Ending a command (the kill contract, base.RuntimeDriver.kill) must work when the sandbox is at
its pids limit, where nothing new can start: not the `docker exec` of KILLER, not the `pkill` in
it. So the wrapper starts its watchdog BEFORE the command (VIBEBOX_EXEC_TIMEOUT=<seconds>): at
the deadline it kills the wrapper's whole process group with one signal (`kill -KILL 0`, a
builtin), which the kernel delivers to every member, forks in flight included. sandboxd,
when the sandbox has it, ends the rest the same way from a process already running; KILLER
(stop, then kill, by session and by marker) is the fallback for what left the group.
"""

MARKER_ENV = "VIBEBOX_EXEC_ID"
TIMEOUT_ENV = "VIBEBOX_EXEC_TIMEOUT"
HELPER_ID = "vibebox-helper"  # the marker of VibeBox's own helper commands (kill, OOM check)

_OOM_COUNT = "grep -h '^oom_kill ' /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"

# argv: sh -c WRAPPER sh <command argv...>
# Without a TTY the command's stdout and stderr are FIFOs relayed by two `cat`s started before
# it: the command is done once it has exited AND its output is closed (every process that still
# holds it has exited, as `$(…)` or a subprocess pipe would wait), so a background child printing
# on, or a fork bomb, keeps it running until its deadline, where all of it is killed. Waiting on
# the relays is a builtin: the wrapper never needs to start a process after the command has
# (a shell that cannot fork exits, and Docker ends the exec with it). The signals a client sends
# the command's session (INT, TERM...) are for the command: the wrapper catches them (a no-op:
# the command gets the default dispositions back) and the relays and the watchdog ignore them,
# so the output a command prints after a Ctrl-C still arrives; KILL ends them all.
WRAPPER = f"""f=/tmp/.vbx-$VIBEBOX_EXEC_ID
echo $$ > "$f.pid" 2>/dev/null
{_OOM_COUNT} > "$f.oom"
s=
SIGS="INT TERM HUP QUIT USR1 USR2"
trap : $SIGS
t=${{{TIMEOUT_ENV}:-}}
unset {TIMEOUT_ENV}
if [ -n "$t" ]; then
  rm -f "$f.w"
  (trap '' $SIGS; sleep "$t" & echo $! > "$f.w"; wait $! && kill -KILL 0) </dev/null >/dev/null 2>&1 &
  n=0
  while [ ! -s "$f.w" ] && [ "$n" -lt 200000 ]; do n=$((n + 1)); done
  read -r s < "$f.w" 2>/dev/null
fi
if [ ! -t 1 ] && rm -f "$f.o" "$f.e" && mkfifo -m 600 "$f.o" "$f.e" 2>/dev/null; then
  (trap '' $SIGS; exec cat "$f.o") & o=$!
  (trap '' $SIGS; exec cat "$f.e" >&2) & e=$!
  "$@" >"$f.o" 2>"$f.e"
  rc=$?
  for r in "$o" "$e"; do  # a caught signal ends `wait` early: wait again while the relay runs
    while :; do wait "$r"; w=$?; [ "$w" -gt 128 ] && [ "$w" -ne 137 ] && kill -0 "$r" 2>/dev/null || break; done
  done
  rm -f "$f.o" "$f.e"
else
  "$@"
  rc=$?
fi
[ -n "$s" ] && kill -KILL "$s" 2>/dev/null
rm -f "$f.w"
[ "$rc" -eq 137 ] || rm -f "$f.pid" "$f.oom"
exit "$rc"
"""

# argv: sh -c KILLER sh <exec id>; ends the command: builtins first (at the pids limit nothing
# new can start, but this shell may have got a slot a dying process freed): one signal stops,
# then kills, its whole process group, forks in flight included; then, slots free again, its
# session and every process carrying its marker (a process forked meanwhile: the next round).
# dash's kill takes `-SIG -PGID`, not `-s SIG` or `--` before a negative pid.
KILLER = """id=$1
sid=
read -r sid < "/tmp/.vbx-$id.pid" 2>/dev/null
if [ -n "$sid" ]; then kill -STOP -"$sid" 2>/dev/null; kill -KILL -"$sid" 2>/dev/null; fi
for sig in STOP KILL KILL; do
  [ -n "$sid" ] && pkill -"$sig" -s "$sid" 2>/dev/null
  for p in /proc/[0-9]*; do
    grep -qsz "^VIBEBOX_EXEC_ID=$id\\$" "$p/environ" && kill -"$sig" "${p#/proc/}" 2>/dev/null
  done
done
rm -rf "/tmp/.vbx-$id".* /tmp/vbx-"$id".*
exit 0
"""

# argv: sh -c OOM_CHECK sh <exec id>; prints "oom" when the cgroup's OOM kill count grew (not when
# the count taken at the start is gone: a kill removed it, and a killed command is not an OOM).
OOM_CHECK = f"""f=/tmp/.vbx-$1
before=$(cat "$f.oom" 2>/dev/null)
now=$({_OOM_COUNT})
rm -f "$f.pid" "$f.oom"
[ -n "$before" ] && [ -n "$now" ] && [ "$now" != "$before" ] && echo oom
exit 0
"""

# argv: sh -c SIGNAL sh <exec id> <signal name>; signals every process of the command's session.
SIGNAL = """sid=
read -r sid < "/tmp/.vbx-$1.pid" 2>/dev/null
[ -n "$sid" ] && pkill -"$2" -s "$sid"
exit 0
"""

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
rm -rf /tmp/.vbx-* /tmp/vbx-*
exit 0
"""
