// Package fsid runs work with another file system identity (fsuid, fsgid, supplementary groups)
// on one locked OS thread, and never hands a thread whose identity it could not put back to the
// Go scheduler.
//
// Why the file system ids of one locked thread (and not ownership checks of our own):
//
// sandboxd is root (with CHOWN, DAC_OVERRIDE and FOWNER) and the paths it is given come from the
// sandbox, whose code can swap any component for a symlink at any moment. Checking permissions or
// ownership in sandboxd and then acting as root is a race the sandbox can win (check, then a
// symlink to /opt/vibebox or /run/vibebox appears, then root writes through it). Instead every
// path operation runs with the kernel checking it as the sandbox user: Linux's fsuid, fsgid and
// supplementary groups are per thread when set with the raw system calls (glibc's and Go's
// syscall.Setgroups broadcast to every thread; SYS_SETFSUID, SYS_SETFSGID and a raw
// SYS_SETGROUPS do not), and a non-zero fsuid clears the file capabilities (CAP_CHOWN,
// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER...) from that thread's effective set, giving
// them back when it returns to 0. So the kernel resolves every symlink, checks every permission
// (ancestors' search permission and ACLs included) and owns every new file exactly as for the
// user's own process: there is no check to race.
//
// The work runs in a goroutine of its own, locked to its thread (Locked); threads the runtime
// starts meanwhile come from its template thread (LockOSThread makes the runtime do that), never
// from this one. The thread's ids are read before the work and put back after it, checked by
// reading them again; a thread whose ids cannot be put back (it always can: sandboxd keeps
// CAP_SETUID and CAP_SETGID) is never reused: its goroutine ends still locked, and the runtime
// ends the thread with it (or, the process's main thread, parks it for good).
//
// Used by files (every path operation of the file service), watch (the opens, listings and
// inotify_add_watch calls of a watch) and proc (the /proc reader, which takes each process
// owner's fsuid and fsgid in turn: Locked, Set).
package fsid

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"unsafe"

	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// ErrCredentials is a thread that could not take the user's ids (the work did not run).
var ErrCredentials = errors.New("cannot act as the user")

// errPanic is the work panicking (As answers it, with the panic's value, instead of ending
// sandboxd).
var errPanic = errors.New("file operation failed")

// As runs f with the kernel checking every file operation as u: on a locked thread whose fsuid,
// fsgid and supplementary groups are u's (u.Groups, or u.GID alone when it has none), inside
// threads.Blocking. f must do path operations only: no network waits, nothing long.
//
// ErrCredentials when the thread could not take u's ids: f did not run (never as someone other
// than u; sandboxd not running as root can take no ids but its own). A panic in f is an error,
// and its thread ends (a panic here would otherwise end sandboxd, PID 1, and the sandbox with
// it). Otherwise f's own error.
func As(u users.User, f func() error) error {
	want := ids{uid: u.UID, gid: u.GID, groups: make([]uint32, len(u.Groups))}
	for i, g := range u.Groups {
		want.groups[i] = uint32(g)
	}
	if len(want.groups) == 0 {
		want.groups = []uint32{uint32(u.GID)}
	}
	slices.Sort(want.groups) // as the kernel keeps them
	var err error
	threads.Blocking(func() {
		Locked(func() (reuse bool) {
			defer func() {
				if p := recover(); p != nil {
					err, reuse = fmt.Errorf("%w: %v", errPanic, p), false
				}
			}()
			if !take(want) {
				err = ErrCredentials
				return true // Locked puts the ids back (or ends the thread)
			}
			err = f()
			return true
		})
	})
	return err
}

// Locked runs f on a goroutine of its own, locked to its OS thread, and waits for it. f may
// change the thread's file system ids (Set, or As's switch). They are read before f and put back
// after it; the thread goes back to the runtime only when f answers true and the ids are back
// (read again), otherwise the goroutine ends still locked and the runtime ends the thread. A
// panic in f is not recovered here.
func Locked(f func() (reuse bool)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		saved, ok := current() // not ok: a thread that cannot say who it was is not reused
		if f() && ok && take(saved) {
			runtime.UnlockOSThread()
		} // else: the thread ends with this goroutine, its ids never reach other work
	}()
	<-done
}

// Get answers the calling thread's fsuid and fsgid.
func Get() (uid, gid int) {
	return fsid(syscall.SYS_SETFSUID), fsid(syscall.SYS_SETFSGID)
}

// Set sets the calling thread's fsgid, then its fsuid (only on a thread of Locked's), and answers
// whether both are now so.
func Set(uid, gid int) bool {
	syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(gid), 0, 0)
	syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0)
	nowUID, nowGID := Get()
	return nowUID == uid && nowGID == gid
}

// ids is a thread's file system identity; groups sorted.
type ids struct {
	uid, gid int
	groups   []uint32
}

// current answers the calling thread's ids; false when its groups cannot be read.
func current() (ids, bool) {
	groups, ok := getgroups()
	uid, gid := Get()
	return ids{uid, gid, groups}, ok
}

// take makes the calling thread's ids want's, changing only what differs (the groups first: the
// raw setgroups needs CAP_SETGID, which no fsuid clears), and answers whether they now are (read
// back: setfsuid and setfsgid never fail loudly).
func take(want ids) bool {
	now, ok := current()
	if !ok {
		return false
	}
	if !slices.Equal(now.groups, want.groups) && !setgroups(want.groups) {
		return false
	}
	if now.gid != want.gid || now.uid != want.uid {
		Set(want.uid, want.gid)
	}
	now, ok = current()
	return ok && now.uid == want.uid && now.gid == want.gid && slices.Equal(now.groups, want.groups)
}

// fsid answers the thread's fsuid or fsgid (setfsuid and setfsgid answer the previous id; -1
// changes nothing, so it reads the current one).
func fsid(call uintptr) int {
	now, _, _ := syscall.RawSyscall(call, uintptr(^uint32(0)), 0, 0)
	return int(uint32(now))
}

// getgroups answers the calling thread's supplementary groups, sorted.
func getgroups() ([]uint32, bool) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_GETGROUPS, 0, 0, 0)
	if errno != 0 {
		return nil, false
	}
	groups := make([]uint32, n)
	if n > 0 {
		got, _, errno := syscall.RawSyscall(syscall.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&groups[0])), 0)
		if errno != 0 || got != n {
			return nil, false
		}
	}
	slices.Sort(groups) // the kernel's order is its own ids' (another user namespace's may differ)
	return groups, true
}

// setgroups sets the calling thread's supplementary groups (the raw system call: this thread
// only).
func setgroups(groups []uint32) bool {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0)
	return errno == 0
}
