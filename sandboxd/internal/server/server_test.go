package server

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/protocoltest"
	"vibebox.dev/sandboxd/internal/reaper"
	"vibebox.dev/sandboxd/internal/users"
)

// Commands run as these uids (no other package's tests use them: a timeout sweeps a uid).
const (
	runAs   = "61010:61010"
	otherAs = "61011:61011"
)

func TestMain(m *testing.M) {
	if err := reaper.Start(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// serve starts a server on a real listener and answers a client for it.
func serve(t *testing.T) *protocoltest.Client {
	t.Helper()
	return serveWith(t, processes.Defaults)
}

// serveWith starts a server whose background processes are sized by cfg.
func serveWith(t *testing.T, cfg processes.Config) *protocoltest.Client {
	t.Helper()
	return serveTables(t, cfg, processes.TerminalDefaults)
}

// serveTables starts a server whose background processes and terminals are sized by cfg and
// terminals.
func serveTables(t *testing.T, cfg, terminals processes.Config) *protocoltest.Client {
	t.Helper()
	if _, err := users.Lookup(runAs); err != nil {
		t.Fatal(err)
	}
	runner := command.NewRunner(command.BaseEnv([]string{"PATH=" + command.DefaultPath}, ""))
	srv := New(Config{
		Token: "the-token", Container: "vb-test", DefaultUser: runAs, Runner: runner,
		Processes: processes.NewTable(runner, cfg), Terminals: processes.NewTable(runner, terminals),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	return &protocoltest.Client{Addr: l.Addr().String(), Token: "the-token", Container: "vb-test"}
}

func dial(t *testing.T, c *protocoltest.Client, hello bool) *protocoltest.Conn {
	t.Helper()
	conn, err := c.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if hello {
		if err := conn.Hello(); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

var ids atomic.Int64

func newID() string { return fmt.Sprintf("srv-%d", ids.Add(1)) }

func body(fields map[string]any) []byte {
	data, _ := json.Marshal(fields)
	return data
}

func execBody(id string, argv ...string) []byte {
	return body(map[string]any{"exec_id": id, "argv": argv, "timeout": 10, "output_limit": 1000, "env": nil, "workdir": "/tmp", "stdin": nil})
}

func TestHealthAndHello(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, false)
	resp, answer, err := conn.Get("/healthz")
	if err != nil || resp.StatusCode != 200 || string(answer) != `{"ok": true}` {
		t.Fatalf("health: %v %v %s", resp, err, answer)
	}
	if err := conn.Hello(); err != nil { // checks the proof
		t.Fatal(err)
	}
	for _, nonce := range []string{"", "abc", strings.Repeat("a", 15), strings.Repeat("A", 32), strings.Repeat("a", 129), strings.Repeat("g", 32)} {
		resp, _, err := conn.Get("/hello?nonce=" + nonce)
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("nonce %q: %v %v", nonce, resp.Status, err)
		}
	}
}

func TestExecAnswerIsSignedAndLaidOut(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, true)
	id := newID()
	resp, answer, err := conn.Post("exec", execBody(id, "/bin/sh", "-c", "printf out; printf err >&2; head -c 5000 /dev/zero; exit 3"), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v %s", resp, err, answer)
	}
	if err := conn.Verify(resp, id, answer); err != nil {
		t.Fatal(err)
	}
	header, stdout, stderr, err := protocoltest.ParseExec(resp, answer)
	if err != nil {
		t.Fatal(err)
	}
	if header.ExecID != id || header.ExitCode == nil || *header.ExitCode != 3 || string(stdout[:3]) != "out" || len(stdout) != 1000 ||
		header.StdoutBytes != 5003 || string(stderr) != "err" || !header.Truncated || header.TimedOut || header.OOMKilled {
		t.Fatalf("header %+v stdout %d bytes stderr %q", header, len(stdout), stderr)
	}
	// The answer is bound to this connection's nonce: under another, the signature fails.
	conn.ServerNonce = strings.Repeat("0", 32)
	if conn.Verify(resp, id, answer) == nil {
		t.Fatal("the signature does not depend on the server's nonce")
	}
}

func TestAnAnswerHandsOutTheNextNonceWhenAsked(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, true)
	for i := 0; i < 3; i++ { // one hello, three commands on the connection
		id := newID()
		resp, answer, err := conn.PostRenewing("exec", id, execBody(id, "/bin/sh", "-c", "echo run"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("command %d: %v %v %s", i, resp, err, answer)
		}
		if _, stdout, _, err := protocoltest.ParseExec(resp, answer); err != nil || string(stdout) != "run\n" {
			t.Fatalf("command %d: %q %v", i, stdout, err)
		}
	}
	// A nonce is good once: the one just used again is refused, and so is the next after it.
	used := conn.Nonce
	id := newID()
	if resp, _, err := conn.PostRenewing("exec", id, execBody(id, "true")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	conn.Nonce = used
	id = newID()
	if resp, _, err := conn.Post("exec", execBody(id, "true"), nil); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a used nonce: %v %v", resp.Status, err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	// Without the header there is no next nonce: one request per hello, as before.
	id = newID()
	resp, _, err := conn.Post("exec", execBody(id, "true"), nil)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-VibeBox-Next-Nonce") != "" {
		t.Fatalf("%v %v next %q", resp.Status, err, resp.Header.Get("X-VibeBox-Next-Nonce"))
	}
	id = newID()
	if resp, _, err := conn.Post("exec", execBody(id, "true"), nil); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a second request after one hello: %v %v", resp.Status, err)
	}
	// A refused command hands out nothing either: the connection needs a hello again.
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	id = newID()
	resp, _, err = conn.PostRenewing("exec", id, execBody(id, "/no/such/program"))
	if err != nil || resp.StatusCode != 422 || resp.Header.Get("X-VibeBox-Next-Nonce") != "" {
		t.Fatalf("%v %v", resp.Status, err)
	}
	// A malformed server nonce is refused before anything runs.
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	id = newID()
	if resp, _, err := conn.Post("exec", execBody(id, "true"), map[string]string{"X-VibeBox-Nonce": "XYZ"}); err != nil || resp.StatusCode != 400 {
		t.Fatalf("%v %v", resp.Status, err)
	}
}

func TestTheUserFieldPicksWhoRunsTheCommand(t *testing.T) {
	c := serve(t)
	for _, c2 := range []struct {
		user any
		want string
	}{{nil, "61010\n"}, {"", "61010\n"}, {otherAs, "61011\n"}} {
		fields := map[string]any{"exec_id": newID(), "argv": []string{"id", "-u"}, "timeout": 10, "output_limit": 100}
		if c2.user != nil {
			fields["user"] = c2.user
		}
		_, stdout, _, err := c.Exec(fields)
		if err != nil || string(stdout) != c2.want {
			t.Errorf("user %v: %q %v, want %q", c2.user, stdout, err, c2.want)
		}
	}
}

func TestOneRequestPerHello(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, false)
	if resp, _, _ := conn.Post("exec", execBody(newID(), "true"), nil); resp.StatusCode != 401 {
		t.Fatalf("without a hello: %s", resp.Status)
	}
	conn.Hello()
	request := execBody(newID(), "true")
	if resp, _, _ := conn.Post("exec", request, nil); resp.StatusCode != 200 {
		t.Fatalf("first: %s", resp.Status)
	}
	if resp, _, _ := conn.Post("exec", request, nil); resp.StatusCode != 401 { // the same signature again
		t.Fatalf("replayed: %s", resp.Status)
	}
}

func TestAnotherContainersRequestIsMisdirected(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, true)
	resp, answer, _ := conn.Post("exec", execBody(newID(), "true"), map[string]string{"X-VibeBox-Container": "vb-other"})
	if resp.StatusCode != 421 || resp.Header.Get("X-VibeBox-Container") != "vb-test" {
		t.Fatalf("%s %s", resp.Status, answer)
	}
	// Nothing was consumed: the right request on the same hello works.
	if resp, _, _ := conn.Post("exec", execBody(newID(), "true"), nil); resp.StatusCode != 200 {
		t.Fatalf("after a 421: %s", resp.Status)
	}
}

func TestABadSignatureIsUnauthorized(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, true)
	request := execBody(newID(), "true")
	wrong := protocoltest.Sign("another-token", "exec", "vb-test", conn.Nonce, protocoltest.Digest(request))
	if resp, _, _ := conn.Post("exec", request, map[string]string{"X-VibeBox-Signature": wrong}); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %s", resp.Status)
	}
	conn.Hello()
	signed := protocoltest.Sign("the-token", "stream", "vb-test", conn.Nonce, protocoltest.Digest(request)) // for another kind
	if resp, _, _ := conn.Post("exec", request, map[string]string{"X-VibeBox-Signature": signed}); resp.StatusCode != 401 {
		t.Fatalf("signed for /stream, sent to /exec: %s", resp.Status)
	}
}

func TestAnOversizedBodyIsRefusedUnread(t *testing.T) {
	c := serve(t)
	conn := dial(t, c, true)
	resp, _, err := conn.Raw([]byte(fmt.Sprintf(
		"POST /exec HTTP/1.1\r\nHost: sandbox\r\nContent-Length: %d\r\nX-VibeBox-Container: vb-test\r\n\r\n", MaxRequest+1)))
	if err != nil || resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("%v %v", resp, err)
	}
	// Chunked, the body is counted as it comes (and sandboxd stops reading it at the limit).
	conn = dial(t, c, true)
	go func() {
		conn.Write([]byte("POST /exec HTTP/1.1\r\nHost: sandbox\r\nTransfer-Encoding: chunked\r\nX-VibeBox-Container: vb-test\r\n\r\n"))
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 1<<20, strings.Repeat("x", 1<<20)))
		for range 65 {
			if conn.Write(chunk) != nil {
				return
			}
		}
		conn.Write([]byte("0\r\n\r\n"))
	}()
	resp, _, err = conn.Answer()
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("chunked: %v %v", resp, err)
	}
}

func TestMalformedRequests(t *testing.T) {
	c := serve(t)
	for _, r := range []struct {
		kind string
		body string
		want int
	}{
		{"exec", "not json", 400},
		{"exec", `["exec_id"]`, 400},
		{"exec", `{"argv": ["true"], "timeout": 1}`, 400},
		{"exec", `{"exec_id": "../etc", "argv": ["true"], "timeout": 1}`, 400},
		{"exec", `{"exec_id": 5, "argv": ["true"], "timeout": 1}`, 400},
		{"exec", `{"exec_id": "a", "argv": [], "timeout": 1}`, 400},
		{"exec", `{"exec_id": "a", "argv": ["true"]}`, 400},
		{"exec", `{"exec_id": "a", "argv": ["true"], "timeout": "soon"}`, 400},
		{"exec", `{"exec_id": "a", "argv": ["true"], "timeout": 1, "stdin": "%%%"}`, 400},
		{"exec", `{"exec_id": "a", "argv": ["true"], "timeout": 1, "env": {"A=B": "c"}}`, 400},
		{"process/kill", `{"exec_id": "a", "signal": "BOGUS"}`, 400},
		{"process/kill", `{"exec_id": "a", "signal": 9}`, 400},
		{"what", `{"exec_id": "a"}`, 404},
		{"kill", `{"exec_id": "a", "signal": "KILL"}`, 404}, // the Docker path's, gone
		{"exec", `{"exec_id": "a", "argv": ["/no/such/program"], "timeout": 1}`, 422},
		{"exec", `{"exec_id": "a", "argv": ["true"], "timeout": 1, "user": "ghost"}`, 422},
		{"exec", `{"exec_id": "a", "argv": ["true"], "timeout": 1, "workdir": "/no/such/dir"}`, 422},
	} {
		conn := dial(t, c, true)
		resp, answer, err := conn.Post(r.kind, []byte(r.body), nil)
		if err != nil || resp.StatusCode != r.want {
			t.Errorf("/%s %s: %v %v %s, want %d", r.kind, r.body, resp.Status, err, answer, r.want)
		}
	}
}
