package relay

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/testsupport"
)

// fakeBinaries puts shell scripts named like the firewall's binaries in a directory: `iptables`
// prints its arguments and what it was given on stdin, then exits 3; `ip6tables` sleeps; `iptables-restore`
// prints 2 MiB; a `sh` beside them must never be run.
func fakeBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	scripts := map[string]string{
		"iptables":          "#!/bin/sh\necho \"args: $*\"\necho \"stdin: $(cat)\"\necho oops >&2\nexit 3\n",
		"ip6tables":         "#!/bin/sh\nsleep 30\n",
		"iptables-restore":  "#!/bin/sh\nhead -c 2097152 /dev/zero | tr '\\0' x\n",
		"ip6tables-restore": "#!/bin/sh\nexit 0\n",
		"sh":                "#!/bin/sh\necho should never run\n",
	}
	for name, script := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("# a comment\nnameserver 10.1.2.3\nsearch example\nnameserver fd00::53\n"), 0o644)
	return dir
}

func withFirewall(dir string, deadline time.Duration) func(*Config) {
	return func(cfg *Config) {
		cfg.Firewall = &Firewall{Search: []string{dir, "/usr/bin", "/bin"}, Deadline: deadline, DNS: DNSFiles{ResolvConf: filepath.Join(dir, "resolv.conf")}}
	}
}

// request sends raw bytes and answers the status and body of the relay's answer.
func (f fixture) request(t *testing.T, certificates []tls.Certificate, raw string) (int, string) {
	t.Helper()
	conn, err := f.dial(t, certificates)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, raw)
	response, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to %q: %v", raw[:min(len(raw), 40)], err)
	}
	body, _ := io.ReadAll(io.LimitReader(response.Body, 4<<20))
	return response.StatusCode, string(body)
}

func post(body string) string {
	return "POST /firewall HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func TestTheFirewallRunsAnAllowedBinaryWithItsArgumentsAndInput(t *testing.T) {
	f := start(t, nil, withFirewall(fakeBinaries(t), 10*time.Second))
	status, body := f.request(t, []tls.Certificate{f.client}, post(`{"binary":"iptables","args":["-w","-S","INPUT; rm -rf /"],"stdin":"payload"}`))
	var answer FirewallAnswer
	if status != http.StatusOK || json.Unmarshal([]byte(body), &answer) != nil {
		t.Fatalf("%d %q", status, body)
	}
	// No shell between: the argument with a `;` arrived whole, as one argument.
	if answer.Code != 3 || answer.Stdout != "args: -w -S INPUT; rm -rf /\nstdin: payload\n" || answer.Stderr != "oops\n" {
		t.Fatalf("%+v", answer)
	}
	status, body = f.request(t, []tls.Certificate{f.client}, "GET /firewall HTTP/1.1\r\nHost: relay\r\n\r\n")
	var info FirewallInfo
	if status != http.StatusOK || json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("%d %q", status, body)
	}
	if strings.Join(info.Binaries, ",") != strings.Join(FirewallBinaries, ",") || strings.Join(info.Resolvers, ",") != "10.1.2.3,fd00::53" {
		t.Fatalf("%+v", info)
	}
}

func TestTheFirewallCapsOutputAndKillsACommandAtItsDeadline(t *testing.T) {
	f := start(t, nil, withFirewall(fakeBinaries(t), 500*time.Millisecond))
	status, body := f.request(t, []tls.Certificate{f.client}, post(`{"binary":"iptables-restore","args":[]}`))
	var answer FirewallAnswer
	if status != http.StatusOK || json.Unmarshal([]byte(body), &answer) != nil {
		t.Fatalf("%d %q", status, body[:min(len(body), 200)])
	}
	if len(answer.Stdout) != maxOutput || !answer.StdoutTruncated || answer.Code != 0 {
		t.Fatalf("stdout of %d bytes, truncated %v, exit %d", len(answer.Stdout), answer.StdoutTruncated, answer.Code)
	}
	status, body = f.request(t, []tls.Certificate{f.client}, post(`{"binary":"ip6tables","args":[]}`))
	if status != http.StatusGatewayTimeout || !strings.Contains(body, "did not end within 500ms") {
		t.Fatalf("%d %q", status, body)
	}
}

func TestTheFirewallRefusesWhatItMust(t *testing.T) {
	f := start(t, nil, withFirewall(fakeBinaries(t), 10*time.Second))
	many := `["` + strings.Repeat(`a","`, 70) + `a"]`
	cases := []struct {
		raw    string
		status int
		reason string
	}{
		{post(`{"binary":"sh","args":["-c","id"]}`), http.StatusForbidden, `"sh" is not one of`},
		{post(`{"binary":"/bin/sh","args":[]}`), http.StatusForbidden, "is not one of"},
		{post(`{"binary":"../iptables","args":[]}`), http.StatusForbidden, "is not one of"},
		{post(`{"binary":"iptables","args":["--modprobe=/bin/sh"]}`), http.StatusForbidden, "--modprobe"},
		{post(`{"binary":"iptables","args":["-M/bin/sh","-S"]}`), http.StatusForbidden, "--modprobe"},
		{post(`{"binary":"iptables","args":["-wM","/bin/sh"]}`), http.StatusForbidden, "--modprobe"},
		{post(`{"binary":"iptables","args":["--modp=/bin/sh"]}`), http.StatusForbidden, "--modprobe"},
		{post(`{"binary":"iptables-restore","args":["-w"],"stdin":"*filter\n-A X -M /x -j DROP\nCOMMIT\n"}`), http.StatusForbidden, "--modprobe"},
		{post(`{"binary":"iptables","args":` + many + `}`), http.StatusBadRequest, "at most 64 arguments"},
		{post(`{"binary":"iptables","args":["` + strings.Repeat("a", 5000) + `"]}`), http.StatusBadRequest, "over 4096 bytes"},
		{post(`{"binary":"iptables","args":[]`), http.StatusBadRequest, "must be JSON"},
		{post(`{"binary":"iptables","args":[],"shell":true}`), http.StatusBadRequest, "must be JSON"},
		{post(`not json`), http.StatusBadRequest, "must be JSON"},
		{"POST /firewall HTTP/1.1\r\nHost: relay\r\nContent-Length: 2000000\r\n\r\n{}", http.StatusRequestEntityTooLarge, "over 1048576 bytes"},
		{"POST /firewall HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", http.StatusLengthRequired, "Content-Length"},
		{"DELETE /firewall HTTP/1.1\r\nHost: relay\r\n\r\n", http.StatusMethodNotAllowed, "GET or POST"},
		{"GET /other HTTP/1.1\r\nHost: relay\r\n\r\n", http.StatusMethodNotAllowed, "only CONNECT"},
	}
	for _, c := range cases {
		status, body := f.request(t, []tls.Certificate{f.client}, c.raw)
		if status != c.status || !strings.Contains(body, c.reason) {
			t.Errorf("%q: %d %q, want %d %q", c.raw[:min(len(c.raw), 60)], status, body, c.status, c.reason)
		}
	}
	if strings.Contains(f.logs.String(), "exit ") {
		t.Fatalf("a refused request ran something:\n%s", f.logs)
	}
	// A body just under the limit is read whole and run.
	big := `{"binary":"iptables","args":[],"stdin":"` + strings.Repeat("x", maxFirewallBody-100) + `"}`
	if status, body := f.request(t, []tls.Certificate{f.client}, post(big)); status != http.StatusOK {
		t.Fatalf("a body under 1 MiB: %d %q", status, body)
	}
}

func TestWithoutTheFlagThereIsNoFirewallAndWithoutACertificateNothing(t *testing.T) {
	off := start(t, nil, nil)
	status, body := off.request(t, []tls.Certificate{off.client}, post(`{"binary":"iptables","args":["-S"]}`))
	if status != http.StatusMethodNotAllowed || !strings.Contains(body, "only CONNECT") {
		t.Fatalf("without --firewall: %d %q", status, body)
	}
	f := start(t, nil, withFirewall(fakeBinaries(t), 10*time.Second))
	other := testsupport.NewAuthority(t, "another CA").Issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	for name, certificates := range map[string][]tls.Certificate{"none": nil, "another CA's": {other}} {
		conn, err := f.dial(t, certificates)
		if err == nil {
			io.WriteString(conn, post(`{"binary":"iptables","args":["-S"]}`))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatalf("%s client certificate: the firewall answered", name)
		}
	}
	if strings.Contains(f.logs.String(), "firewall ") {
		t.Fatalf("a request without a good certificate reached the firewall:\n%s", f.logs)
	}
}
