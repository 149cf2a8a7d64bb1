package watch

import (
	"bufio"
	"encoding/json"
	"net"
	"sync"
	"time"

	"vibebox.dev/sandboxd/internal/frames"
)

// Table bounds the watches open at once (Config.MaxWatches): each holds an inotify instance, and
// the kernel counts those per real uid, which sandboxd shares with root on the whole host.
type Table struct {
	cfg   Config
	slots chan struct{}
}

// NewTable answers a Table whose watches have the bounds of cfg.
func NewTable(cfg Config) *Table {
	return &Table{cfg: cfg, slots: make(chan struct{}, max(cfg.MaxWatches, 0))}
}

// Open opens a watch (see the package's Open); ErrFull when MaxWatches are open.
func (t *Table) Open(opts Options) (*Watcher, error) {
	select {
	case t.slots <- struct{}{}:
	default:
		return nil, ErrFull
	}
	w, err := Open(opts, t.cfg, func() { <-t.slots })
	if err != nil {
		<-t.slots
	}
	return w, err
}

// Caps are the frames a watch stream takes from the server: only reserved ones (a keep-alive).
var Caps = frames.Caps{frames.Reserved: frames.MaxReserved}

// End is the payload of a watch stream's last frame (frames.Exit).
type End struct {
	ExecID string `json:"exec_id"`
	Reason string `json:"reason"` // root_removed, root_moved, unmounted, error
}

// Serve runs a watch stream on conn, whose 200 has been sent (br holds what was read past the
// request): each batch of events as frames.Watch frames (a JSON array each, at most
// frames.MaxOutput bytes), until the server goes away (EOF, a reset, a protocol error: the watch
// just closes) or the watch ends (the root went away: an exit frame {"exec_id", "reason"} is
// last). A batch that cannot be sent within frames.Stall drops the server. The watch is closed,
// its inotify descriptor with it, before Serve returns.
func Serve(w *Watcher, conn net.Conn, br *bufio.Reader, execID string) {
	fr := frames.NewReader(conn, br, Caps, frames.Stall)
	out := frames.NewWriter(conn)
	stop := make(chan struct{})
	var stopOnce sync.Once
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			if _, _, err := fr.Next(); err != nil {
				stopOnce.Do(func() { close(stop) })
				return
			}
		}
	}()
	for {
		batch := w.Next(stop)
		if batch == nil {
			break
		}
		conn.SetWriteDeadline(time.Now().Add(frames.Stall))
		if writeBatch(out, batch) != nil {
			w.Close()
			conn.Close()
			<-readerDone
			return
		}
	}
	w.Close()
	select {
	case <-stop: // the server went away: nobody to tell
		conn.Close()
		<-readerDone
		return
	default:
	}
	end, _ := json.Marshal(End{ExecID: execID, Reason: w.Reason()})
	conn.SetWriteDeadline(time.Now().Add(frames.Stall))
	if out.Write(frames.Exit, end) == nil {
		frames.Hangup(conn, fr, readerDone)
		return
	}
	conn.Close()
	<-readerDone
}

// writeBatch sends events as frames of JSON arrays, each at most frames.MaxOutput bytes.
func writeBatch(out *frames.Writer, batch []Event) error {
	frame := make([]byte, frames.HeaderSize, frames.HeaderSize+frames.MaxOutput)
	flush := func() error {
		if len(frame) == frames.HeaderSize {
			return nil
		}
		frame = append(frame, ']')
		err := out.WriteFramed(frames.Put(frame, frames.Watch))
		frame = frame[:frames.HeaderSize]
		return err
	}
	for _, e := range batch {
		data, _ := json.Marshal(e)
		if len(frame)+len(data)+2 > frames.HeaderSize+frames.MaxOutput {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(frame) == frames.HeaderSize {
			frame = append(frame, '[')
		} else {
			frame = append(frame, ',')
		}
		frame = append(frame, data...)
	}
	return flush()
}
