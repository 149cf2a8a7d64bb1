package files

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"vibebox.dev/sandboxd/internal/users"
)

// Caps of an extraction.
const (
	MaxEntries = 1 << 20 // entries of one tar, whatever the request asks
	maxDirs    = 1 << 16 // directories whose mode is set at the end
)

func pathPtr(p string) (*byte, error) { return syscall.BytePtrFromString(p) }

func mkdirat(dirfd int, name string, mode uint32) error {
	return syscall.Mkdirat(dirfd, name, mode)
}

func symlinkat(target string, dirfd int, name string) error {
	t, err := pathPtr(target)
	if err != nil {
		return err
	}
	n, err := pathPtr(name)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall(syscall.SYS_SYMLINKAT, uintptr(unsafe.Pointer(t)), uintptr(dirfd), uintptr(unsafe.Pointer(n)))
	if errno != 0 {
		return errno
	}
	return nil
}

func linkat(olddir int, oldname string, newdir int, newname string) error {
	o, err := pathPtr(oldname)
	if err != nil {
		return err
	}
	n, err := pathPtr(newname)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(olddir), uintptr(unsafe.Pointer(o)), uintptr(newdir), uintptr(unsafe.Pointer(n)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func unlinkat(dirfd int, name string, flags int) error {
	n, err := pathPtr(name)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall(syscall.SYS_UNLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(n)), uintptr(flags))
	if errno != 0 {
		return errno
	}
	return nil
}

const atRemoveDir = 0x200

const oPath = 0x200000 // O_PATH: a handle on the name itself, nothing opened (no FIFO waits, no device side effects)

// lstatat is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW), which package syscall does not export.
func lstatat(dirfd int, name string) (syscall.Stat_t, error) {
	var st syscall.Stat_t
	fd, err := syscall.Openat(dirfd, name, oPath|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return st, err
	}
	defer syscall.Close(fd)
	err = syscall.Fstat(fd, &st)
	return st, err
}

// entryName checks a tar entry's name: relative, no "..", no NUL; answers its components ([] for
// the top directory itself).
func entryName(name string) ([]string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.IndexByte(name, 0) >= 0 || len(name) > MaxPath {
		return nil, fail(BadArchive, name, "unsafe entry name %q", name)
	}
	var parts []string
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			return nil, fail(BadArchive, name, "unsafe entry name %q (..)", name)
		}
		parts = append(parts, part)
	}
	if len(parts) > MaxListDepth {
		return nil, fail(BadArchive, name, "entry %q is too deep", name)
	}
	return parts, nil
}

// beneath opens the directory at parts below root, never through a symlink (O_NOFOLLOW at every
// level: a symlink, made by the archive or by the sandbox meanwhile, is refused), making missing
// levels when create is set. Call it inside As; the caller closes the answer.
func beneath(root int, parts []string, create bool, name string) (int, error) {
	fd, err := syscall.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, part := range parts {
		next, err := syscall.Openat(fd, part, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err == syscall.ENOENT && create {
			if err = mkdirat(fd, part, 0o755); err == nil || err == syscall.EEXIST {
				next, err = syscall.Openat(fd, part, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
			}
		}
		syscall.Close(fd)
		if err == syscall.ELOOP || err == syscall.ENOTDIR {
			return -1, fail(BadArchive, name, "entry %q goes through a symlink or a file", name)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// Untar extracts the tar read from r into dir (made if need be), as u. Every entry is confined to
// dir: absolute names, "..", entries through a symlink and hard links to anything outside are
// refused (code BadArchive), as are more than maxEntries entries (TooLarge; 0: MaxEntries) and special files.
// Each file is written beside its place and renamed into it once whole (a full disk leaves the
// file that was there); an existing file the user may not write is not replaced. verify() runs
// once the tar was read, before directory modes are set; its error is answered. It answers the
// number of entries.
func Untar(u users.User, dir string, r io.Reader, maxEntries int, verify func() error) (int, error) {
	if maxEntries <= 0 || maxEntries > MaxEntries {
		maxEntries = MaxEntries
	}
	var root *os.File
	err := As(u, func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var err error
		root, err = os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		return err
	})
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return 0, fail(Conflict, dir, "%s exists and is not a directory", dir)
		}
		return 0, Classify(err, dir)
	}
	defer root.Close()
	rootFd := int(root.Fd())
	type dirMode struct {
		parts []string
		mode  uint32
	}
	var modes []dirMode
	reader := tar.NewReader(sourceReader{r})
	count := 0
	for {
		hdr, err := reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if IsReadError(err) {
				return count, err
			}
			return count, fail(BadArchive, dir, "not a valid tar: %v", err)
		}
		if count++; count > maxEntries {
			return count, fail(TooLarge, dir, "more than %d entries", maxEntries)
		}
		parts, err := entryName(hdr.Name)
		if err != nil {
			return count, err
		}
		if len(parts) == 0 {
			continue // the top directory: dir itself
		}
		parent, base := parts[:len(parts)-1], parts[len(parts)-1]
		mode := uint32(hdr.Mode) & 0o7777
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = As(u, func() error {
				fd, err := beneath(rootFd, parts, true, hdr.Name)
				if err != nil {
					return err
				}
				return syscall.Close(fd)
			})
			if err == nil && len(modes) < maxDirs {
				modes = append(modes, dirMode{parts, mode})
			}
		case tar.TypeReg, tar.TypeRegA:
			err = untarFile(u, rootFd, parent, base, hdr, reader)
		case tar.TypeSymlink:
			err = placeLink(u, rootFd, parent, base, hdr.Name, func(fd int) error { return symlinkat(hdr.Linkname, fd, base) })
		case tar.TypeLink:
			var source []string
			if source, err = entryName(hdr.Linkname); err == nil && len(source) == 0 {
				err = fail(BadArchive, hdr.Name, "hard link %q to the top directory", hdr.Name)
			}
			if err == nil {
				err = placeLink(u, rootFd, parent, base, hdr.Name, func(fd int) error {
					from, err := beneath(rootFd, source[:len(source)-1], false, hdr.Linkname)
					if err != nil {
						return err
					}
					defer syscall.Close(from)
					return linkat(from, source[len(source)-1], fd, base)
				})
			}
		default:
			err = fail(BadArchive, hdr.Name, "entry %q: only files, directories and links are extracted", hdr.Name)
		}
		if err != nil {
			return count, Classify(err, path.Join(dir, hdr.Name))
		}
	}
	if err := verify(); err != nil {
		return count, err
	}
	// Directory modes last (deepest first): a read-only directory still took its files.
	slices.Reverse(modes)
	for _, m := range modes {
		As(u, func() error {
			fd, err := beneath(rootFd, m.parts, false, "")
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			return syscall.Fchmod(fd, m.mode)
		})
	}
	return count, nil
}

// untarFile writes one regular entry beside its place, then renames it in.
func untarFile(u users.User, rootFd int, parent []string, base string, hdr *tar.Header, data io.Reader) error {
	var dirFd int
	var f *os.File
	var tmpName string
	err := As(u, func() error {
		var err error
		if dirFd, err = beneath(rootFd, parent, true, hdr.Name); err != nil {
			return err
		}
		if st, err := lstatat(dirFd, base); err == nil {
			switch st.Mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				err = fail(Conflict, hdr.Name, "%s is a directory", hdr.Name)
			case syscall.S_IFREG: // the user must be able to write what it replaces
				var fd int
				if fd, err = syscall.Openat(dirFd, base, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0); err == nil {
					syscall.Close(fd)
				}
			}
			if err != nil {
				syscall.Close(dirFd)
				return err
			}
		}
		for range 10 {
			var random [8]byte
			rand.Read(random[:])
			tmpName = ".vibebox-upload-" + hex.EncodeToString(random[:])
			fd, err := syscall.Openat(dirFd, tmpName, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
			if err == syscall.EEXIST {
				continue
			}
			if err != nil {
				syscall.Close(dirFd)
				return err
			}
			f = os.NewFile(uintptr(fd), tmpName)
			return nil
		}
		syscall.Close(dirFd)
		return fail(Conflict, hdr.Name, "no temporary name for %s", hdr.Name)
	})
	if err != nil {
		return err
	}
	defer syscall.Close(dirFd)
	discard := func() {
		f.Close()
		As(u, func() error { return unlinkat(dirFd, tmpName, 0) })
	}
	if _, err := copyN(f, data, hdr.Size); err != nil {
		discard()
		if IsReadError(err) {
			return err
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fail(BadArchive, hdr.Name, "the tar ends inside %q", hdr.Name)
		}
		return err
	}
	mtime := hdr.ModTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	tv := syscall.NsecToTimeval(mtime.UnixNano())
	err = f.Chmod(os.FileMode(uint32(hdr.Mode)&0o777) | modeBits(uint32(hdr.Mode)))
	if err == nil {
		err = syscall.Futimes(int(f.Fd()), []syscall.Timeval{tv, tv})
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		discard()
		return err
	}
	return As(u, func() error {
		if err := syscall.Renameat(dirFd, tmpName, dirFd, base); err != nil {
			unlinkat(dirFd, tmpName, 0)
			return err
		}
		return nil
	})
}

// placeLink makes a symlink or hard link (make, in the parent's fd) where something that is not
// a directory may be (it is replaced).
func placeLink(u users.User, rootFd int, parent []string, base, name string, place func(int) error) error {
	return As(u, func() error {
		fd, err := beneath(rootFd, parent, true, name)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		if st, err := lstatat(fd, base); err == nil {
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				return fail(Conflict, name, "%s is a directory", name)
			}
			if err := unlinkat(fd, base, 0); err != nil {
				return err
			}
		}
		return place(fd)
	})
}

// Tar writes a tar of p (a directory with everything below it; a symlink as itself) to w, as u;
// names start with p's base name, as Docker's archives do. A file that shrinks meanwhile is
// padded with zeros, one that grows is cut at the size it had when opened.
func Tar(u users.User, p string, w io.Writer) error {
	var top os.FileInfo
	if err := As(u, func() (err error) { top, err = os.Lstat(p); return }); err != nil {
		return Classify(err, p)
	}
	tw := tar.NewWriter(w)
	name := path.Base(p)
	if p == "/" {
		name = "."
	}
	if err := tarEntry(u, tw, p, name, top, 0); err != nil {
		return err
	}
	return tw.Close()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func tarEntry(u users.User, tw *tar.Writer, p, name string, fi os.FileInfo, depth int) error {
	link := ""
	var f *os.File
	if fi.Mode()&os.ModeSymlink != 0 {
		if err := As(u, func() (err error) { link, err = os.Readlink(p); return }); err != nil {
			return Classify(err, p)
		}
	}
	if fi.Mode().IsRegular() {
		err := As(u, func() error {
			var err error
			if f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0); err != nil {
				return err
			}
			if err = refuseProc(f, p); err == nil {
				fi, err = f.Stat()
			}
			if err == nil && !fi.Mode().IsRegular() {
				err = fail(Conflict, p, "%s changed while it was read", p)
			}
			if err != nil {
				f.Close()
			}
			return err
		})
		if err != nil {
			return Classify(err, p)
		}
		defer f.Close()
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return Classify(err, p)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Mode = int64(st.Mode & 0o7777)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
		return nil // sockets, FIFOs, devices: not in the archive
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if f != nil {
		_, err := io.CopyN(tw, io.MultiReader(f, zeros{}), hdr.Size)
		return err
	}
	if !fi.IsDir() || depth >= MaxListDepth {
		return nil
	}
	f2Err := error(nil)
	var dirFile *os.File
	if err := As(u, func() (err error) { dirFile, err = os.Open(p); return }); err != nil {
		return Classify(err, p)
	}
	defer dirFile.Close()
	for {
		var names []string
		var infos []os.FileInfo
		f2Err = As(u, func() error {
			var err error
			names, err = dirFile.Readdirnames(batch)
			for _, n := range names {
				if info, err := os.Lstat(path.Join(p, n)); err == nil {
					infos = append(infos, info)
				}
			}
			return err
		})
		slices.SortFunc(infos, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
		for _, info := range infos {
			if err := tarEntry(u, tw, path.Join(p, info.Name()), name+"/"+info.Name(), info, depth+1); err != nil {
				return err
			}
		}
		if f2Err == io.EOF || len(names) == 0 {
			return nil
		}
		if f2Err != nil {
			return Classify(f2Err, p)
		}
	}
}
