// Package processes keeps sandboxd's background processes: commands that run on their own
// (stdin /dev/null) while any number of clients attach to their output and detach, so that the
// server holds none of their state and a restart of the server loses nothing. Terminals
// (terminal.go) are processes too: a shell on a terminal, whose attachers also type and resize.
//
// Each process's output goes into its own Ring as sandboxd reads it, whoever is attached:
// nothing a client does (or does not do) slows the process. An attacher follows the output at
// its own pace from an offset; when it falls behind what the ring keeps, it is told how much it
// lost and goes on from the oldest byte kept. A finished process is kept, output included, for
// a while (Config.Keep) or until MaxFinished newer ones have finished.
package processes

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/frames"
	"vibebox.dev/sandboxd/internal/input"
)

// Config sizes a Table.
type Config struct {
	MaxLive     int           // processes running at once (--max-processes)
	Buffer      int           // bytes of output kept per process (--process-buffer)
	Keep        time.Duration // how long a finished process is kept (--process-keep)
	MaxFinished int           // finished processes kept at most (oldest dropped first)
}

// Defaults are sandboxd's flags' defaults.
var Defaults = Config{MaxLive: 64, Buffer: 1 << 20, Keep: time.Hour, MaxFinished: 256}

// TerminalDefaults are sandboxd's flags' defaults for terminals.
var TerminalDefaults = Config{MaxLive: 32, Buffer: 256 << 10, Keep: time.Hour, MaxFinished: 256}

// Errors of Start (nothing ran).
var (
	ErrExists = errors.New("a process with this exec id exists")
	ErrFull   = errors.New("too many processes are running")
)

// AttachWrite bounds each frame sent to an attacher: one that reads nothing for this long is
// dropped (it only detaches).
const AttachWrite = 60 * time.Second

// Caps are the frames an attacher may send: signals (and the reserved type), no stdin.
var Caps = frames.Caps{frames.Signal: frames.MaxSignal, frames.Reserved: frames.MaxReserved}

// Table is the background processes (or the terminals) of one sandboxd.
type Table struct {
	runner *command.Runner
	cfg    Config

	mu    sync.Mutex
	procs map[string]*Process // placeholders (nil live) while starting
	live  int                 // running or starting
}

// NewTable answers an empty Table whose processes run with runner.
func NewTable(runner *command.Runner, cfg Config) *Table {
	return &Table{runner: runner, cfg: cfg, procs: map[string]*Process{}}
}

// Process is one background process.
type Process struct {
	ExecID    string
	Argv      []string
	User      string // as the request named it ("": sandboxd's --user)
	Pid       int
	StartedAt time.Time

	live *command.Live
	term *terminal // nil: a background process

	mu         sync.Mutex
	ring       *Ring
	running    bool
	outcome    command.Outcome
	finishedAt time.Time
	changed    chan struct{} // closed (and replaced) whenever output comes or the process ends
	attached   int
}

// Info is what /process/list tells of a process.
type Info struct {
	ExecID       string   `json:"exec_id"`
	Argv         []string `json:"argv"`
	User         string   `json:"user"`
	Pid          int      `json:"pid"`
	StartedAt    string   `json:"started_at"`
	Running      bool     `json:"running"`
	ExitCode     *int     `json:"exit_code"`
	TimedOut     bool     `json:"timed_out"`
	OOMKilled    bool     `json:"oom_killed"`
	FinishedAt   *string  `json:"finished_at"`
	StdoutBytes  int64    `json:"stdout_bytes"`
	StderrBytes  int64    `json:"stderr_bytes"`
	BufferedFrom int64    `json:"buffered_from"`
}

// TimeFormat is how times are written (in UTC): RFC 3339 with microseconds, which Python's
// datetime.fromisoformat reads.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Start starts a background process: req's stdin is /dev/null whatever it says. Errors:
// ErrExists, ErrFull, *command.StartError (nothing ran).
func (t *Table) Start(req command.Request, user string) (*Process, error) {
	req.Stdin, req.Interactive, req.TTY = nil, false, nil
	p, err := t.start(req, user, nil)
	if err != nil {
		return nil, err
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go p.pump(p.live.Stdout, frames.Stdout, &pumps)
	go p.pump(p.live.Stderr, frames.Stderr, &pumps)
	go func() {
		pumps.Wait()
		t.ended(p, p.live.Finish())
	}()
	return p, nil
}

// start starts a process (or a terminal: term) and puts it in the table, within the limits.
func (t *Table) start(req command.Request, user string, term *terminal) (*Process, error) {
	t.mu.Lock()
	t.pruneLocked(time.Now())
	if _, taken := t.procs[req.ExecID]; taken {
		t.mu.Unlock()
		return nil, ErrExists
	}
	if t.live >= t.cfg.MaxLive {
		t.mu.Unlock()
		return nil, ErrFull
	}
	placeholder := &Process{}
	t.procs[req.ExecID] = placeholder
	t.live++
	t.mu.Unlock()

	live, err := t.runner.Start(req)
	if err != nil {
		t.mu.Lock()
		delete(t.procs, req.ExecID)
		t.live--
		t.mu.Unlock()
		var conflict *command.ConflictError
		if errors.As(err, &conflict) {
			return nil, ErrExists // an exec or stream with this id runs
		}
		return nil, err
	}
	if term != nil {
		term.input = input.New(live.Terminal, false) // before anyone can attach
	}
	p := &Process{
		ExecID: req.ExecID, Argv: append([]string(nil), live.Argv...), User: user, Pid: live.Pid,
		StartedAt: live.Started, live: live, term: term, ring: NewRing(t.cfg.Buffer), running: true,
		changed: make(chan struct{}),
	}
	t.mu.Lock()
	t.procs[req.ExecID] = p
	t.mu.Unlock()
	return p, nil
}

// ended records how p ended, for its attachers and the table.
func (t *Table) ended(p *Process, out command.Outcome) {
	p.mu.Lock()
	p.running, p.outcome, p.finishedAt = false, out, time.Now()
	p.ring.Shrink()
	p.notifyLocked()
	p.mu.Unlock()
	t.mu.Lock()
	t.live--
	t.pruneLocked(time.Now())
	t.mu.Unlock()
	time.AfterFunc(t.cfg.Keep, t.prune) // when it expires
}

// pump reads one output of the process into its ring until the output ends.
func (p *Process) pump(f *os.File, stream byte, wg *sync.WaitGroup) {
	if wg != nil {
		defer wg.Done()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.ring.Write(stream, buf[:n])
			if p.term != nil {
				p.term.active = time.Now()
			}
			p.notifyLocked()
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (t *Table) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(time.Now())
}

// pruneLocked drops the finished processes kept longer than Keep, then the oldest finished
// ones past MaxFinished.
func (t *Table) pruneLocked(now time.Time) {
	var finished []*Process
	for id, p := range t.procs {
		if p.live == nil {
			continue // starting
		}
		p.mu.Lock()
		running, at := p.running, p.finishedAt
		p.mu.Unlock()
		if running {
			continue
		}
		if now.Sub(at) >= t.cfg.Keep {
			delete(t.procs, id)
			continue
		}
		finished = append(finished, p)
	}
	if extra := len(finished) - t.cfg.MaxFinished; extra > 0 {
		sort.Slice(finished, func(i, j int) bool { return finished[i].finishedAt.Before(finished[j].finishedAt) })
		for _, p := range finished[:extra] {
			delete(t.procs, p.ExecID)
		}
	}
}

// Get answers a process (nil when there is none by that id).
func (t *Table) Get(id string) *Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(time.Now())
	if p := t.procs[id]; p != nil && p.live != nil {
		return p
	}
	return nil
}

// List answers every process kept, oldest first.
func (t *Table) List() []Info {
	procs := t.sorted()
	infos := make([]Info, len(procs))
	for i, p := range procs {
		infos[i] = p.Info()
	}
	return infos
}

// sorted answers every process kept, oldest first.
func (t *Table) sorted() []*Process {
	t.mu.Lock()
	t.pruneLocked(time.Now())
	procs := make([]*Process, 0, len(t.procs))
	for _, p := range t.procs {
		if p.live != nil {
			procs = append(procs, p)
		}
	}
	t.mu.Unlock()
	sort.Slice(procs, func(i, j int) bool {
		if !procs[i].StartedAt.Equal(procs[j].StartedAt) {
			return procs[i].StartedAt.Before(procs[j].StartedAt)
		}
		return procs[i].ExecID < procs[j].ExecID
	})
	return procs
}

// Info answers what /process/list tells of p.
func (p *Process) Info() Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	stdout, stderr := p.ring.Counts()
	info := Info{
		ExecID: p.ExecID, Argv: p.Argv, User: p.User, Pid: p.Pid, StartedAt: p.StartedAt.UTC().Format(TimeFormat),
		Running: p.running, StdoutBytes: stdout, StderrBytes: stderr, BufferedFrom: p.ring.Start(),
	}
	if !p.running {
		info.ExitCode, info.TimedOut, info.OOMKilled = p.outcome.ExitCode, p.outcome.TimedOut, p.outcome.OOMKilled
		at := p.finishedAt.UTC().Format(TimeFormat)
		info.FinishedAt = &at
	}
	return info
}

// End answers the offset after the newest output byte (what "end" attaches from).
func (p *Process) End() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ring.End()
}

// Signal signals the process (see command.Live.Signal).
func (p *Process) Signal(name string, sweep bool) (int, error) {
	return p.live.Signal(name, sweep)
}

// exitStatus is the payload of the exit frame (p.mu held, the process finished).
func (p *Process) exitStatusLocked() []byte {
	stdout, stderr := p.ring.Counts()
	exit := frames.ExitStatus{
		ExecID: p.ExecID, ExitCode: p.outcome.ExitCode, TimedOut: p.outcome.TimedOut, OOMKilled: p.outcome.OOMKilled,
		StdoutBytes: stdout, StderrBytes: stderr, DurationMS: p.outcome.Duration.Milliseconds(),
	}
	if p.term != nil {
		exit.Idle = p.term.idleEnded
		if p.outcome.Signal != 0 {
			exit.Signal = command.SignalName(p.outcome.Signal)
		}
	}
	status, _ := json.Marshal(exit)
	return status
}

// Attach streams the process's output from offset `from` on conn (its 200 sent; br holds what
// was read past the request): a Lost frame first when from is older than what is kept, the
// output kept from there, live output as it comes, then the exit frame once the process has
// finished and all its output went out. The attacher's frames are signals for the process (and
// for a terminal, input and resizes). Closing the connection, a protocol error, or any other
// error only detaches. It returns once conn is closed.
func (p *Process) Attach(from int64, conn net.Conn, br *bufio.Reader) {
	if p.term != nil {
		p.follow(from, conn, frames.NewReader(conn, br, TerminalCaps, frames.Stall), p.terminalFrame)
		return
	}
	p.follow(from, conn, frames.NewReader(conn, br, Caps, frames.Stall), p.signalFrame)
}

// signalFrame acts on a signal frame (the reserved type is ignored); false for an unknown signal.
func (p *Process) signalFrame(kind byte, payload []byte) bool {
	if kind == frames.Signal {
		name := string(payload)
		if _, ok := command.Signals[name]; !ok {
			return false
		}
		p.Signal(name, name == "KILL")
	}
	return true
}

// follow sends p's output to an attacher (see Attach) while handle takes each frame it sends;
// handle answers false (a protocol error) to drop the attacher.
func (p *Process) follow(from int64, conn net.Conn, fr *frames.Reader, handle func(byte, []byte) bool) {
	p.mu.Lock()
	p.attached++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.attached--
		p.mu.Unlock()
	}()
	w := frames.NewWriter(conn)
	gone := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			kind, payload, err := fr.Next()
			if err != nil || !handle(kind, payload) {
				close(gone)
				conn.Close()
				return
			}
		}
	}()
	send := func(frame []byte) bool {
		conn.SetWriteDeadline(time.Now().Add(AttachWrite))
		return w.WriteFramed(frame) == nil
	}
	buf := make([]byte, frames.HeaderSize+frames.MaxOutput)
	cursor := from
	for {
		p.mu.Lock()
		if start := p.ring.Start(); cursor < start {
			lost, _ := json.Marshal(frames.LostOutput{Lost: start - cursor})
			cursor = start
			p.mu.Unlock()
			if !send(frames.Put(append(buf[:frames.HeaderSize], lost...), frames.Lost)) {
				break
			}
			continue
		}
		if cursor < p.ring.End() {
			stream, n := p.ring.Read(cursor, buf[frames.HeaderSize:])
			p.mu.Unlock()
			cursor += int64(n)
			if !send(frames.Put(buf[:frames.HeaderSize+n], stream)) {
				break
			}
			continue
		}
		if !p.running {
			status := p.exitStatusLocked()
			p.mu.Unlock()
			if send(frames.Put(append(buf[:frames.HeaderSize], status...), frames.Exit)) {
				frames.Hangup(conn, fr, readerDone)
				return
			}
			break
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-gone:
			conn.Close()
			<-readerDone
			return
		}
	}
	conn.Close()
	<-readerDone
}
