// Package proc reads the sandbox's processes from /proc.
//
// Everything a process controls is data, never trusted: its name (comm may hold spaces and
// parentheses), its environment (it may drop or fake the marker). What it cannot forge comes
// from the kernel: its state, parent, process group, session and owner.
package proc

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"vibebox.dev/sandboxd/internal/fsid"
)

// Info is what the kernel says of one process.
type Info struct {
	State   byte // R, S, D, T (stopped), t (traced), Z (zombie), X/x (dead)...
	PPID    int
	PGRP    int
	Session int
	UID     int // effective uid and gid: the owner of /proc/<pid>
	GID     int
}

// Stopped answers whether a process in this state can no longer fork.
func Stopped(state byte) bool {
	switch state {
	case 'T', 't', 'Z', 'X', 'x':
		return true
	}
	return false
}

// Self answers the pids nothing in sandboxd may signal: PID 1, sandboxd and its parent.
func Self() map[int]bool {
	return map[int]bool{1: true, os.Getpid(): true, os.Getppid(): true}
}

// Pids lists the processes in /proc.
func Pids() []int {
	dir, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer dir.Close()
	var pids []int
	for {
		names, err := dir.Readdirnames(1024)
		for _, name := range names {
			if pid, err := strconv.Atoi(name); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		if err != nil {
			return pids
		}
	}
}

// Stat reads one process; false once it is gone (or its stat cannot be read).
func Stat(pid int) (Info, bool) {
	var buf [1024]byte
	dir := "/proc/" + strconv.Itoa(pid)
	n, err := readFile(dir+"/stat", buf[:])
	if err != nil {
		return Info{}, false
	}
	var owner syscall.Stat_t
	if syscall.Stat(dir, &owner) != nil {
		return Info{}, false
	}
	// "pid (comm) state ppid pgrp session ...": comm is the process's to choose, so the fields
	// start after the last ')'.
	data := buf[:n]
	end := bytes.LastIndexByte(data, ')')
	if end < 0 || end+2 > len(data) {
		return Info{}, false
	}
	f := bytes.Fields(data[end+2:])
	if len(f) < 4 || len(f[0]) == 0 {
		return Info{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	session, err3 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil || err3 != nil {
		return Info{}, false
	}
	return Info{State: f[0][0], PPID: ppid, PGRP: pgrp, Session: session, UID: int(owner.Uid), GID: int(owner.Gid)}, true
}

// Table reads every process but the excluded ones.
func Table(exclude map[int]bool) map[int]Info {
	table := map[int]Info{}
	for _, pid := range Pids() {
		if exclude[pid] {
			continue
		}
		if info, ok := Stat(pid); ok {
			table[pid] = info
		}
	}
	return table
}

// Descendants answers every process below pid in the table (children, theirs, ...).
func Descendants(table map[int]Info, pid int) []int {
	children := map[int][]int{}
	for p, info := range table {
		children[info.PPID] = append(children[info.PPID], p)
	}
	var found []int
	stack := []int{pid}
	seen := map[int]bool{pid: true}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range children[p] {
			if !seen[c] {
				seen[c] = true
				found = append(found, c)
				stack = append(stack, c)
			}
		}
	}
	return found
}

// readFile reads at most len(buf) bytes of a file, with no poller and no allocation.
func readFile(path string, buf []byte) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	total := 0
	for total < len(buf) {
		n, err := syscall.Read(fd, buf[total:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

// FileID names an open file (a pipe) the way /proc/<pid>/fd shows it.
type FileID struct{ Dev, Ino uint64 }

// Identify answers the FileID of an open file descriptor.
func Identify(fd uintptr) (FileID, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil {
		return FileID{}, err
	}
	return FileID{uint64(st.Dev), st.Ino}, nil
}

// A Reader reads what /proc shows only to a process's owner: its environment and its open files.
// sandboxd runs as root without CAP_SYS_PTRACE (Docker drops it), and for such a reader the
// kernel grants /proc/<pid>/environ and fd/ only when the reader's filesystem uid and gid are the
// process's (the ptrace access check, PTRACE_MODE_READ_FSCREDS). So a Reader runs on a thread of
// its own and takes each process owner's fsuid and fsgid before reading (setfsuid: one thread
// only; sandboxd's other threads keep root).
type Reader struct {
	switching bool // root: take each owner's identity; otherwise only our own processes are readable
	uid, gid  int  // the thread's filesystem identity now
	buf       []byte
}

// MaxEnviron is how much of a process's environment is searched for the marker; a process
// that pushes its marker beyond it could as well have dropped it.
const MaxEnviron = 1 << 20

// WithReader runs f with a Reader on a locked thread and gives the thread back to the runtime
// with its identity restored (fsid.Locked). A thread whose identity cannot be restored is never
// reused: its goroutine exits still locked, and the runtime ends the thread.
func WithReader(f func(r *Reader)) {
	fsid.Locked(func() bool {
		r := &Reader{switching: os.Geteuid() == 0}
		r.uid, r.gid = fsid.Get()
		f(r)
		return true
	})
}

func (r *Reader) become(uid, gid int) bool {
	if !r.switching || (uid == r.uid && gid == r.gid) {
		return true
	}
	ok := fsid.Set(uid, gid)
	r.uid, r.gid = fsid.Get()
	return ok
}

// Marker answers the value of `name` in the process's environment ("" when it has none), and
// false when the environment cannot be read (gone, or not readable).
func (r *Reader) Marker(pid int, info Info, name string) (string, bool) {
	if !r.become(info.UID, info.GID) {
		return "", false
	}
	if r.buf == nil {
		r.buf = make([]byte, MaxEnviron)
	}
	n, err := readFile("/proc/"+strconv.Itoa(pid)+"/environ", r.buf)
	if err != nil {
		return "", false
	}
	prefix := []byte(name + "=")
	for item := range bytes.SplitSeq(r.buf[:n], []byte{0}) {
		if value, ok := bytes.CutPrefix(item, prefix); ok {
			return string(value), true
		}
	}
	return "", true
}

// Holds answers whether the process has one of the files open.
func (r *Reader) Holds(pid int, info Info, files map[FileID]bool) bool {
	if len(files) == 0 || !r.become(info.UID, info.GID) {
		return false
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	fds, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer fds.Close()
	for {
		names, err := fds.Readdirnames(256)
		for _, name := range names {
			var st syscall.Stat_t
			if syscall.Stat(dir+name, &st) == nil && files[FileID{uint64(st.Dev), st.Ino}] {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}
