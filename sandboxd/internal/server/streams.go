package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/pty"
	"vibebox.dev/sandboxd/internal/stream"
)

// StreamType is the content type of a 200 that turns the connection into frames.
const StreamType = "application/vnd.vibebox.stream"

// streamRequest is a /stream body.
type streamRequest struct {
	commandFields
	Stdin *bool `json:"stdin"` // true: the server sends stdin frames; else /dev/null
}

// startError answers a command that did not start (nothing ran): 409 for an exec id in use,
// 422 when it could not start.
func (s *Server) startError(w http.ResponseWriter, execID string, err error) {
	var conflict *command.ConflictError
	var notStarted *command.StartError
	switch {
	case errors.As(err, &conflict), errors.Is(err, processes.ErrExists):
		s.fail(w, http.StatusConflict, err.Error())
	case errors.Is(err, processes.ErrFull):
		s.fail(w, http.StatusTooManyRequests, err.Error())
	case errors.As(err, &notStarted):
		s.fail(w, http.StatusUnprocessableEntity, err.Error())
	default:
		s.cfg.Log.Printf("%s: %v", execID, err)
		s.fail(w, http.StatusInternalServerError, "sandboxd failed")
	}
}

// openStream sends the 200 of a stream and takes the connection over from net/http: from now
// on it carries frames. The answer is signed over "stream" where others sign their body's digest.
func (s *Server) openStream(w http.ResponseWriter, c *conn, execID string, extra http.Header) (net.Conn, *bufio.Reader, error) {
	netConn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	netConn.SetDeadline(time.Now().Add(writeTimeout))
	header := http.Header{
		"Content-Type":        {StreamType},
		"X-VibeBox-Container": {s.cfg.Container},
		"X-VibeBox-Signature": {s.sign("answer", s.cfg.Container, c.serverNonce, execID, "stream")},
		"Connection":          {"close"},
		"Cache-Control":       {"no-store"},
	}
	for name, values := range extra {
		header[name] = values
	}
	rw.WriteString("HTTP/1.1 200 OK\r\n")
	header.Write(rw) // http.Header.Write turns any newline in a value into a space
	rw.WriteString("\r\n")
	err = rw.Flush()
	netConn.SetDeadline(time.Time{})
	return netConn, rw.Reader, err
}

// commandOf decodes a command's body into req (whose command fields are fields) and resolves its
// user: the command and the user's spec, or false once it has answered 400 or 422.
func (s *Server) commandOf(
	w http.ResponseWriter, body []byte, execID string, req any, fields *commandFields,
) (command.Request, string, bool) {
	if err := json.Unmarshal(body, req); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return command.Request{}, "", false
	}
	run, err := fields.request()
	if err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return command.Request{}, "", false
	}
	run.ExecID = execID
	var spec string
	if run.User, spec, err = s.user(fields.User); err != nil {
		s.fail(w, http.StatusUnprocessableEntity, err.Error())
		return command.Request{}, "", false
	}
	return run, spec, true
}

func (s *Server) stream(w http.ResponseWriter, c *conn, body []byte, execID string) {
	var req streamRequest
	run, _, ok := s.commandOf(w, body, execID, &req, &req.commandFields)
	if !ok {
		return
	}
	run.Interactive = req.Stdin != nil && *req.Stdin
	// The command exists before the 200: a signal sent right after it finds it.
	live, err := s.cfg.Runner.Start(run)
	if err != nil {
		s.startError(w, execID, err)
		return
	}
	conn, br, _ := s.openStream(w, c, execID, nil)
	if conn == nil {
		live.Drop()
		return
	}
	// A failed header write fails the first frame too, which ends the command.
	stream.Serve(live, conn, br)
}

func (s *Server) processStart(w http.ResponseWriter, c *conn, body []byte, execID string) {
	var req commandFields
	run, spec, ok := s.commandOf(w, body, execID, &req, &req)
	if !ok {
		return
	}
	p, err := s.cfg.Processes.Start(run, spec)
	if err != nil {
		s.startError(w, execID, err)
		return
	}
	s.json(w, c, http.StatusOK, execID, map[string]any{
		"exec_id": execID, "pid": p.Pid, "started_at": p.StartedAt.UTC().Format(processes.TimeFormat),
	})
}

func (s *Server) processList(w http.ResponseWriter, c *conn, execID string) {
	body, _ := json.Marshal(map[string]any{"processes": s.cfg.Processes.List()})
	s.answerSigned(w, c, http.StatusOK, "application/json", execID, true, body)
}

// maxOffset bounds an attach offset (JSON numbers beyond 2^53 are not exact anyway).
const maxOffset = 1 << 53

// attachFrom reads an attach's `from`: "start" (the default), "end" or an offset (an integer
// from 0 to the output's end). ok is false when it is none of them.
func attachFrom(raw json.RawMessage, p *processes.Process) (int64, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, true
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		switch name {
		case "start":
			return 0, true
		case "end":
			return p.End(), true
		}
		return 0, false
	}
	var offset float64
	if json.Unmarshal(raw, &offset) != nil || offset < 0 || offset > maxOffset || offset != math.Trunc(offset) {
		return 0, false
	}
	if int64(offset) > p.End() {
		return 0, false // beyond what the process has written
	}
	return int64(offset), true
}

// attach answers /process/attach and /terminal/attach (table: the processes or the terminals).
func (s *Server) attach(w http.ResponseWriter, c *conn, table *processes.Table, fields map[string]json.RawMessage, execID string) {
	p := table.Get(execID)
	if p == nil {
		s.fail(w, http.StatusNotFound, notFound(table == s.cfg.Terminals))
		return
	}
	from, ok := attachFrom(fields["from"], p)
	if !ok {
		s.fail(w, http.StatusBadRequest, `invalid request: from is "start", "end" or an offset within the output`)
		return
	}
	// Where the attacher starts: with the lost counts and the bytes that come, the server knows
	// the absolute offset of everything it gets (to attach again from there).
	offset := http.Header{"X-VibeBox-Offset": {strconv.FormatInt(from, 10)}}
	conn, br, _ := s.openStream(w, c, execID, offset)
	if conn == nil {
		return
	}
	p.Attach(from, conn, br) // a failed header write fails its first frame: it only detaches
}

// processKill answers /process/kill and /terminal/kill (table: the processes or the terminals).
func (s *Server) processKill(w http.ResponseWriter, c *conn, table *processes.Table, fields map[string]json.RawMessage, execID string) {
	name := signalName(fields)
	if name == "" {
		s.fail(w, http.StatusBadRequest, "unknown signal")
		return
	}
	p := table.Get(execID)
	if p == nil {
		s.fail(w, http.StatusNotFound, notFound(table == s.cfg.Terminals))
		return
	}
	count, err := p.Signal(name, truthy(fields["sweep"]))
	if err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	s.json(w, c, http.StatusOK, execID, map[string]any{"exec_id": execID, "signalled": count})
}

func notFound(terminal bool) string {
	if terminal {
		return "no such terminal"
	}
	return "no such process"
}

// terminalRequest is a /terminal/open body: a command's fields (argv optional: the login
// shell; timeout optional: none), the window size and the idle timeout.
type terminalRequest struct {
	commandFields
	Cols        *float64 `json:"cols"`
	Rows        *float64 `json:"rows"`
	IdleTimeout *float64 `json:"idle_timeout"` // seconds; absent, null or 0: none
}

// defaultSize is a terminal's when the request names none (a VT100's).
var defaultSize = pty.Size{Cols: 80, Rows: 24}

// side reads cols or rows: absent or null is def, else an integer from 1 to pty.MaxSide.
func side(value *float64, def int) (int, bool) {
	if value == nil {
		return def, true
	}
	v := *value
	if v != math.Trunc(v) || v < 1 || v > pty.MaxSide {
		return 0, false
	}
	return int(v), true
}

func (s *Server) terminalOpen(w http.ResponseWriter, c *conn, body []byte, execID string) {
	req := terminalRequest{commandFields: commandFields{terminal: true}}
	run, spec, ok := s.commandOf(w, body, execID, &req, &req.commandFields)
	if !ok {
		return
	}
	cols, okCols := side(req.Cols, defaultSize.Cols)
	rows, okRows := side(req.Rows, defaultSize.Rows)
	var idle time.Duration
	okIdle := req.IdleTimeout == nil || *req.IdleTimeout >= 0
	if req.IdleTimeout != nil && okIdle {
		idle = time.Duration(min(*req.IdleTimeout, maxTimeout) * float64(time.Second))
	}
	if !okCols || !okRows || !okIdle {
		s.fail(w, http.StatusBadRequest, "invalid request: cols and rows are integers from 1 to 1000, idle_timeout 0 or more")
		return
	}
	p, err := s.cfg.Terminals.Open(run, spec, pty.Size{Cols: cols, Rows: rows}, idle)
	if err != nil {
		s.startError(w, execID, err)
		return
	}
	s.json(w, c, http.StatusOK, execID, map[string]any{
		"exec_id": execID, "pid": p.Pid, "started_at": p.StartedAt.UTC().Format(processes.TimeFormat),
	})
}

func (s *Server) terminalList(w http.ResponseWriter, c *conn, execID string) {
	body, _ := json.Marshal(map[string]any{"terminals": s.cfg.Terminals.Terminals()})
	s.answerSigned(w, c, http.StatusOK, "application/json", execID, true, body)
}
