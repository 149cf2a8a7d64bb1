// Package frames is the framing of sandboxd's streams (POST /stream, /process/attach,
// /terminal/attach and /watch): once
// the 200 is sent, the connection carries frames both ways, each a type byte, a payload length
// (4 bytes, big-endian) and the payload.
//
// sandboxd sends Stdout, Stderr, Lost and, last, Exit; the server sends Stdin, CloseStdin,
// Signal, Resize (terminals) and Reserved. What the server sends is read strictly: a type the stream does not take,
// or a payload over its type's cap, is a protocol error, and a frame begun must be complete
// within a time limit (a connection may be idle for hours between frames, never inside one).
package frames

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Frame types.
const (
	Stdout     byte = 'o' // sandboxd → server: stdout bytes
	Stderr     byte = 'e' // sandboxd → server: stderr bytes
	Lost       byte = 'l' // sandboxd → server: JSON {"lost": bytes} (attach: output no longer kept)
	Watch      byte = 'w' // sandboxd → server: a JSON array of file watch events (POST /watch)
	Exit       byte = 'x' // sandboxd → server: JSON exit status, the last frame
	Stdin      byte = 'i' // server → sandboxd: stdin bytes
	CloseStdin byte = 'c' // server → sandboxd: close stdin (empty)
	Signal     byte = 's' // server → sandboxd: a signal name (INT, TERM, KILL...)
	Resize     byte = 'r' // server → sandboxd: JSON {"cols", "rows"} (terminals)
	Reserved   byte = 'k' // server → sandboxd: reserved; read and ignored
)

// HeaderSize is the bytes before a payload.
const HeaderSize = 5

// Caps.
const (
	MaxOutput   = 64 << 10 // payload of an output frame sandboxd sends
	MaxStdin    = 1 << 20  // payload of a stdin frame
	MaxSignal   = 16       // payload of a signal frame
	MaxResize   = 64       // payload of a resize frame
	MaxReserved = 64 << 10 // payload of a reserved frame
)

// Stall is how long a frame, once begun, may take to arrive whole (a variable for the tests).
var Stall = 60 * time.Second

// ErrProtocol is what the peer did wrong: a type the stream does not take, an oversized frame.
var ErrProtocol = errors.New("protocol error")

// Caps answers the largest payload the stream takes for each type it takes.
type Caps map[byte]int

// Reader reads frames from a connection.
type Reader struct {
	conn  net.Conn
	r     *bufio.Reader
	caps  Caps
	stall time.Duration
	head  [HeaderSize - 1]byte

	mu   sync.Mutex
	idle time.Time // zero: wait for a frame as long as it takes
}

// NewReader answers a Reader of conn, through r (which holds what was read past the request),
// that takes the types in caps, each up to its cap, and gives a begun frame `stall` to arrive.
func NewReader(conn net.Conn, r *bufio.Reader, caps Caps, stall time.Duration) *Reader {
	return &Reader{conn: conn, r: r, caps: caps, stall: stall}
}

// Next reads one frame. Between frames it waits as long as it takes; once a frame's first byte
// is in, the rest must come within the stall time. Errors: ErrProtocol (wrapped), or the
// connection's (io.EOF, a deadline...).
func (fr *Reader) Next() (byte, []byte, error) {
	fr.mu.Lock()
	idle := fr.idle
	err := fr.conn.SetReadDeadline(idle)
	fr.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	kind, err := fr.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	limit, ok := fr.caps[kind]
	if !ok {
		return kind, nil, fmt.Errorf("%w: frame type %q", ErrProtocol, kind)
	}
	stall := time.Now().Add(fr.stall)
	fr.mu.Lock()
	if !fr.idle.IsZero() && fr.idle.Before(stall) {
		stall = fr.idle
	}
	fr.conn.SetReadDeadline(stall)
	fr.mu.Unlock()
	if _, err := io.ReadFull(fr.r, fr.head[:]); err != nil {
		return kind, nil, noEOF(err)
	}
	n := binary.BigEndian.Uint32(fr.head[:])
	if int64(n) > int64(limit) {
		return kind, nil, fmt.Errorf("%w: a %q frame of %d bytes (at most %d)", ErrProtocol, kind, n, limit)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(fr.r, payload); err != nil {
		return kind, nil, noEOF(err)
	}
	return kind, payload, nil
}

// Linger bounds every read from now on by `until`, the frame being read included: once its
// stream has ended, sandboxd reads what the server still sends until the server closes, for a
// while (closing with unread data would reset the connection and could lose the last frame).
func (fr *Reader) Linger(until time.Time) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.idle = until
	fr.conn.SetReadDeadline(until)
}

// noEOF: a connection that ends inside a frame ended early.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes frames to a connection, one at a time.
type Writer struct {
	mu   sync.Mutex
	conn net.Conn
}

// NewWriter answers a Writer of conn.
func NewWriter(conn net.Conn) *Writer { return &Writer{conn: conn} }

// Put fills in the header of a frame whose payload is buf[HeaderSize:].
func Put(buf []byte, kind byte) []byte {
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:HeaderSize], uint32(len(buf)-HeaderSize))
	return buf
}

// WriteFramed writes a frame made by Put (one write: header and payload together).
func (w *Writer) WriteFramed(frame []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.conn.Write(frame)
	return err
}

// Write writes a frame of the given type and payload.
func (w *Writer) Write(kind byte, payload []byte) error {
	frame := make([]byte, HeaderSize+len(payload))
	copy(frame[HeaderSize:], payload)
	return w.WriteFramed(Put(frame, kind))
}

// ExitStatus is the payload of an Exit frame.
type ExitStatus struct {
	ExecID      string `json:"exec_id"`
	ExitCode    *int   `json:"exit_code"`
	TimedOut    bool   `json:"timed_out"`
	OOMKilled   bool   `json:"oom_killed"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
	DurationMS  int64  `json:"duration_ms"`
	// Terminals only: the idle timeout ended it (exit_code null); the signal that ended its shell.
	Idle   bool   `json:"idle,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// LostOutput is the payload of a Lost frame.
type LostOutput struct {
	Lost int64 `json:"lost"`
}

// Linger is how long sandboxd reads what the server still sends after the last frame.
const Linger = 5 * time.Second

// Hangup ends a connection after its last frame: it sends FIN (when the connection can half
// close), lets the frame reader, which runs until the connection fails, read until the server
// closes or Linger passes, then closes.
func Hangup(conn net.Conn, fr *Reader, readerDone <-chan struct{}) {
	if half, ok := conn.(interface{ CloseWrite() error }); ok {
		half.CloseWrite()
	}
	fr.Linger(time.Now().Add(Linger))
	<-readerDone
	conn.Close()
}
