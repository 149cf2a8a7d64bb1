package processes

import (
	"encoding/json"
	"math"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/frames"
	"vibebox.dev/sandboxd/internal/input"
	"vibebox.dev/sandboxd/internal/pty"
)

// A terminal is a process on a pseudo-terminal (a shell, typically): one output (what the
// terminal shows) kept in its ring as sandboxd reads it, whoever is attached; input and resizes
// from any attacher go to it in order, through one bounded queue (package input).
//
// It ends when its shell exits: then every process it started is ended with the kill contract
// (its session, its marker, whoever holds its pts), what the terminal still holds is read, and
// the terminal is closed. Its deadline and its idle timeout (no input, resize or output for
// that long) end it the same way.
type terminal struct {
	input *input.Queue
	done  chan struct{} // closed once it has finished
	idle  time.Duration // 0: none

	// Under the process's mu.
	size      pty.Size
	active    time.Time // the last input, resize or output
	idleTimer *time.Timer
	idleEnded bool
}

// drainGrace is how long a terminal's output is still read once its processes were ended.
const drainGrace = time.Second

// TerminalCaps are the frames a terminal's attacher may send.
var TerminalCaps = frames.Caps{
	frames.Stdin: frames.MaxStdin, frames.Resize: frames.MaxResize, frames.Signal: frames.MaxSignal,
	frames.Reserved: frames.MaxReserved,
}

// TerminalInfo is what /terminal/list tells of a terminal.
type TerminalInfo struct {
	ExecID       string   `json:"exec_id"`
	Argv         []string `json:"argv"`
	User         string   `json:"user"`
	Pid          int      `json:"pid"`
	StartedAt    string   `json:"started_at"`
	Running      bool     `json:"running"`
	ExitCode     *int     `json:"exit_code"`
	TimedOut     bool     `json:"timed_out"`
	Idle         bool     `json:"idle"`
	FinishedAt   *string  `json:"finished_at"`
	Cols         int      `json:"cols"`
	Rows         int      `json:"rows"`
	Attached     int      `json:"attached"`
	OutputBytes  int64    `json:"output_bytes"`
	BufferedFrom int64    `json:"buffered_from"`
}

// Open starts a terminal: req runs on a new terminal of the given size (an empty Argv: the
// login shell); idle > 0 ends it after that long without input, resize or output. Errors:
// ErrExists, ErrFull, *command.StartError (nothing ran).
func (t *Table) Open(req command.Request, user string, size pty.Size, idle time.Duration) (*Process, error) {
	req.Stdin, req.Interactive, req.TTY = nil, false, &size
	term := &terminal{done: make(chan struct{}), idle: idle, size: size, active: time.Now()}
	p, err := t.start(req, user, term)
	if err != nil {
		return nil, err
	}
	master := p.live.Terminal
	go term.input.Run(term.done)
	p.mu.Lock()
	if idle > 0 {
		term.idleTimer = time.AfterFunc(idle, p.checkIdle)
	}
	p.mu.Unlock()

	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		p.pump(master, frames.Stdout, nil) // until EIO: nothing holds the pts any more
	}()
	go func() {
		select {
		case <-p.live.Exited():
		case <-p.live.Expired():
		}
		// The shell is gone: so is everything it started (a terminal's background jobs do not
		// outlive it). What the terminal still holds is read; a holder the kill missed cannot
		// hold the end up.
		p.live.Signal("KILL", false)
		master.SetReadDeadline(time.Now().Add(drainGrace))
		<-pumped
		out := p.live.Finish() // closes the master
		close(term.done)
		p.mu.Lock()
		if term.idleTimer != nil {
			term.idleTimer.Stop()
		}
		if term.idleEnded {
			out.ExitCode, out.OOMKilled, out.Signal = nil, false, 0
		}
		p.mu.Unlock()
		t.ended(p, out)
	}()
	return p, nil
}

// checkIdle ends the terminal once it has been idle for its idle timeout.
func (p *Process) checkIdle() {
	p.mu.Lock()
	term := p.term
	if !p.running || term.idleEnded {
		p.mu.Unlock()
		return
	}
	if left := term.idle - time.Since(term.active); left > 0 {
		term.idleTimer.Reset(left)
		p.mu.Unlock()
		return
	}
	term.idleEnded = true
	p.mu.Unlock()
	p.live.Signal("KILL", true) // as a deadline does
}

// touch records activity (input, a resize): the idle timeout starts again.
func (p *Process) touch() {
	p.mu.Lock()
	p.term.active = time.Now()
	p.mu.Unlock()
}

// terminalFrame acts on a frame of a terminal's attacher; false (a protocol error) drops it.
func (p *Process) terminalFrame(kind byte, payload []byte) bool {
	term := p.term
	var size pty.Size
	switch kind {
	case frames.Signal, frames.Reserved:
		return p.signalFrame(kind, payload)
	case frames.Resize:
		var ok bool
		if size, ok = parseResize(payload); !ok {
			return false
		}
	}
	select {
	case <-term.done:
		return true // nothing left to type into
	default:
	}
	p.touch()
	if kind == frames.Stdin {
		term.input.Push(payload, term.done)
		return true
	}
	term.input.Do(func() {
		// In order with the input before it; the kernel sends SIGWINCH on a change.
		if pty.SetSize(p.live.Terminal, size) == nil {
			p.mu.Lock()
			term.size = size
			p.mu.Unlock()
		}
	}, term.done)
	return true
}

// parseResize reads a resize frame: {"cols": n, "rows": n}, integers from 1 to pty.MaxSide.
func parseResize(payload []byte) (pty.Size, bool) {
	var fields struct{ Cols, Rows *float64 }
	if json.Unmarshal(payload, &fields) != nil || fields.Cols == nil || fields.Rows == nil {
		return pty.Size{}, false
	}
	cols, rows := *fields.Cols, *fields.Rows
	if cols != math.Trunc(cols) || rows != math.Trunc(rows) || cols < 1 || rows < 1 || cols > pty.MaxSide || rows > pty.MaxSide {
		return pty.Size{}, false
	}
	return pty.Size{Cols: int(cols), Rows: int(rows)}, true
}

// Terminals answers every terminal kept, oldest first.
func (t *Table) Terminals() []TerminalInfo {
	procs := t.sorted()
	infos := make([]TerminalInfo, 0, len(procs))
	for _, p := range procs {
		if p.term != nil {
			infos = append(infos, p.TerminalInfo())
		}
	}
	return infos
}

// TerminalInfo answers what /terminal/list tells of p, a terminal.
func (p *Process) TerminalInfo() TerminalInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	output, _ := p.ring.Counts()
	info := TerminalInfo{
		ExecID: p.ExecID, Argv: p.Argv, User: p.User, Pid: p.Pid, StartedAt: p.StartedAt.UTC().Format(TimeFormat),
		Running: p.running, Cols: p.term.size.Cols, Rows: p.term.size.Rows, Attached: p.attached,
		OutputBytes: output, BufferedFrom: p.ring.Start(),
	}
	if !p.running {
		info.ExitCode, info.TimedOut, info.Idle = p.outcome.ExitCode, p.outcome.TimedOut, p.term.idleEnded
		at := p.finishedAt.UTC().Format(TimeFormat)
		info.FinishedAt = &at
	}
	return info
}

// IsTerminal answers whether p is a terminal.
func (p *Process) IsTerminal() bool { return p.term != nil }
