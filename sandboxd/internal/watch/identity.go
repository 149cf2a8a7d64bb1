package watch

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// asUser runs f, a stretch of directory opens, listings and inotify_add_watch calls, with the
// filesystem identity of u: on a locked thread whose fsuid, fsgid and supplementary groups are
// u's (all three are per thread at the system call level; Go's syscall.Setgroups would change
// every thread). The kernel then checks each open as it would for u, ancestors' search permission
// and ACLs included, and root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH are off while the
// fsuid is not 0. The thread gets root's identity back before it returns to the runtime; one
// that cannot is never reused (its goroutine exits locked, and the runtime ends the thread).
//
// sandboxd not running as root (the end-to-end tests), or u nil: f runs as sandboxd is.
// ErrCredentials when the thread could not take u's identity (f did not run).
func asUser(u *users.User, f func()) error {
	var err error
	threads.Blocking(func() {
		if u == nil || os.Geteuid() != 0 {
			f()
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			uid, gid := fsid(syscall.SYS_SETFSUID), fsid(syscall.SYS_SETFSGID)
			groups, ok := getgroups()
			if ok && setgroups(u.Groups) && setfsid(syscall.SYS_SETFSGID, u.GID) && setfsid(syscall.SYS_SETFSUID, u.UID) {
				f()
			} else {
				err = ErrCredentials // f does not run: never as someone else than asked
			}
			if setfsid(syscall.SYS_SETFSUID, uid) && setfsid(syscall.SYS_SETFSGID, gid) && ok && setgroups(groups) {
				runtime.UnlockOSThread()
			}
		}()
		<-done
	})
	return err
}

// fsid answers the thread's fsuid or fsgid.
func fsid(call uintptr) int {
	now, _, _ := syscall.RawSyscall(call, uintptr(^uint32(0)), 0, 0)
	return int(uint32(now))
}

// ErrCredentials is a thread that could not take the user's identity (nothing was done).
var ErrCredentials = errors.New("cannot act as the user")

// setfsid sets the thread's fsuid or fsgid and checks that it took (the call answers the old id,
// never an error: -1 reads the current one).
func setfsid(call uintptr, id int) bool {
	syscall.RawSyscall(call, uintptr(id), 0, 0)
	return fsid(call) == id
}

// getgroups answers the thread's supplementary groups.
func getgroups() ([]uint32, bool) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_GETGROUPS, 0, 0, 0)
	if errno != 0 {
		return nil, false
	}
	groups := make([]uint32, n)
	if n == 0 {
		return groups, true
	}
	got, _, errno := syscall.RawSyscall(syscall.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&groups[0])), 0)
	if errno != 0 || got != n {
		return nil, false
	}
	return groups, true
}

// setgroups sets the calling thread's supplementary groups (the raw system call: this thread only).
func setgroups[T int | uint32](ids []T) bool {
	groups := make([]uint32, len(ids))
	for i, id := range ids {
		groups[i] = uint32(id)
	}
	var p uintptr
	if len(groups) > 0 {
		p = uintptr(unsafe.Pointer(&groups[0]))
	}
	_, _, errno := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(groups)), p, 0)
	return errno == 0
}
