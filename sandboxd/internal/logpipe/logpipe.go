// Package logpipe gives sandbox code a way into the container's log.
//
// The container's log is what PID 1 writes to its stdout and stderr. Under Docker's init, sandbox
// code wrote there through /proc/1/fd/1; sandboxd runs as root, so the sandbox user may not open
// its /proc entries. sandboxd makes two FIFOs instead (<dir>/stdout and <dir>/stderr, writable
// by everyone, in a root-owned directory the sandbox user cannot change) and copies what arrives
// to its own stdout and stderr.
package logpipe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Start makes the FIFOs in dir (replacing whatever is there) and copies each to its writer until
// the process ends. Each FIFO is held open for writing by sandboxd too, so its reader never sees
// an end of file when the last writer in the sandbox closes.
func Start(dir string, stdout, stderr io.Writer) error {
	for _, pipe := range []struct {
		name string
		to   io.Writer
	}{{"stdout", stdout}, {"stderr", stderr}} {
		path := filepath.Join(dir, pipe.name)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		// Write-only for others (the umask would not allow it at creation): the sandbox may log,
		// never read what other processes logged.
		if err := os.Chmod(path, 0o622); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		// O_RDWR: the open does not wait for a writer, and sandboxd is a writer itself. A FIFO opened
		// non-blocking is pollable: the copy parks in the runtime's poller, not on a thread.
		f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		go func(from *os.File, to io.Writer) {
			buf := make([]byte, 32<<10)
			for {
				n, err := from.Read(buf)
				if n > 0 {
					_, _ = to.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}(f, pipe.to)
	}
	return nil
}
