package watch

import (
	"vibebox.dev/sandboxd/internal/fsid"
	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// asUser runs f, a stretch of directory opens, listings and inotify_add_watch calls, with the
// filesystem identity of u (fsid.As: a locked thread whose fsuid, fsgid and supplementary groups
// are u's). The kernel then checks each open as it would for u, ancestors' search permission and
// ACLs included, and root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH are off while the fsuid is
// not 0.
//
// u nil: f runs as sandboxd is. ErrCredentials when the thread could not take u's identity (f did
// not run); a panic in f is an error too (its thread ends).
func asUser(u *users.User, f func()) error {
	if u == nil {
		threads.Blocking(f)
		return nil
	}
	return fsid.As(*u, func() error { f(); return nil })
}

// ErrCredentials is a thread that could not take the user's identity (nothing was done).
var ErrCredentials = fsid.ErrCredentials
