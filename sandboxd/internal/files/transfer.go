package files

import (
	"errors"
	"io"
	"os"
	"path"
	"sync"
	"syscall"

	"vibebox.dev/sandboxd/internal/users"
)

// maxLinks is how many symlinks at the end of a path a write follows (the kernel's limit).
const maxLinks = 40

// copyBuffers hold the buffers of transfers: writes of 256 KiB rather than io.Copy's 32 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyN is io.CopyN into a file through a pooled buffer (os.File's ReadFrom would take 32 KiB at
// a time from a reader it cannot splice from), written back as it goes (writeBehind).
func copyN(dst *os.File, src io.Reader, n int64) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	written, err := io.CopyBuffer(&writeBehind{f: dst}, io.LimitReader(src, n), *buf)
	if written == n {
		return n, nil
	}
	if written < n && err == nil {
		err = io.EOF
	}
	return written, err
}

// writeBehind writes to a file and, every window, starts the writeback of what it wrote
// (sync_file_range(SYNC_FILE_RANGE_WRITE): asynchronous, nothing waits for it). sandboxd writes in
// the sandbox's memory cgroup, whose dirty-page limit is small: without it a large upload's
// dirty pages pile up to the limit and then every write waits for the kernel's throttling (100
// MiB into a 256 MiB sandbox took 0.29 to 0.72 s, with it 0.32 to 0.45 s, on a busy machine).
// Waiting for each window and dropping it from the page cache was slower (0.40 to 0.65 s).
type writeBehind struct {
	f       *os.File
	off     int64 // bytes written
	flushed int64 // up to here the writeback was started
}

const (
	writeWindow = 8 << 20
	syncWrite   = 2 // SYNC_FILE_RANGE_WRITE
)

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= writeWindow {
		syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, w.f.Fd(), uintptr(w.flushed), uintptr(w.off-w.flushed), syncWrite, 0, 0)
		w.flushed = w.off
	}
	return n, err
}

// readError marks a failure to read the data (the client's), not to write it (the disk's).
type readError struct{ err error }

func (e readError) Error() string { return "reading the data: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

// IsReadError tells whether err came from reading the request's data.
func IsReadError(err error) bool {
	var r readError
	return errors.As(err, &r)
}

// finalTarget follows the symlinks at the end of p (as writing through them would); call it inside
// As. It answers where the data goes and whether something is there already.
func finalTarget(p string) (string, os.FileInfo, error) {
	for range maxLinks {
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return p, nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return p, fi, nil
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", nil, err
		}
		if !path.IsAbs(link) {
			link = path.Join(path.Dir(p), link)
		}
		p = path.Clean(link)
	}
	return "", nil, syscall.ELOOP
}

// checkReplaceable refuses to replace what is not a regular file the user may write (the kernel
// would let a rename replace it with the directory's permission alone); call it inside As.
func checkReplaceable(p string, fi os.FileInfo) error {
	if fi == nil {
		return nil
	}
	if fi.IsDir() {
		return fail(Conflict, p, "%s is a directory", p)
	}
	if !fi.Mode().IsRegular() {
		return fail(Conflict, p, "%s is not a regular file", p)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Write makes p hold exactly size bytes of r, with mode (07777), as u: the data goes to a new
// file beside the target, which is renamed over it only once all of it is written and verify()
// passed, so the old content survives any failure (a full disk: code DiskFull). A symlink at p is
// written through; a directory, or a file the user may not write, is not replaced. It answers the
// new file's Info.
func Write(u users.User, p string, mode uint32, r io.Reader, size int64, verify func() error) (Info, error) {
	var target string
	err := As(u, func() error {
		var fi os.FileInfo
		var err error
		if target, fi, err = finalTarget(p); err != nil {
			return err
		}
		return checkReplaceable(target, fi)
	})
	if err != nil {
		return Info{}, Classify(err, p)
	}
	tmp, err := createBeside(u, target)
	if err != nil {
		return Info{}, err
	}
	if _, err := copyN(tmp.f, sourceReader{r}, size); err != nil {
		tmp.discard(u)
		if IsReadError(err) || errors.Is(err, io.EOF) {
			return Info{}, readError{err}
		}
		return Info{}, Classify(err, p)
	}
	if err := verify(); err != nil {
		tmp.discard(u)
		return Info{}, err
	}
	if err := tmp.f.Chmod(os.FileMode(mode&0o777) | modeBits(mode)); err != nil {
		tmp.discard(u)
		return Info{}, Classify(err, p)
	}
	if err := tmp.f.Close(); err != nil {
		tmp.discard(u)
		return Info{}, Classify(err, p)
	}
	var info Info
	err = As(u, func() error {
		if err := os.Rename(tmp.name, target); err != nil {
			syscall.Unlink(tmp.name)
			return err
		}
		var err error
		info, err = lstatInfo(target)
		return err
	})
	if err != nil {
		return Info{}, Classify(err, p)
	}
	return info, nil
}

// modeBits turns setuid, setgid and sticky bits (04000, 02000, 01000) into Go's mode bits.
func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

const procMagic = 0x9fa0 // PROC_SUPER_MAGIC

// Open opens the file p for reading, as u (a symlink is followed, as the user's `cat` would); a
// directory or a special file is refused, and so is anything in /proc (sandboxd's own entries
// there are open to it whatever its file system ids). The caller closes it.
func Open(u users.User, p string) (*os.File, Info, error) {
	var f *os.File
	var info Info
	err := As(u, func() error {
		var err error
		if f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0); err != nil {
			return err
		}
		if err := refuseProc(f, p); err != nil {
			f.Close()
			return err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fail(Conflict, p, "%s is not a regular file", p)
		}
		if err != nil {
			f.Close()
			return err
		}
		info = infoOf(p, fi)
		return nil
	})
	if err != nil {
		return nil, Info{}, Classify(err, p)
	}
	return f, info, nil
}

func refuseProc(f *os.File, p string) error {
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &fs); err != nil {
		return err
	}
	if fs.Type == procMagic {
		return fail(Denied, p, "files in /proc are not served")
	}
	return nil
}
