package files

import (
	"vibebox.dev/sandboxd/internal/fsid"
	"vibebox.dev/sandboxd/internal/users"
)

// Every path operation (open, create, mkdir, rename, unlink, symlink, link, stat, readdir) runs
// in As: on a locked thread whose fsuid, fsgid and supplementary groups are the sandbox user's,
// so the kernel resolves every symlink, checks every permission and owns every new file exactly
// as for the user's own process, with no check of ours to race (package fsid says why).
//
// Data moves outside these sections: a file descriptor opened as the user is read or written by
// any thread (the kernel checks permissions at open), so a transfer holds a locked thread only for
// its few path operations, never while it waits on the network.

// ErrCredentials is a thread whose ids could not be set (nothing was done).
var ErrCredentials = fsid.ErrCredentials

// As runs f with the kernel checking every file operation as u (fsid.As: ErrCredentials when the
// thread could not take u's ids, a panic in f an error). f must do path operations only: no
// network waits, nothing long.
func As(u users.User, f func() error) error {
	return fsid.As(u, f)
}
