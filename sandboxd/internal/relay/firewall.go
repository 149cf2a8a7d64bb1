package relay

// The relay's firewall agent (`sandboxd relay --firewall`, docs/nodes.md "Egress firewall rules on
// a remote node"): the server builds the same iptables commands and iptables-restore payloads it
// runs on its own host, and sends each one here to be run on the node. Only the four binaries
// below, found in fixed directories and run without a shell, with bounded arguments, input and
// output, one at a time, each within a deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FirewallBinaries are the only programs the agent runs.
var FirewallBinaries = []string{"iptables", "ip6tables", "iptables-restore", "ip6tables-restore"}

// DefaultSearch is where they are looked for, in order (Debian puts them in /usr/sbin).
var DefaultSearch = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

const (
	maxFirewallBody = 1 << 20 // a request's JSON body
	maxArgs         = 64      // arguments of one command
	maxArg          = 4096    // bytes of one argument
	maxOutput       = 1 << 20 // kept of stdout and of stderr each
)

// Firewall is the agent's configuration; nil in Config: the relay serves CONNECT only.
type Firewall struct {
	Search   []string      // directories the binaries are looked up in
	Deadline time.Duration // for one command; it is killed (its process group) after it
	DNS      DNSFiles      // where GET /firewall's resolvers are read (resolvers.go)
	mu       sync.Mutex    // one command at a time
}

// FirewallRequest is POST /firewall's body.
type FirewallRequest struct {
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Stdin  string   `json:"stdin"`
}

// FirewallAnswer is POST /firewall's answer (200): the command ran, whatever its exit code.
type FirewallAnswer struct {
	Code            int    `json:"code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`
}

// FirewallInfo is GET /firewall's answer: which binaries the node has, and its resolvers.
type FirewallInfo struct {
	Binaries  []string `json:"binaries"`
	Resolvers []string `json:"resolvers"`
}

// lookup answers the path of an allowed binary, or "" when it is not one or not found.
func (f *Firewall) lookup(binary string) string {
	allowed := false
	for _, name := range FirewallBinaries {
		allowed = allowed || name == binary
	}
	if !allowed {
		return ""
	}
	for _, dir := range f.Search {
		path := filepath.Join(dir, binary)
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return path
		}
	}
	return ""
}

func (f *Firewall) info() FirewallInfo {
	found := FirewallInfo{Binaries: []string{}, Resolvers: []string{}}
	for _, name := range FirewallBinaries {
		if f.lookup(name) != "" {
			found.Binaries = append(found.Binaries, name)
		}
	}
	found.Resolvers = f.DNS.Resolvers()
	return found
}

// check answers the binary's path, or a status and the reason of a refusal.
func (f *Firewall) check(request FirewallRequest) (string, int, string) {
	path := f.lookup(request.Binary)
	if path == "" {
		for _, name := range FirewallBinaries {
			if name == request.Binary {
				return "", http.StatusNotFound, request.Binary + " is not installed on this node"
			}
		}
		return "", http.StatusForbidden, fmt.Sprintf("%q is not one of %s", request.Binary, strings.Join(FirewallBinaries, ", "))
	}
	if len(request.Args) > maxArgs {
		return "", http.StatusBadRequest, fmt.Sprintf("at most %d arguments", maxArgs)
	}
	for _, arg := range request.Args {
		if len(arg) > maxArg || strings.ContainsRune(arg, 0) {
			return "", http.StatusBadRequest, fmt.Sprintf("an argument is over %d bytes or holds a NUL", maxArg)
		}
		if modprobeOption(arg) {
			return "", http.StatusForbidden, "--modprobe is refused"
		}
	}
	// An iptables-restore payload is options too, a line at a time.
	for _, line := range strings.Split(request.Stdin, "\n") {
		for _, token := range strings.Fields(line) {
			if modprobeOption(token) {
				return "", http.StatusForbidden, "--modprobe is refused"
			}
		}
	}
	if strings.Contains(request.Stdin, "modprobe") {
		return "", http.StatusForbidden, "--modprobe is refused"
	}
	return path, 0, ""
}

// modprobeOption reports whether token is iptables' --modprobe (-M), which runs the program it
// names: never a way to run anything else. Every spelling getopt takes is caught: the long option
// or any prefix of it ("--modp=/bin/sh"), and M in a cluster of short options ("-M/bin/sh",
// "-wM"). No option firewall.py sends has a capital M.
func modprobeOption(token string) bool {
	if name, ok := strings.CutPrefix(token, "--"); ok {
		name, _, _ = strings.Cut(name, "=")
		return name != "" && strings.HasPrefix("modprobe", name)
	}
	return strings.HasPrefix(token, "-") && strings.ContainsRune(token[1:], 'M')
}

// capped keeps the first maxOutput bytes written to it.
// (No embedded bytes.Buffer: its ReadFrom would let io.Copy go round the cap.)
type capped struct {
	buffer    bytes.Buffer
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := maxOutput - c.buffer.Len()
	if len(p) > room {
		c.truncated = true
		if room > 0 {
			c.buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buffer.Write(p)
}

func (c *capped) String() string { return c.buffer.String() }

// errDeadline: the command did not end within the deadline.
var errDeadline = errors.New("deadline")

func (f *Firewall) run(path string, request FirewallRequest) (FirewallAnswer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), f.Deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, request.Args...)
	cmd.Env = []string{"PATH=" + strings.Join(f.Search, ":"), "LC_ALL=C"}
	cmd.Dir = "/"
	cmd.Stdin = strings.NewReader(request.Stdin)
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a child that kept the pipes open does not hold the answer
	err := cmd.Run()
	if ctx.Err() != nil {
		return FirewallAnswer{}, errDeadline
	}
	answer := FirewallAnswer{Stdout: stdout.String(), Stderr: stderr.String(),
		StdoutTruncated: stdout.truncated, StderrTruncated: stderr.truncated}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		answer.Code = exit.ExitCode()
	default:
		return FirewallAnswer{}, err
	}
	return answer, nil
}

// serveFirewall answers GET and POST /firewall; `limit` bounds what is read from the connection
// (the request head's 8 KiB until now), `reader` is the request's reader over it.
func (r *Relay) serveFirewall(conn net.Conn, peer string, request *http.Request, limit *io.LimitedReader) {
	f := r.cfg.Firewall
	switch request.Method {
	case http.MethodGet:
		reply(conn, http.StatusOK, f.info())
		return
	case http.MethodPost:
	default:
		answer(conn, http.StatusMethodNotAllowed, "/firewall takes GET or POST")
		return
	}
	if request.ContentLength < 0 {
		answer(conn, http.StatusLengthRequired, "a Content-Length is required")
		return
	}
	if request.ContentLength > maxFirewallBody {
		answer(conn, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", maxFirewallBody))
		return
	}
	limit.N += request.ContentLength
	_ = conn.SetDeadline(time.Now().Add(r.cfg.Handshake)) // the body within the request's deadline
	var body FirewallRequest
	decoder := json.NewDecoder(request.Body)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&body); err != nil {
		answer(conn, http.StatusBadRequest, "the body must be JSON: {\"binary\", \"args\", \"stdin\"}")
		return
	}
	path, status, why := f.check(body)
	if status != 0 {
		r.cfg.Log.Printf("refused %s (%s) firewall %q: %s", conn.RemoteAddr(), peer, body.Binary, why)
		answer(conn, status, why)
		return
	}
	_ = conn.SetDeadline(time.Now().Add(f.Deadline + r.cfg.Handshake))
	started := time.Now()
	result, err := f.run(path, body)
	if errors.Is(err, errDeadline) {
		r.cfg.Log.Printf("firewall %s (%s) %s: killed after %s", conn.RemoteAddr(), peer, body.Binary, f.Deadline)
		answer(conn, http.StatusGatewayTimeout, fmt.Sprintf("%s did not end within %s", body.Binary, f.Deadline))
		return
	}
	if err != nil {
		answer(conn, http.StatusInternalServerError, "cannot run "+body.Binary+": "+err.Error())
		return
	}
	r.cfg.Log.Printf("firewall %s (%s) %s %s: exit %d in %s", conn.RemoteAddr(), peer, body.Binary,
		strings.Join(body.Args, " "), result.Code, time.Since(started).Round(time.Millisecond))
	reply(conn, http.StatusOK, result)
}

func reply(conn net.Conn, status int, value any) {
	body, _ := json.Marshal(value)
	writer := bufio.NewWriter(conn)
	fmt.Fprintf(writer, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	writer.Write(body)
	writer.Flush()
}
