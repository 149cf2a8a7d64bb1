package watch

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"syscall"
	"time"
)

// inotifyEvent is one event as the kernel reports it.
type inotifyEvent struct {
	wd     int
	mask   uint32
	cookie uint32
	name   string
}

// moved is an IN_MOVED_FROM waiting for its IN_MOVED_TO.
type moved struct {
	cookie   uint32
	rel      string
	isDir    bool
	excluded bool
}

// run reads the inotify descriptor until the watch ends or is closed.
func (w *Watcher) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	var pending *moved
	for {
		if pending != nil {
			if w.file.SetReadDeadline(time.Now().Add(w.cfg.MoveWait)) != nil {
				w.movedOut(pending) // cannot wait: a move whose end is not in this read left the tree
				pending = nil
			}
		} else {
			w.file.SetReadDeadline(time.Time{})
		}
		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && pending != nil {
				w.movedOut(pending) // no IN_MOVED_TO: it went out of the watched tree
				pending = nil
				continue
			}
			w.finish(EndError) // no-op after Close (the watch ended "closed")
			return
		}
		for b := buf[:n]; len(b) >= syscall.SizeofInotifyEvent; {
			size := syscall.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
			if size > len(b) {
				break
			}
			name := string(b[syscall.SizeofInotifyEvent:size])
			if i := strings.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			ev := inotifyEvent{
				wd:     int(int32(binary.NativeEndian.Uint32(b[0:4]))),
				mask:   binary.NativeEndian.Uint32(b[4:8]),
				cookie: binary.NativeEndian.Uint32(b[8:12]),
				name:   name,
			}
			b = b[size:]
			if !w.handle(ev, &pending) {
				return // the root went away: the watch has ended
			}
		}
	}
}

// handle turns one inotify event into the watch's events; false once the watch has ended.
func (w *Watcher) handle(ev inotifyEvent, pending **moved) bool {
	if p := *pending; p != nil && (ev.mask&syscall.IN_MOVED_TO == 0 || ev.cookie != p.cookie) {
		w.movedOut(p)
		*pending = nil
	}
	if ev.mask&syscall.IN_Q_OVERFLOW != 0 {
		w.mu.Lock()
		w.overflowLocked(LostKernel)
		w.mu.Unlock()
		return true
	}
	dir, known := w.dirs[ev.wd]
	if ev.mask&syscall.IN_IGNORED != 0 { // the kernel dropped the watch (its directory is gone)
		if known {
			w.forget(ev.wd)
			if dir == "" {
				w.finish(EndRemoved)
				return false
			}
		}
		return true
	}
	if !known {
		return true // a watch dropped on our side whose last events were still queued
	}
	if ev.name == "" { // about the watched directory itself: its parent reports it, but the root's
		if dir != "" {
			return true
		}
		switch {
		case ev.mask&syscall.IN_DELETE_SELF != 0:
			w.finish(EndRemoved)
			return false
		case ev.mask&syscall.IN_MOVE_SELF != 0:
			w.finish(EndMoved)
			return false
		case ev.mask&syscall.IN_UNMOUNT != 0:
			w.finish(EndUnmount)
			return false
		case ev.mask&syscall.IN_ATTRIB != 0:
			w.push(Event{Type: Chmod, Path: ".", IsDir: true})
		}
		return true
	}
	rel := join(dir, ev.name)
	isDir := ev.mask&syscall.IN_ISDIR != 0
	if len(rel) > MaxPath {
		w.limit(PathLimit, rel)
		return true
	}
	excluded := w.excluded(ev.name, rel)
	switch {
	case ev.mask&syscall.IN_MOVED_FROM != 0:
		*pending = &moved{cookie: ev.cookie, rel: rel, isDir: isDir, excluded: excluded}
	case ev.mask&syscall.IN_MOVED_TO != 0:
		from := *pending
		*pending = nil
		w.movedTo(from, rel, isDir, excluded)
	case excluded:
	case ev.mask&syscall.IN_CREATE != 0:
		w.push(Event{Type: Create, Path: rel, IsDir: isDir})
		if isDir && w.recursive {
			w.watchLater(rel)
		}
	case ev.mask&syscall.IN_DELETE != 0:
		w.push(Event{Type: Remove, Path: rel, IsDir: isDir})
	case ev.mask&(syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE) != 0:
		if !isDir {
			w.push(Event{Type: Write, Path: rel})
		}
	case ev.mask&syscall.IN_ATTRIB != 0:
		w.push(Event{Type: Chmod, Path: rel, IsDir: isDir})
	}
	return true
}

// movedOut: what moved away to outside the watched tree (or to an excluded name) is removed.
func (w *Watcher) movedOut(m *moved) {
	if m.excluded {
		return
	}
	w.push(Event{Type: Remove, Path: m.rel, IsDir: m.isDir})
	if m.isDir {
		w.dropTree(m.rel)
	}
}

// movedTo: what arrived by a move is renamed (from inside the tree) or created (from outside).
func (w *Watcher) movedTo(from *moved, rel string, isDir, excluded bool) {
	switch {
	case from != nil && excluded:
		w.movedOut(from)
	case excluded:
	case from == nil || from.excluded:
		w.push(Event{Type: Create, Path: rel, IsDir: isDir})
		if isDir && w.recursive {
			w.watchLater(rel)
		}
	default:
		w.push(Event{Type: Rename, Path: rel, From: from.rel, IsDir: isDir})
		if isDir && w.recursive {
			if _, watched := w.paths[from.rel]; watched {
				w.repath(from.rel, rel) // its watches moved with it
			} else {
				w.watchLater(rel) // it moved before its watch was in place
			}
		}
	}
}

// watchLater watches a directory that appeared and what it holds, reporting that as created.
func (w *Watcher) watchLater(rel string) {
	asUser(w.user, func() { // a thread that cannot take the user's identity watches nothing
		if fd, ok := w.watchDir(rel); ok {
			w.scan(fd, rel, true)
			syscall.Close(fd)
		}
	})
}

// under answers the watch descriptors of rel and the directories below it.
func (w *Watcher) under(rel string) []int {
	var wds []int
	for wd, p := range w.dirs {
		if p == rel || strings.HasPrefix(p, rel+"/") {
			wds = append(wds, wd)
		}
	}
	return wds
}

// repath moves the watched directories at and below old to new.
func (w *Watcher) repath(old, new string) {
	wds := w.under(old)
	for _, wd := range wds {
		if w.paths[w.dirs[wd]] == wd {
			delete(w.paths, w.dirs[wd])
		}
	}
	for _, wd := range wds {
		p := new + w.dirs[wd][len(old):]
		w.dirs[wd], w.paths[p] = p, wd
	}
}

// dropTree stops watching rel and the directories below it.
func (w *Watcher) dropTree(rel string) {
	for _, wd := range w.under(rel) {
		syscall.InotifyRmWatch(w.fd, uint32(wd))
		w.forget(wd)
	}
}

func (w *Watcher) forget(wd int) {
	p := w.dirs[wd]
	delete(w.dirs, wd)
	if w.paths[p] == wd {
		delete(w.paths, p)
	}
	w.limited = false
	w.count.Store(int64(len(w.dirs)))
}
