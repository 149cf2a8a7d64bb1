// Package watch follows changes in a directory tree with inotify (standard library only): the
// daemon side of file watching (POST /watch, docs/sandboxd.md "File watch").
//
// A Watcher watches a root directory and, when recursive, every directory below it, those made
// later included (and forgets those removed or moved out). Its events carry the path relative to
// the root, whether it is a directory and when sandboxd saw it:
//
//   - create: a file or directory appeared (made, or moved in from outside the watched tree);
//   - write: a file's content changed (IN_MODIFY and IN_CLOSE_WRITE, coalesced);
//   - remove: it went away (deleted, or moved out of the watched tree);
//   - rename: it moved within the tree (`from` is the old path): IN_MOVED_FROM and IN_MOVED_TO
//     paired by their cookie;
//   - chmod: its metadata changed (mode, owner, times);
//   - overflow: events were lost (`reason`: "queue", the client read too slowly; "kernel",
//     inotify's own queue overflowed) or a directory is not watched ("watch_limit": the cap of
//     directories per watch or the kernel's limit; "path_limit": its path is too long): rescan.
//
// Everything is bounded: directories watched (Config.MaxDirs), events waiting for the client
// (Config.MaxEvents and MaxBytes; past them events are dropped and an overflow event says so),
// path lengths (MaxPath). Events that wait coalesce: a write, chmod or create of a path whose
// last waiting event is the same is dropped.
//
// Paths are hostile. Directories are opened one component at a time from the root with
// O_NOFOLLOW|O_DIRECTORY and watched through /proc/self/fd, so a symbolic link (even one swapped
// in for a directory mid-walk) is never followed out of the tree, and every open, listing and
// inotify_add_watch runs with the requesting user's filesystem identity (fsuid, fsgid and
// supplementary groups on a thread of its own): a root the user cannot read is refused, and a
// directory below it the user cannot read is not watched.
package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/users"
)

// Event types.
const (
	Create   = "create"
	Write    = "write"
	Remove   = "remove"
	Rename   = "rename"
	Chmod    = "chmod"
	Overflow = "overflow"
)

// Overflow reasons.
const (
	LostQueue  = "queue"       // the client read too slowly: sandboxd dropped events
	LostKernel = "kernel"      // inotify's queue overflowed (IN_Q_OVERFLOW)
	WatchLimit = "watch_limit" // a directory is not watched: Config.MaxDirs, or the kernel's limit
	PathLimit  = "path_limit"  // a directory is not watched: its path is longer than MaxPath
)

// End reasons (Reason, once Next answers nil).
const (
	EndClosed  = "closed"       // Close was called
	EndRemoved = "root_removed" // the root was deleted
	EndMoved   = "root_moved"   // the root was moved (its paths would no longer be the root's)
	EndUnmount = "unmounted"    // the root's filesystem was unmounted
	EndError   = "error"        // reading inotify failed
)

// MaxPath is the longest path (relative to the root, in bytes) an event carries; a directory
// whose own path is longer is not watched.
const MaxPath = 4096

// TimeFormat is how event times are written (UTC, microseconds), as processes.TimeFormat.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Event is one change. JSON as the watch stream's frames carry it.
type Event struct {
	Type   string `json:"type"`
	Path   string `json:"path"`           // relative to the root; "." is the root itself
	From   string `json:"from,omitempty"` // rename: the old path
	IsDir  bool   `json:"is_dir"`
	Time   string `json:"time"`
	Reason string `json:"reason,omitempty"` // overflow
}

// Config bounds a watch (and, for a Table, the watches at once).
type Config struct {
	MaxWatches int           // Table: watches open at once
	MaxDirs    int           // directories watched per watch
	MaxEvents  int           // events waiting for the client
	MaxBytes   int           // bytes of paths waiting for the client
	Batch      time.Duration // how long Next lets events gather (and coalesce) after the first
	MoveWait   time.Duration // how long an IN_MOVED_FROM waits for its IN_MOVED_TO
}

// Defaults are sandboxd's.
var Defaults = Config{
	MaxWatches: 8, MaxDirs: 4096, MaxEvents: 4096, MaxBytes: 512 << 10,
	Batch: 20 * time.Millisecond, MoveWait: 10 * time.Millisecond,
}

// Options are what to watch.
type Options struct {
	Root      string      // an absolute path
	Recursive bool        // watch the directories below the root too
	Excludes  []string    // path.Match patterns: without "/" against each name, with "/" against the relative path
	User      *users.User // whose permissions the watch has; nil: sandboxd's own
}

// Limits on a request's options.
const (
	MaxExcludes       = 64
	MaxExcludePattern = 256
)

// Errors of Open.
var (
	ErrFull     = errors.New("too many watches open")
	ErrNotDir   = errors.New("not a directory")
	ErrNoRoom   = errors.New("the kernel's inotify limit is reached")
	ErrBadRoot  = errors.New("the root is not an absolute path")
	ErrExcludes = fmt.Errorf("excludes are at most %d patterns of at most %d bytes", MaxExcludes, MaxExcludePattern)
)

const (
	dirMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
		syscall.IN_MODIFY | syscall.IN_CLOSE_WRITE | syscall.IN_ATTRIB | syscall.IN_DELETE_SELF |
		syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR | syscall.IN_EXCL_UNLINK
	openDir       = syscall.O_RDONLY | syscall.O_DIRECTORY | syscall.O_CLOEXEC | syscall.O_NONBLOCK
	openChild     = openDir | syscall.O_NOFOLLOW
	eventOverhead = 96 // bytes an event waiting costs besides its paths
)

// Watcher is one watch. Next hands out its events; Close ends it and frees its inotify fd.
type Watcher struct {
	root      string
	rootID    fileID
	recursive bool
	excludes  []string
	user      *users.User
	cfg       Config
	fd        int
	file      *os.File
	release   func()

	// The reader goroutine's alone.
	dirs    map[int]string // watch descriptor -> directory path relative to the root ("" is the root)
	paths   map[string]int
	limited bool // a watch_limit was reported and no watch has gone since
	long    bool // a path_limit was reported
	count   atomic.Int64

	mu     sync.Mutex
	queue  []Event
	bytes  int
	last   map[string]int // path -> index in queue of its last waiting event
	lost   string         // an overflow reason, once events were dropped since the last Next
	ended  string         // why the watch ended ("": it has not)
	wake   chan struct{}
	closed sync.Once
	done   chan struct{} // closed once the reader has returned
}

type fileID struct{ dev, ino uint64 }

// CheckExcludes answers ErrExcludes (wrapped) unless the patterns are few, short and valid.
func CheckExcludes(patterns []string) error {
	if len(patterns) > MaxExcludes {
		return ErrExcludes
	}
	for _, p := range patterns {
		if p == "" || len(p) > MaxExcludePattern || strings.IndexByte(p, 0) >= 0 {
			return ErrExcludes
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrExcludes, p, err)
		}
	}
	return nil
}

// Open starts a watch with the bounds of cfg; release (if not nil) runs once it is closed.
// The watch is in place when Open returns: every change after it is seen. Errors: ErrBadRoot,
// ErrExcludes, ErrNotDir, ErrNoRoom, or the root's open error as the user (os.ErrNotExist,
// os.ErrPermission...).
func Open(opts Options, cfg Config, release func()) (*Watcher, error) {
	root := opts.Root
	if !path.IsAbs(root) || len(root) > MaxPath || strings.IndexByte(root, 0) >= 0 {
		return nil, ErrBadRoot
	}
	if err := CheckExcludes(opts.Excludes); err != nil {
		return nil, err
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		if err == syscall.EMFILE || err == syscall.ENFILE || err == syscall.ENOMEM {
			return nil, fmt.Errorf("%w: %v", ErrNoRoom, err)
		}
		return nil, err
	}
	w := &Watcher{
		root: path.Clean(root), recursive: opts.Recursive, excludes: opts.Excludes, user: opts.User, cfg: cfg,
		fd: fd, release: release, dirs: map[int]string{}, paths: map[string]int{}, last: map[string]int{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	var rootErr error
	if err := asUser(w.user, func() { rootErr = w.start() }); err != nil {
		rootErr = err
	}
	if rootErr != nil {
		syscall.Close(fd)
		return nil, rootErr
	}
	// Non-blocking: os.NewFile puts it in the runtime's poller, so the reader parks, not a thread.
	w.file = os.NewFile(uintptr(fd), "inotify")
	go w.run()
	return w, nil
}

// start opens and watches the root and, when recursive, the tree below it. Runs as the user.
func (w *Watcher) start() error {
	rootFD, err := syscall.Open(w.root, openDir, 0)
	if err != nil {
		if err == syscall.ENOTDIR {
			return ErrNotDir
		}
		return &os.PathError{Op: "open", Path: w.root, Err: err}
	}
	defer syscall.Close(rootFD)
	var st syscall.Stat_t
	if err := syscall.Fstat(rootFD, &st); err != nil {
		return err
	}
	w.rootID = fileID{uint64(st.Dev), st.Ino}
	wd, err := w.addWatch(rootFD)
	if err != nil {
		if err == syscall.ENOSPC {
			return fmt.Errorf("%w: %v", ErrNoRoom, err)
		}
		return &os.PathError{Op: "watch", Path: w.root, Err: err}
	}
	w.dirs[wd], w.paths[""] = "", wd
	w.count.Store(1)
	w.scan(rootFD, "", false)
	return nil
}

// addWatch watches the directory open as fd: through /proc/self/fd, which names that very
// directory (no path is looked up again, so nothing can be swapped in between).
func (w *Watcher) addWatch(fd int) (int, error) {
	return syscall.InotifyAddWatch(w.fd, fmt.Sprintf("/proc/self/fd/%d", fd), dirMask)
}

// scan lists the directory open as fd (at rel), reports what it holds as created when `report`
// (a directory that appeared: what was made in it before its watch was in place), and, when
// recursive, watches its subdirectories and scans them in turn (breadth first, each opened anew
// from the root: no descriptor is held per level). Runs as the user.
func (w *Watcher) scan(fd int, rel string, report bool) {
	type dir struct {
		fd  int
		rel string
	}
	todo := []string{}
	visit := func(d dir) {
		for _, entry := range readDir(d.fd) {
			child := join(d.rel, entry.name)
			if w.excluded(entry.name, child) || len(child) > MaxPath {
				continue
			}
			isDir := entry.kind == syscall.DT_DIR
			if entry.kind == syscall.DT_UNKNOWN { // a filesystem without d_type: ask
				if cfd, err := syscall.Openat(d.fd, entry.name, openChild, 0); err == nil {
					syscall.Close(cfd)
					isDir = true
				}
			}
			if report {
				w.push(Event{Type: Create, Path: child, IsDir: isDir})
			}
			if isDir && w.recursive {
				todo = append(todo, child)
			}
		}
	}
	visit(dir{fd, rel})
	for len(todo) > 0 {
		next := todo[0]
		todo = todo[1:]
		cfd, ok := w.watchDir(next)
		if !ok {
			continue
		}
		visit(dir{cfd, next})
		syscall.Close(cfd)
	}
}

// watchDir opens the directory at rel (one component at a time from the root, never following a
// symbolic link) and watches it: its descriptor, or false when it is not watched (gone, not a
// directory, not readable by the user, a limit). Runs as the user.
func (w *Watcher) watchDir(rel string) (int, bool) {
	if len(rel) > MaxPath {
		w.limit(PathLimit, rel)
		return -1, false
	}
	if len(w.dirs) >= w.cfg.MaxDirs {
		w.limit(WatchLimit, rel)
		return -1, false
	}
	fd, err := w.openDir(rel)
	if err != nil {
		return -1, false
	}
	wd, err := w.addWatch(fd)
	if err != nil {
		if err == syscall.ENOSPC { // the kernel's max_user_watches
			w.limit(WatchLimit, rel)
		}
		syscall.Close(fd)
		return -1, false
	}
	if _, ok := w.dirs[wd]; ok {
		// Watched already: by another path (a bind mount), or an IN_CREATE that the scan of its
		// new parent got ahead of. Watched and scanned once.
		syscall.Close(fd)
		return -1, false
	}
	w.dirs[wd], w.paths[rel] = rel, wd
	w.count.Store(int64(len(w.dirs)))
	return fd, true
}

// openDir opens the directory at rel below the root, one component at a time with O_NOFOLLOW.
// The root is opened by its path and must still be the directory the watch started on.
func (w *Watcher) openDir(rel string) (int, error) {
	fd, err := syscall.Open(w.root, openDir, 0)
	if err != nil {
		return -1, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || (fileID{uint64(st.Dev), st.Ino}) != w.rootID {
		syscall.Close(fd)
		return -1, syscall.ESTALE
	}
	if rel == "" {
		return fd, nil
	}
	for _, name := range strings.Split(rel, "/") {
		next, err := syscall.Openat(fd, name, openChild, 0)
		syscall.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// limit reports a directory not watched, once until a watch goes away (watch_limit) or once
// (path_limit).
func (w *Watcher) limit(reason, rel string) {
	if reason == WatchLimit {
		if w.limited {
			return
		}
		w.limited = true
	} else {
		if w.long {
			return
		}
		w.long = true
		if len(rel) > MaxPath { // name the deepest directory above it whose path fits
			rel = rel[:max(strings.LastIndexByte(rel[:MaxPath+1], '/'), 0)]
		}
	}
	if rel == "" {
		rel = "."
	}
	w.push(Event{Type: Overflow, Path: rel, IsDir: true, Reason: reason})
}

type dirent struct {
	name string
	kind byte
}

// readDir answers the entries of the directory open as fd (but . and ..).
func readDir(fd int) []dirent {
	var out []dirent
	buf := make([]byte, 16<<10)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err != nil || n <= 0 {
			return out
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." && s != "" {
				out = append(out, dirent{name: s, kind: b[18]})
			}
			b = b[reclen:]
		}
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// excluded: a name (or path) the watch ignores, as if it were outside the tree.
func (w *Watcher) excluded(name, rel string) bool {
	for _, p := range w.excludes {
		subject := name
		if strings.Contains(p, "/") {
			subject = rel
		}
		if ok, _ := path.Match(p, subject); ok {
			return true
		}
	}
	return false
}

// ---- the queue ----

// push queues an event (timed now), coalesced with the path's last waiting event when they are
// the same, dropped (and an overflow noted) when the queue is full.
func (w *Watcher) push(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended != "" {
		return
	}
	if i, ok := w.last[e.Path]; ok {
		prev := w.queue[i]
		if prev.Type == e.Type && prev.From == e.From && prev.Reason == e.Reason && e.Type != Remove && e.Type != Rename {
			return
		}
	}
	size := len(e.Path) + len(e.From) + eventOverhead
	if len(w.queue) >= w.cfg.MaxEvents || w.bytes+size > w.cfg.MaxBytes {
		w.overflowLocked(LostQueue)
		return
	}
	e.Time = time.Now().UTC().Format(TimeFormat)
	w.queue = append(w.queue, e)
	w.bytes += size
	w.last[e.Path] = len(w.queue) - 1
	w.signal()
}

func (w *Watcher) overflowLocked(reason string) {
	if w.lost == "" || reason == LostQueue {
		w.lost = reason
	}
	w.signal()
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// finish ends the watch: Next answers what waits, then nil.
func (w *Watcher) finish(reason string) {
	w.mu.Lock()
	if w.ended == "" {
		w.ended = reason
	}
	w.mu.Unlock()
	w.signal()
}

// Next waits for events and answers them in order, with an overflow event last when some were
// dropped since the last call. It answers nil once the watch has ended (Reason says why) or stop
// is closed. After the first event it waits Config.Batch for more, so that bursts coalesce.
func (w *Watcher) Next(stop <-chan struct{}) []Event {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 || w.lost != "" {
			batch := w.queue
			if w.lost != "" {
				batch = append(batch, Event{Type: Overflow, Reason: w.lost, IsDir: true, Path: ".",
					Time: time.Now().UTC().Format(TimeFormat)})
			}
			w.queue, w.bytes, w.lost = nil, 0, ""
			clear(w.last)
			w.mu.Unlock()
			return batch
		}
		ended := w.ended
		w.mu.Unlock()
		if ended != "" {
			return nil
		}
		select {
		case <-w.wake:
		case <-stop:
			return nil
		}
		if w.cfg.Batch > 0 {
			t := time.NewTimer(w.cfg.Batch)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return nil
			}
		}
	}
}

// Reason answers why the watch ended ("" while it runs).
func (w *Watcher) Reason() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}

// Waiting answers how many events wait for Next and the bytes of their paths.
func (w *Watcher) Waiting() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue), w.bytes
}

// Close ends the watch and frees its inotify descriptor (every watch with it) before it returns.
func (w *Watcher) Close() {
	w.closed.Do(func() {
		w.finish(EndClosed)
		w.file.Close() // the reader's Read fails; the descriptor closes once it has returned
		<-w.done
		if w.release != nil {
			w.release()
		}
	})
}

// Watches answers how many directories are watched.
func (w *Watcher) Watches() int { return int(w.count.Load()) }
