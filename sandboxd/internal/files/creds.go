package files

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// Why the file system ids of one locked thread (and not ownership checks of our own):
//
// sandboxd is root (with CHOWN, DAC_OVERRIDE and FOWNER) and the paths it is given come from the
// sandbox, whose code can swap any component for a symlink at any moment. Checking permissions or
// ownership in sandboxd and then acting as root is a race the sandbox can win (check, then a
// symlink to /opt/vibebox or /run/vibebox appears, then root writes through it). Instead every
// path operation (open, create, mkdir, rename, unlink, symlink, link, stat, readdir) runs with the
// kernel checking it as the sandbox user: Linux's fsuid, fsgid and supplementary groups are per
// thread when set with the raw system calls (glibc's and Go's syscall.Setgroups broadcast to every
// thread; SYS_SETFSUID, SYS_SETFSGID and a raw SYS_SETGROUPS do not), and a non-zero fsuid clears
// the file capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER...) from that thread's effective
// set, giving them back when it returns to 0. So the kernel resolves every symlink, checks every
// permission and owns every new file exactly as for the user's own process: there is no check to
// race. The work runs in a goroutine of its own, locked to its thread; threads the runtime starts
// meanwhile come from its template thread (LockOSThread makes the runtime do that), never from this
// one. If the ids cannot be put back (they always can: sandboxd keeps CAP_SETUID and CAP_SETGID),
// the goroutine ends still locked, and the runtime ends the thread with it.
//
// Data moves outside these sections: a file descriptor opened as the user is read or written by
// any thread (the kernel checks permissions at open), so a transfer holds a locked thread only for
// its few path operations, never while it waits on the network.

// rootGroups answers sandboxd's own supplementary groups (what a thread gets back after As),
// read on the first use.
func rootGroups() []uint32 {
	rootGroupsOnce.Do(func() {
		ids, _ := syscall.Getgroups()
		for _, g := range ids {
			savedGroups = append(savedGroups, uint32(g))
		}
	})
	return savedGroups
}

var (
	rootGroupsOnce sync.Once
	savedGroups    []uint32
)

func setfsuid(id int) int {
	old, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(id), 0, 0)
	return int(old)
}

func setfsgid(id int) int {
	old, _, _ := syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(id), 0, 0)
	return int(old)
}

// setgroups sets this thread's supplementary groups only (a raw system call).
func setgroups(groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// become sets this thread's file system ids to u's; false when it could not.
func become(uid, gid int, groups []uint32) bool {
	if setgroups(groups) != nil {
		return false
	}
	setfsgid(gid)
	setfsuid(uid)
	// setfsuid answers the previous id and never fails loudly: a second call reads the current one.
	return setfsuid(uid) == uid && setfsgid(gid) == gid
}

var errPanic = errors.New("file operation failed")

// ErrCredentials is a thread whose ids could not be set (nothing was done).
var ErrCredentials = errors.New("cannot act as the sandbox user")

// As runs f with the kernel checking every file operation as u (see above). f must do path
// operations only: no network waits, nothing long.
func As(u users.User, f func() error) error {
	groups := make([]uint32, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = uint32(g)
	}
	if len(groups) == 0 {
		groups = []uint32{uint32(u.GID)}
	}
	var err error
	done := make(chan struct{})
	threads.Blocking(func() {
		go func() {
			defer close(done)
			runtime.LockOSThread()
			// A panic here would end sandboxd, PID 1, and the sandbox with it (nothing above
			// recovers a goroutine of its own): it is an error instead, and the thread ends with
			// this goroutine (still locked: its ids may be the user's).
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("%w: %v", errPanic, p)
				}
			}()
			if !become(u.UID, u.GID, groups) {
				err = ErrCredentials
				if become(0, 0, rootGroups()) {
					runtime.UnlockOSThread()
				}
				return
			}
			err = f()
			if become(0, 0, rootGroups()) {
				runtime.UnlockOSThread()
			} // else: the thread ends with this goroutine, its ids never reach other work
		}()
		<-done
	})
	return err
}
