// Package server answers the exec protocol of sandbox_agent.py, which docker_agent.py speaks.
//
//   - GET /hello?nonce=<server nonce> answers {container, nonce: <sandboxd nonce>, proof}, proof =
//     HMAC(token, "hello\n<container>\n<server nonce>\n<sandboxd nonce>"): the server checks it
//     before it sends anything else, so a command never goes to another sandbox.
//   - POST /exec (and the POSTs of streams.go, files.go and watch.go) on the same connection
//     carries X-VibeBox-Container and X-VibeBox-Signature = HMAC(token, "<kind>\n<container>\n
//     <sandboxd nonce>\n<sha256 of body>"), kind being the path without its leading slash
//     ("exec", "process/kill"); a sandboxd nonce is good for one request (no replays).
//   - 200 answers to them carry X-VibeBox-Signature = HMAC(token, "answer\n<container>\n<server
//     nonce>\n<exec id>\n<sha256 of body>"). /exec answers a JSON header line, then the kept
//     stdout and stderr bytes.
//   - A request may carry X-VibeBox-Nonce, a fresh server nonce (16 to 128 hex digits): its
//     signed fixed-length answer then uses that nonce, and hands out the next sandboxd nonce in
//     X-VibeBox-Next-Nonce, signed with it: HMAC(token, "answer\n<container>\n<server nonce>\n
//     <exec id>\n<sha256 of body>\n<next nonce>"). The next request on the same connection signs
//     with that nonce, with no hello in between (the server keeps such connections open).
//   - Any other GET is a health check: 200 {"ok": true}.
//
// Anyone in the sandbox can connect: every size and wait is bounded.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
	"vibebox.dev/sandboxd/internal/watch"
)

const (
	MaxRequest        = 64 << 20 // bytes of a request body of /exec
	MaxCommandRequest = 4 << 20  // bytes of a request body of the other endpoints
	MaxConnections    = 256      // open at once; more wait in the kernel's backlog
	maxHeaderBytes    = 16 << 10
	readHeaderTimeout = 10 * time.Second
	bodyTimeout       = 60 * time.Second // to receive a request's body
	writeTimeout      = 60 * time.Second // to send an answer, once it is ready
	idleTimeout       = 60 * time.Second // between requests on one connection
	maxTimeout        = 1e8              // seconds: a longer command timeout is this one
	defaultOutput     = 10 << 20         // bytes kept per stream when a request names no limit
)

// Config is what the server needs.
type Config struct {
	Token       string
	Container   string
	Runner      *command.Runner
	Processes   *processes.Table                 // background processes; nil: a table with the defaults
	Terminals   *processes.Table                 // terminals; nil: a table with the defaults
	Watches     *watch.Table                     // file watches (watch.go); nil: a table with the defaults
	DefaultUser string                           // --user: commands run as it unless a request names another
	Lookup      func(string) (users.User, error) // resolves a user spec
	Log         *log.Logger                      // errors worth an operator's look; nil: none
}

// Server is the protocol's http.Handler.
type Server struct{ cfg Config }

// New answers a Server.
func New(cfg Config) *Server {
	if cfg.Lookup == nil {
		cfg.Lookup = users.Lookup
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.Processes == nil {
		cfg.Processes = processes.NewTable(cfg.Runner, processes.Defaults)
	}
	if cfg.Terminals == nil {
		cfg.Terminals = processes.NewTable(cfg.Runner, processes.TerminalDefaults)
	}
	if cfg.Watches == nil {
		cfg.Watches = watch.NewTable(watch.Defaults)
	}
	return &Server{cfg: cfg}
}

// conn is one connection's state: the nonces of its last hello.
type conn struct {
	serverNonce string
	nonce       string // ours, good for one request
	renew       bool   // the request asked for the next nonce in its answer
}

type connKey struct{}

// HTTPServer answers an http.Server for this handler with the protocol's limits.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, &conn{})
		},
		ErrorLog: log.New(io.Discard, "", 0), // what hostile clients cause is no news
	}
}

// Serve serves on l, at most MaxConnections at once, until l is closed.
func (s *Server) Serve(l net.Listener) error {
	return s.HTTPServer().Serve(LimitListener(l, MaxConnections))
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(*conn)
	if c == nil {
		c = &conn{}
	}
	switch r.Method {
	case http.MethodGet:
		s.get(w, r, c)
	case http.MethodPost:
		s.post(w, r, c)
	default:
		s.fail(w, http.StatusNotImplemented, "unsupported method")
	}
}

func (s *Server) sign(parts ...string) string {
	mac := hmac.New(sha256.New, []byte(s.cfg.Token))
	mac.Write([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(mac.Sum(nil))
}

// answer sends a fixed-length answer; a 200 for an exec id is signed for this connection.
func (s *Server) answer(w http.ResponseWriter, c *conn, status int, contentType, execID string, parts ...[]byte) {
	s.answerSigned(w, c, status, contentType, execID, execID != "", parts...)
}

// answerSigned sends a fixed-length answer, a 200 signed for this connection when sign is set.
func (s *Server) answerSigned(w http.ResponseWriter, c *conn, status int, contentType, execID string, sign bool, parts ...[]byte) {
	h := w.Header()
	length := 0
	digest := sha256.New()
	for _, p := range parts {
		length += len(p)
		digest.Write(p)
	}
	h["Content-Type"] = []string{contentType}
	h["Content-Length"] = []string{strconv.Itoa(length)}
	h["X-VibeBox-Container"] = []string{s.cfg.Container}
	if status == http.StatusOK && sign {
		sum := hex.EncodeToString(digest.Sum(nil))
		if c.renew {
			c.renew, c.nonce = false, newNonce()
			h["X-VibeBox-Next-Nonce"] = []string{c.nonce}
			h["X-VibeBox-Signature"] = []string{s.sign("answer", s.cfg.Container, c.serverNonce, execID, sum, c.nonce)}
		} else {
			h["X-VibeBox-Signature"] = []string{s.sign("answer", s.cfg.Container, c.serverNonce, execID, sum)}
		}
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	w.WriteHeader(status)
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

func (s *Server) json(w http.ResponseWriter, c *conn, status int, execID string, value any) {
	body, _ := json.Marshal(value)
	s.answer(w, c, status, "application/json", execID, body)
}

func (s *Server) fail(w http.ResponseWriter, status int, message string) {
	s.json(w, &conn{}, status, "", map[string]string{"error": message})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, c *conn) {
	if r.URL.EscapedPath() != "/hello" {
		s.answer(w, c, http.StatusOK, "application/json", "", []byte(`{"ok": true}`))
		return
	}
	nonce := r.URL.Query().Get("nonce")
	if !validNonce(nonce) {
		s.fail(w, http.StatusBadRequest, "nonce is 16 to 128 hex digits")
		return
	}
	c.serverNonce, c.nonce, c.renew = nonce, newNonce(), false
	proof := s.sign("hello", s.cfg.Container, nonce, c.nonce)
	s.json(w, c, http.StatusOK, "", map[string]string{"container": s.cfg.Container, "nonce": c.nonce, "proof": proof})
}

func newNonce() string {
	var random [16]byte
	rand.Read(random[:])
	return hex.EncodeToString(random[:])
}

func validNonce(nonce string) bool {
	if len(nonce) < 16 || len(nonce) > 128 {
		return false
	}
	for _, ch := range nonce {
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
			return false
		}
	}
	return true
}

// validExecID is ^[A-Za-z0-9_.-]{1,80}$: it names files in /tmp and goes into patterns.
func validExecID(id string) bool {
	if len(id) < 1 || len(id) > 80 {
		return false
	}
	for _, ch := range id {
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.ContainsRune("_.-", ch)) {
			return false
		}
	}
	return true
}

// maxBody is the largest request body of an endpoint.
func maxBody(kind string) int64 {
	if kind == watchKind {
		return MaxCommandRequest
	}
	switch kind {
	case "stream", "process/start", "process/list", "process/attach", "process/kill",
		"terminal/open", "terminal/list", "terminal/attach", "terminal/kill":
		return MaxCommandRequest
	}
	if strings.HasPrefix(kind, "files/") {
		return MaxCommandRequest
	}
	return MaxRequest
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, c *conn) {
	kind := strings.Trim(r.URL.EscapedPath(), "/")
	if isUpload(kind) { // files/write, files/untar: a streamed body (files.go)
		s.upload(w, r, c, kind)
		return
	}
	limit := maxBody(kind)
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(bodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.Header().Set("Connection", "close")
			s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
		}
		return // the client went away or stalled: nobody to answer
	}
	if r.Header.Get("X-VibeBox-Container") != s.cfg.Container {
		s.fail(w, http.StatusMisdirectedRequest, "this is another container's sandboxd") // nothing ran
		return
	}
	nonce := c.nonce
	c.nonce = "" // one request per hello
	digest := sha256.Sum256(body)
	expected := s.sign(kind, s.cfg.Container, nonce, hex.EncodeToString(digest[:]))
	if nonce == "" || !hmac.Equal([]byte(r.Header.Get("X-VibeBox-Signature")), []byte(expected)) {
		s.fail(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	c.renew = false
	if next := r.Header.Get("X-VibeBox-Nonce"); next != "" {
		if !validNonce(next) {
			s.fail(w, http.StatusBadRequest, "X-VibeBox-Nonce is 16 to 128 hex digits")
			return
		}
		c.serverNonce, c.renew = next, true
	}
	var fields map[string]json.RawMessage
	var execID string
	if json.Unmarshal(body, &fields) != nil || fields == nil ||
		json.Unmarshal(fields["exec_id"], &execID) != nil || !(validExecID(execID) || (kind == "process/list" || kind == "terminal/list") && execID == "") {
		s.fail(w, http.StatusBadRequest, "invalid request")
		return
	}
	switch kind {
	case watchKind:
		s.watch(w, c, body, execID)
	case "exec":
		s.exec(w, c, body, execID)
	case "stream":
		s.stream(w, c, body, execID)
	case "process/start":
		s.processStart(w, c, body, execID)
	case "process/list":
		s.processList(w, c, execID)
	case "process/attach":
		s.attach(w, c, s.cfg.Processes, fields, execID)
	case "process/kill":
		s.processKill(w, c, s.cfg.Processes, fields, execID)
	case "terminal/open":
		s.terminalOpen(w, c, body, execID)
	case "terminal/list":
		s.terminalList(w, c, execID)
	case "terminal/attach":
		s.attach(w, c, s.cfg.Terminals, fields, execID)
	case "terminal/kill":
		s.processKill(w, c, s.cfg.Terminals, fields, execID)
	default:
		if !s.fileRoute(w, c, kind, body, execID) { // files/* (files.go)
			s.fail(w, http.StatusNotFound, "no such endpoint")
		}
	}
}

// commandFields are the fields every request that runs a command has.
type commandFields struct {
	Argv    []string          `json:"argv"`
	Env     map[string]string `json:"env"`
	Workdir *string           `json:"workdir"`
	Timeout *float64          `json:"timeout"`
	User    *string           `json:"user"`
	// A terminal's: argv may be empty (the login shell), timeout absent or 0 (none).
	terminal bool
}

// execRequest is docker_agent.run's body, plus `user`.
type execRequest struct {
	commandFields
	Stdin       *string  `json:"stdin"` // base64; null: /dev/null
	OutputLimit *float64 `json:"output_limit"`
}

// execHeader is the first line of an exec answer.
type execHeader struct {
	ExecID      string `json:"exec_id"`
	ExitCode    *int   `json:"exit_code"`
	StdoutLen   int    `json:"stdout_len"`
	StderrLen   int    `json:"stderr_len"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
	Truncated   bool   `json:"truncated"`
	TimedOut    bool   `json:"timed_out"`
	OOMKilled   bool   `json:"oom_killed"`
}

// request checks the fields of a command; an error is a 400. As the Python agent: a timeout
// at or below 0 ends the command at once.
func (f commandFields) request() (command.Request, error) {
	if f.terminal {
		if f.Timeout != nil && *f.Timeout < 0 {
			return command.Request{}, errors.New("a terminal's timeout is 0 (none) or more")
		}
		if f.Timeout == nil || *f.Timeout == 0 {
			f.Timeout = &[]float64{maxTimeout}[0]
		}
	} else if len(f.Argv) == 0 || f.Timeout == nil {
		return command.Request{}, errors.New("argv and timeout are required")
	}
	for _, arg := range f.Argv {
		if strings.IndexByte(arg, 0) >= 0 {
			return command.Request{}, errors.New("argv holds a NUL")
		}
	}
	for name, value := range f.Env {
		if name == "" || strings.ContainsAny(name, "=\x00") || strings.IndexByte(value, 0) >= 0 {
			return command.Request{}, errors.New("invalid environment variable")
		}
	}
	out := command.Request{Argv: f.Argv, Env: f.Env, OutputLimit: defaultOutput}
	if f.Workdir != nil {
		out.Workdir = *f.Workdir
		if strings.IndexByte(out.Workdir, 0) >= 0 {
			return command.Request{}, errors.New("workdir holds a NUL")
		}
	}
	timeout := min(max(*f.Timeout, 0), maxTimeout)
	out.Timeout = time.Duration(timeout * float64(time.Second))
	return out, nil
}

// parseExec checks an exec body; an error is a 400.
func parseExec(body []byte) (execRequest, command.Request, error) {
	var req execRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, command.Request{}, err
	}
	out, err := req.request()
	if err != nil {
		return req, command.Request{}, err
	}
	if req.Stdin != nil {
		data, err := base64Decode(*req.Stdin)
		if err != nil {
			return req, command.Request{}, err
		}
		out.Stdin = data
	}
	// As the Python agent: a negative output limit keeps nothing.
	if req.OutputLimit != nil {
		out.OutputLimit = int(min(max(*req.OutputLimit, 0), MaxRequest*64))
	}
	return req, out, nil
}

func (s *Server) exec(w http.ResponseWriter, c *conn, body []byte, execID string) {
	req, run, err := parseExec(body)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	run.ExecID = execID
	if run.User, _, err = s.user(req.User); err != nil {
		s.fail(w, http.StatusUnprocessableEntity, err.Error()) // nothing ran
		return
	}
	result, err := s.cfg.Runner.Run(run)
	if err != nil {
		var notStarted *command.StartError
		if errors.As(err, &notStarted) {
			s.fail(w, http.StatusUnprocessableEntity, err.Error())
			return
		}
		s.cfg.Log.Printf("exec %s: %v", execID, err)
		s.fail(w, http.StatusInternalServerError, "sandboxd failed")
		return
	}
	header, _ := json.Marshal(execHeader{
		ExecID:      execID,
		ExitCode:    result.ExitCode,
		StdoutLen:   len(result.Stdout),
		StderrLen:   len(result.Stderr),
		StdoutBytes: result.StdoutBytes,
		StderrBytes: result.StderrBytes,
		Truncated:   result.Truncated(),
		TimedOut:    result.TimedOut,
		OOMKilled:   result.OOMKilled,
	})
	header = append(header, '\n')
	s.answer(w, c, http.StatusOK, "application/vnd.vibebox.exec", execID, header, result.Stdout, result.Stderr)
}

// user resolves the request's user (nil or "": --user), reading the container's files.
func (s *Server) user(requested *string) (users.User, string, error) {
	spec := s.cfg.DefaultUser
	if requested != nil && *requested != "" {
		spec = *requested
	}
	var user users.User
	var err error
	threads.Blocking(func() { user, err = s.cfg.Lookup(spec) }) // reads /etc/passwd and /etc/group
	return user, spec, err
}

// signalName reads a kill request's signal (KILL when absent); "" when it names none.
func signalName(fields map[string]json.RawMessage) string {
	name := "KILL"
	if raw, ok := fields["signal"]; ok {
		if json.Unmarshal(raw, &name) != nil {
			return "" // not a string: not a signal
		}
	}
	if _, ok := command.Signals[name]; !ok {
		return ""
	}
	return name
}

// truthy is Python's bool() of a JSON value: false, null, 0, "", [] and {} are false.
func truthy(raw json.RawMessage) bool {
	var value any
	if len(raw) == 0 || json.Unmarshal(raw, &value) != nil {
		return false
	}
	switch v := value.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// LimitListener accepts at most n connections at once; Accept waits while n are open.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n)}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection (a stream's end).
func (c *limitConn) CloseWrite() error {
	if half, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return half.CloseWrite()
	}
	return nil
}
