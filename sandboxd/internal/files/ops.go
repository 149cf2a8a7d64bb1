package files

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"vibebox.dev/sandboxd/internal/users"
)

// Caps.
const (
	MaxPath      = 4096    // bytes of a path (PATH_MAX)
	MaxListDepth = 256     // directory levels a recursive listing descends
	MaxList      = 1 << 20 // entries of one listing, whatever the request asks
	batch        = 1024    // directory entries read per locked section
)

// Info is what Stat and List answer of one path (its own, not a symlink's target, unless asked).
type Info struct {
	Path  string  `json:"path"`
	Name  string  `json:"name"`
	Type  string  `json:"type"` // file, directory, symlink, other
	Size  int64   `json:"size"`
	Mode  uint32  `json:"mode"` // permission bits with setuid, setgid and sticky (07777)
	MTime float64 `json:"mtime"`
	Link  string  `json:"link,omitempty"` // a symlink's target
	UID   int     `json:"uid"`
	GID   int     `json:"gid"`
}

// Clean checks a path from a request: absolute, no NUL, at most MaxPath bytes; answers it cleaned.
func Clean(p string) (string, error) {
	if p == "" || p[0] != '/' || strings.IndexByte(p, 0) >= 0 || len(p) > MaxPath {
		return "", fail(Invalid, p, "a path is absolute, at most %d bytes, without NUL", MaxPath)
	}
	return path.Clean(p), nil
}

func infoOf(p string, fi os.FileInfo) Info {
	info := Info{Path: p, Name: path.Base(p), Size: fi.Size()}
	switch {
	case fi.Mode().IsRegular():
		info.Type = "file"
	case fi.IsDir():
		info.Type = "directory"
	case fi.Mode()&os.ModeSymlink != 0:
		info.Type = "symlink"
	default:
		info.Type = "other"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.Mode = st.Mode & 07777
		info.MTime = float64(st.Mtim.Sec) + float64(st.Mtim.Nsec)/1e9
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	}
	return info
}

// lstatInfo is infoOf(lstat(p)) with a symlink's target; call it inside As.
func lstatInfo(p string) (Info, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Info{}, err
	}
	info := infoOf(p, fi)
	if info.Type == "symlink" {
		info.Link, _ = os.Readlink(p)
	}
	return info, nil
}

// Stat answers p's Info as u sees it; follow: of what a symlink at p points to.
func Stat(u users.User, p string, follow bool) (Info, error) {
	var info Info
	err := As(u, func() error {
		if !follow {
			var err error
			info, err = lstatInfo(p)
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		info = infoOf(p, fi)
		return nil
	})
	if err != nil {
		return Info{}, Classify(err, p)
	}
	return info, nil
}

// List answers p's entries (a directory's, sorted by name per directory, recursive: depth first,
// each directory before its contents, as find prints them), or p itself when it is not a
// directory; at most limit entries, truncated when there were more.
func List(u users.User, p string, recursive bool, limit int) ([]Info, bool, error) {
	limit = min(max(limit, 1), MaxList)
	var top Info
	if err := As(u, func() (err error) { top, err = lstatInfo(p); return }); err != nil {
		return nil, false, Classify(err, p)
	}
	if top.Type != "directory" {
		return []Info{top}, false, nil
	}
	out := []Info{} // never null in JSON
	truncated := false
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		var entries []Info
		err := As(u, func() error {
			f, err := os.Open(dir)
			if err != nil {
				return err
			}
			defer f.Close()
			for len(out)+len(entries) <= limit {
				names, err := f.Readdirnames(batch)
				for _, name := range names {
					info, err := lstatInfo(path.Join(dir, name))
					if err == nil { // gone meanwhile: not listed
						entries = append(entries, info)
					}
				}
				if err == io.EOF || len(names) == 0 {
					return nil
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
		for _, entry := range entries {
			if len(out) >= limit {
				truncated = true
				return nil
			}
			out = append(out, entry)
			if recursive && entry.Type == "directory" && depth < MaxListDepth {
				if err := walk(entry.Path, depth+1); err != nil && len(out) == 0 {
					return err
				} // a subdirectory the user cannot read is listed, not entered (as find)
			}
		}
		return nil
	}
	if err := walk(p, 0); err != nil {
		return nil, false, Classify(err, p)
	}
	return out, truncated, nil
}

// Mkdir makes p and its missing parents (mode 0755 less the umask), as u.
func Mkdir(u users.User, p string) error {
	if err := As(u, func() error { return os.MkdirAll(p, 0o755) }); err != nil {
		return Classify(err, p)
	}
	return nil
}

// Delete removes p (a directory only when recursive, with everything below it), as u. A
// recursive delete never follows a symlink (os.RemoveAll opens each level with O_NOFOLLOW).
func Delete(u users.User, p string, recursive bool) error {
	err := As(u, func() error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if !recursive {
				return fail(Conflict, p, "%s is a directory (delete it recursively)", p)
			}
			return os.RemoveAll(p)
		}
		return syscall.Unlink(p)
	})
	if err != nil {
		return Classify(err, p)
	}
	return nil
}

// Move renames source to destination (making its missing parents), as u, as `mv -T` does; an
// existing destination is replaced only with overwrite. A file moved to another file system is
// copied beside the destination and renamed into place, then the source removed.
func Move(u users.User, source, destination string, overwrite bool) error {
	crossDevice := false
	err := As(u, func() error {
		if _, err := os.Lstat(source); err != nil {
			return err
		}
		if _, err := os.Lstat(destination); err == nil && !overwrite {
			return fail(Conflict, destination, "%s already exists", destination)
		}
		if err := os.MkdirAll(path.Dir(destination), 0o755); err != nil {
			return err
		}
		err := os.Rename(source, destination)
		if errors.Is(err, syscall.EXDEV) {
			crossDevice = true
			return nil
		}
		return err
	})
	if err != nil {
		return Classify(err, destination)
	}
	if crossDevice {
		return moveAcross(u, source, destination)
	}
	return nil
}

func moveAcross(u users.User, source, destination string) error {
	var src *os.File
	var mode uint32
	err := As(u, func() error {
		var err error
		if src, err = os.OpenFile(source, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0); err != nil {
			if errors.Is(err, syscall.ELOOP) {
				return fail(Conflict, source, "%s is a symlink on another file system: not moved", source)
			}
			return err
		}
		fi, err := src.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			src.Close()
			return fail(Conflict, source, "only a file moves to another file system, not %s", source)
		}
		mode = uint32(fi.Mode().Perm()) | uint32(fi.Sys().(*syscall.Stat_t).Mode&07000)
		return nil
	})
	if err != nil {
		return Classify(err, source)
	}
	defer src.Close()
	tmp, err := createBeside(u, destination)
	if err != nil {
		return err
	}
	if _, err := copyN(tmp.f, src, 1<<62); err != nil && err != io.EOF {
		tmp.discard(u)
		return Classify(err, destination)
	}
	if err := tmp.f.Chmod(os.FileMode(mode & 0o777)); err != nil {
		tmp.discard(u)
		return Classify(err, destination)
	}
	err = As(u, func() error {
		if err := syscall.Unlink(source); err != nil {
			return err
		}
		if err := os.Rename(tmp.name, destination); err != nil {
			return fail(Conflict, destination, "%s was removed but its copy could not be renamed: it is at %s", source, tmp.name)
		}
		return nil
	})
	tmp.f.Close()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			tmp.discard(u)
		}
		return Classify(err, source)
	}
	return nil
}

// temp is a file made beside a target, to be renamed over it.
type temp struct {
	f    *os.File
	name string
}

// createBeside makes an empty file of u's, mode 0600, in destination's directory (made if need be).
func createBeside(u users.User, destination string) (temp, error) {
	var t temp
	err := As(u, func() error {
		dir := path.Dir(destination)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for range 10 {
			var random [8]byte
			rand.Read(random[:])
			name := path.Join(dir, ".vibebox-upload-"+hex.EncodeToString(random[:]))
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if errors.Is(err, os.ErrExist) {
				continue
			}
			if err != nil {
				return err
			}
			t = temp{f, name}
			return nil
		}
		return fail(Conflict, destination, "no temporary name beside %s", destination)
	})
	if err != nil {
		return temp{}, Classify(err, destination)
	}
	return t, nil
}

func (t temp) discard(u users.User) {
	t.f.Close()
	As(u, func() error { return syscall.Unlink(t.name) })
}
