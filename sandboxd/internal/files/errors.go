// Package files is sandboxd's file service: stat, list, mkdir, move, delete, a file written
// (atomically) or read, a tar extracted into a directory or made of a path. Everything runs as the
// sandbox user (As: the kernel checks each path operation as that user, on one locked thread), and
// every path is the sandbox's, so hostile: symlinks are resolved by the kernel as the user, and a
// tar's entries are confined to their target directory (no "..", no absolute names, no entry
// through a symlink, no hard link out of it). Every size is capped.
package files

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Codes of a failure, which the server maps to HTTP statuses.
const (
	NotFound   = "not_found"   // 404
	Denied     = "denied"      // 403: the sandbox user may not
	Conflict   = "conflict"    // 409: exists, is (not) a directory, not empty...
	DiskFull   = "disk_full"   // 507: ENOSPC or EDQUOT
	Invalid    = "invalid"     // 400: a bad path or request
	BadArchive = "bad_archive" // 400: an unsafe or malformed tar
	TooLarge   = "too_large"   // 413: over a cap
)

// Error is a failure with a code; Path is the path it is about.
type Error struct {
	Code    string
	Message string
	Path    string
}

func (e *Error) Error() string { return e.Message }

func fail(code, path, format string, args ...any) *Error {
	return &Error{Code: code, Path: path, Message: fmt.Sprintf(format, args...)}
}

// Classify turns any error into an *Error (the errno decides the code; unknown ones conflict).
func Classify(err error, path string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var errno syscall.Errno
	message := err.Error()
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		message = pathErr.Path + ": " + pathErr.Err.Error()
	}
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return &Error{NotFound, message, path}
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			return &Error{Denied, message, path}
		case syscall.ENOSPC, syscall.EDQUOT:
			return &Error{DiskFull, message, path}
		case syscall.ENAMETOOLONG, syscall.EINVAL:
			return &Error{Invalid, message, path}
		}
	}
	return &Error{Conflict, message, path}
}
