package proc

import (
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/threads"
)

// Marker is the environment variable every process of a command inherits: its exec id.
const Marker = "VIBEBOX_EXEC_ID"

// KillWait is how long End may keep stopping processes before it kills what it has.
const KillWait = 4 * time.Second

// Query names the processes of one command (a port of sandbox_agent._members).
type Query struct {
	ExecID string
	// Sessions holds the command's sessions (or process groups): the sessions sandboxd started.
	Sessions []int
	Pipes    map[FileID]bool // the command's output pipes: whoever holds one is the command's
	// Sweep adds every process of SweepUID without any marker that is in none of the Protected
	// sessions (another live command's): what `setsid env -i` left behind.
	Sweep     bool
	SweepUID  int
	Protected map[int]bool
}

// cleanSessions drops what no session of a command can be: PID 1 and sandboxd's own session and
// process group (a safeguard: signalling those would end sandboxd).
func cleanSessions(sessions []int) map[int]bool {
	pgid, _ := syscall.Getpgid(0)
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	clean := map[int]bool{}
	for _, s := range sessions {
		if s > 1 && s != pgid && s != int(sid) {
			clean[s] = true
		}
	}
	return clean
}

// members answers pid -> state of every process of the command: its sessions or process
// groups, its marker, holders of its output pipes, their descendants, and with Sweep the
// unmarked processes of SweepUID outside the protected sessions.
func members(r *Reader, table map[int]Info, q Query, sessions map[int]bool) map[int]byte {
	chosen := map[int]byte{}
	for pid, p := range table {
		if sessions[p.Session] || sessions[p.PGRP] {
			chosen[pid] = p.State
			continue
		}
		marker, readable := r.Marker(pid, p, Marker)
		ours := (readable && marker == q.ExecID) || (len(q.Pipes) > 0 && r.Holds(pid, p, q.Pipes))
		escaped := q.Sweep && readable && marker == "" && p.UID == q.SweepUID && !q.Protected[p.Session]
		if ours || escaped {
			chosen[pid] = p.State
		}
	}
	roots := make([]int, 0, len(chosen))
	for pid := range chosen {
		roots = append(roots, pid)
	}
	children := map[int][]int{}
	for pid, p := range table {
		children[p.PPID] = append(children[p.PPID], pid)
	}
	for len(roots) > 0 {
		pid := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		for _, child := range children[pid] {
			if _, ok := chosen[child]; !ok {
				chosen[child] = table[child].State
				roots = append(roots, child)
			}
		}
	}
	return chosen
}

// scan reads the table and the command's members (a stretch of blocking system calls).
func scan(q Query, sessions map[int]bool) map[int]byte {
	var chosen map[int]byte
	threads.Blocking(func() {
		WithReader(func(r *Reader) {
			chosen = members(r, Table(Self()), q, sessions)
		})
	})
	return chosen
}

// Members answers the processes of a command (pid -> state).
func Members(q Query) map[int]byte {
	return scan(q, cleanSessions(q.Sessions))
}

// End ends every process of a command, however fast it forks; it answers how many it signalled.
//
// A fork bomb at the pids limit outruns any scan-and-kill: a killed process's slot is taken by
// a sibling's fork before the scan ends. Stopped processes cannot fork, so: SIGSTOP each
// session's process group (one signal the kernel delivers to the whole group, which no fork can
// slip out of), then scan /proc and SIGSTOP every member still running, again until a scan finds
// none running (or KillWait passes), then SIGKILL them all. A member in uninterruptible sleep
// that a previous round sent SIGSTOP counts as stopped: it stops as soon as it wakes, and cannot
// fork before. Nothing here starts a process, and
// the threads it needs are in the reserve, so it works when nothing new can start.
func End(q Query) int {
	sessions := cleanSessions(q.Sessions)
	deadline := time.Now().Add(KillWait)
	seen := map[int]bool{}
	for {
		for s := range sessions {
			syscall.Kill(-s, syscall.SIGSTOP)
		}
		chosen := scan(q, sessions)
		running := 0
		for pid, state := range chosen {
			signalled := seen[pid]
			seen[pid] = true
			if !Stopped(state) {
				syscall.Kill(pid, syscall.SIGSTOP)
				// A process in uninterruptible sleep stops when it wakes (a vfork parent waits
				// so for its child's exec, and a stopped child keeps it there): once its SIGSTOP
				// is pending it cannot fork (the kernel restarts a fork that a signal
				// interrupts), so it does not hold the kill up.
				if state != 'D' || !signalled {
					running++
				}
			}
		}
		if running == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // what still runs is leaving the kernel; stopped ones cannot fork meanwhile
	}
	for s := range sessions {
		syscall.Kill(-s, syscall.SIGKILL)
	}
	for pid := range seen {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(seen)
}
