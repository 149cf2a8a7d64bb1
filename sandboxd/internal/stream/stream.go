// Package stream runs a streamed command (POST /stream) over a connection that carries frames
// both ways (package frames): the command's output as it is produced, the server's stdin and
// signals as they come, and one exit frame at the end.
//
// Nothing is buffered without bound. Output: one frame per stream in flight, so when the server
// reads slowly, sandboxd stops reading the pipes and the command blocks on its writes
// (backpressure). Stdin: up to StdinBuffer bytes wait for the command to read them; a stdin
// frame that finds them full waits (with no frame read behind it) until the command reads
// (package input). The server going away (EOF, a reset, a frame begun and not finished within
// frames.Stall, a protocol error) ends the command with the kill contract.
package stream

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/frames"
	"vibebox.dev/sandboxd/internal/input"
)

// StdinBuffer is how many bytes of stdin may wait for the command to read them before sandboxd
// stops reading frames (one more frame may be in, so at most StdinBuffer + frames.MaxStdin).
const StdinBuffer = input.Buffer

// FinalWrite bounds sending the frames that follow the command's end (or its deadline): a
// server that reads nothing then is dropped.
const FinalWrite = 60 * time.Second

// Caps are the frames a stream takes from the server.
var Caps = frames.Caps{
	frames.Stdin: frames.MaxStdin, frames.CloseStdin: 0, frames.Signal: frames.MaxSignal,
	frames.Reserved: frames.MaxReserved,
}

type session struct {
	live       *command.Live
	conn       net.Conn
	w          *frames.Writer
	fr         *frames.Reader
	stdin      *input.Queue  // nil: the command's stdin is /dev/null
	done       chan struct{} // closed once the command has finished
	finished   atomic.Bool
	abortOnce  sync.Once
	readerDone chan struct{}
}

// Serve runs the stream of a started command on conn, a connection whose 200 has been sent; br
// holds what was read from it past the request. It returns once the command has finished and
// the connection is closed.
func Serve(live *command.Live, conn net.Conn, br *bufio.Reader) {
	s := &session{
		live: live, conn: conn, w: frames.NewWriter(conn), done: make(chan struct{}),
		fr: frames.NewReader(conn, br, Caps, frames.Stall), readerDone: make(chan struct{}),
	}
	if live.Stdin != nil {
		s.stdin = input.New(live.Stdin, true)
		go s.stdin.Run(s.done)
	}
	go s.readFrames()
	go func() {
		// Past the deadline the command is ended: what is left to send must go out soon.
		select {
		case <-live.Expired():
			conn.SetWriteDeadline(time.Now().Add(FinalWrite))
		case <-s.done:
		}
	}()
	var counts [2]int64
	var pumps sync.WaitGroup
	pumps.Add(2)
	go s.pump(live.Stdout, frames.Stdout, &counts[0], &pumps)
	go s.pump(live.Stderr, frames.Stderr, &counts[1], &pumps)
	pumps.Wait()

	out := live.Finish()
	s.finished.Store(true)
	close(s.done)
	status, _ := json.Marshal(frames.ExitStatus{
		ExecID: live.ExecID, ExitCode: out.ExitCode, TimedOut: out.TimedOut, OOMKilled: out.OOMKilled,
		StdoutBytes: counts[0], StderrBytes: counts[1], DurationMS: out.Duration.Milliseconds(),
	})
	conn.SetWriteDeadline(time.Now().Add(FinalWrite))
	if s.w.Write(frames.Exit, status) == nil {
		frames.Hangup(conn, s.fr, s.readerDone)
		return
	}
	conn.Close()
	<-s.readerDone
}

// abort ends the connection and the command (unless it has finished): the server went away or
// broke the protocol. The connection goes first, so no exit frame follows.
func (s *session) abort() {
	s.abortOnce.Do(func() {
		s.conn.Close()
		if !s.finished.Load() {
			s.live.Abort()
		}
	})
}

// pump sends one output of the command as frames until it ends. Once the connection fails, it
// reads on (and drops) until the end, so that the command, killed, is seen to finish.
func (s *session) pump(f *os.File, kind byte, count *int64, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, frames.HeaderSize+frames.MaxOutput)
	broken := false
	for {
		n, err := f.Read(buf[frames.HeaderSize:])
		if n > 0 {
			*count += int64(n)
			if !broken && s.w.WriteFramed(frames.Put(buf[:frames.HeaderSize+n], kind)) != nil {
				broken = true
				s.abort()
			}
		}
		if err != nil {
			return // EOF: every holder closed it; or the deadline's grace ran out
		}
	}
}

// readFrames takes the server's frames until the connection ends. Before the command has
// finished, that end (or a protocol error) kills it.
func (s *session) readFrames() {
	defer close(s.readerDone)
	for {
		kind, payload, err := s.fr.Next()
		if err != nil {
			s.abort()
			return
		}
		if s.finished.Load() {
			continue // the exit frame is on its way: nothing left to act on
		}
		switch kind {
		case frames.Stdin:
			if s.stdin != nil {
				s.stdin.Push(payload, s.done)
			}
		case frames.CloseStdin:
			if s.stdin != nil {
				s.stdin.Close()
			}
		case frames.Signal:
			name := string(payload)
			if _, ok := command.Signals[name]; !ok {
				s.abort()
				return
			}
			s.live.Signal(name, name == "KILL")
		case frames.Reserved:
		}
	}
}
