package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/reaper"
	"vibebox.dev/sandboxd/internal/testsupport"
)

// relayFiles writes a node CA, the relay's certificate and key; answers their paths, the CA and a
// client certificate of that CA.
func relayFiles(t *testing.T) (string, string, string, testsupport.Authority, tls.Certificate) {
	t.Helper()
	dir := t.TempDir()
	ca := testsupport.NewAuthority(t, "node CA")
	certPEM, keyPEM := testsupport.PEMs(t, ca.Issue(t, "relay", x509.ExtKeyUsageServerAuth))
	paths := map[string][]byte{"ca.pem": ca.PEM(), "cert.pem": certPEM, "key.pem": keyPEM}
	for name, data := range paths {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"), ca,
		ca.Issue(t, "vibebox-server", x509.ExtKeyUsageClientAuth)
}

func TestRelayFlagsAreChecked(t *testing.T) {
	cert, key, ca, _, _ := relayFiles(t)
	for _, args := range [][]string{
		{"relay"}, // no TLS material: it serves only mutual TLS
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca},                                  // no --allow
		{"relay", "--cert", cert, "--key", key, "--client-ca", cert + "x", "--allow", "10.0.0.0/8"}, // no such CA file
		{"relay", "--cert", cert, "--key", key, "--client-ca", key, "--allow", "10.0.0.0/8"},        // no certificate in it
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.300/8"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "0"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "x"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "0-10"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "50-40"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "1-65536"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--ports", "1-"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "--max-tunnels", "0"},
		{"relay", "--cert", cert, "--key", key, "--client-ca", ca, "--allow", "10.0.0.0/8", "extra"},
	} {
		var errs strings.Builder
		if code := run(args, io.Discard, &errs); code != 2 || errs.Len() == 0 {
			t.Errorf("%q: exit %d (%q), want 2 and a reason", args, code, errs.String())
		}
	}
}

// The binary as a node runs it: a tunnel through it to a server on loopback, then SIGTERM.
func TestATunnelThroughTheRelayBinary(t *testing.T) {
	cert, key, ca, authority, client := relayFiles(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		conn, err := target.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := bufio.NewReader(conn).ReadString('\n')
		io.WriteString(conn, "sandboxd says: "+line)
	}()
	_, port, _ := net.SplitHostPort(target.Addr().String())
	addr := freePort(t)
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	argv := []string{"sandboxd", "relay", "--listen", addr, "--cert", cert, "--key", key, "--client-ca", ca,
		"--allow", "127.0.0.1/32", "--ports", port}
	attr := &syscall.ProcAttr{Env: []string{asMain + "=1"}, Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
	pid, exited, err := reaper.Spawn(binary, argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	var conn *tls.Conn
	testsupport.Eventually(t, "the relay listens", 10*time.Second, func() bool {
		conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: authority.Pool, Certificates: []tls.Certificate{client}})
		return err == nil
	})
	defer conn.Close()
	io.WriteString(conn, "CONNECT "+target.Addr().String()+" HTTP/1.1\r\n\r\n")
	reader := bufio.NewReader(conn)
	response, err := http.ReadResponse(reader, &http.Request{Method: http.MethodConnect})
	if err != nil || response.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", response, err)
	}
	io.WriteString(conn, "hello\n")
	if answer, _ := reader.ReadString('\n'); answer != "sandboxd says: hello\n" {
		t.Fatalf("through the tunnel: %q", answer)
	}
	stopRelay(t, pid, exited)
}

// The binary with --firewall: GET /firewall answers what the host has; a binary not on the list
// is refused (nothing else is run here: the test host's iptables are not the test's to change).
func TestTheRelayBinaryWithFirewall(t *testing.T) {
	cert, key, ca, authority, client := relayFiles(t)
	addr := freePort(t)
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	argv := []string{"sandboxd", "relay", "--listen", addr, "--cert", cert, "--key", key, "--client-ca", ca,
		"--allow", "127.0.0.1/32", "--firewall"}
	attr := &syscall.ProcAttr{Env: []string{asMain + "=1"}, Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
	pid, exited, err := reaper.Spawn(binary, argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	ask := func(raw string) (int, string) {
		var conn *tls.Conn
		testsupport.Eventually(t, "the relay listens", 10*time.Second, func() bool {
			conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: authority.Pool, Certificates: []tls.Certificate{client}})
			return err == nil
		})
		defer conn.Close()
		io.WriteString(conn, raw)
		response, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(response.Body)
		return response.StatusCode, string(body)
	}
	if status, body := ask("GET /firewall HTTP/1.1\r\nHost: relay\r\n\r\n"); status != http.StatusOK || !strings.Contains(body, `"binaries":[`) {
		t.Fatalf("GET /firewall: %d %q", status, body)
	}
	request := `{"binary":"sh","args":["-c","id"]}`
	raw := "POST /firewall HTTP/1.1\r\nHost: relay\r\nContent-Length: " + strconv.Itoa(len(request)) + "\r\n\r\n" + request
	if status, body := ask(raw); status != http.StatusForbidden || !strings.Contains(body, `"sh" is not one of`) {
		t.Fatalf("POST /firewall sh: %d %q", status, body)
	}
	stopRelay(t, pid, exited)
}

// stopRelay sends the relay SIGTERM and waits for a clean exit.
func stopRelay(t *testing.T, pid int, exited <-chan syscall.WaitStatus) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case status := <-exited:
		if status.ExitStatus() != 0 {
			t.Fatalf("SIGTERM: exit %d", status.ExitStatus())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end on SIGTERM")
	}
}

func TestRelayPortsTakeRanges(t *testing.T) {
	cert, key, ca, _, _ := relayFiles(t)
	cfg, _, err := relayConfig(cert, key, ca, "10.0.0.0/8", "49983, 3000-3999,8080-8080", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ranges := [][2]uint16{{3000, 3999}, {8080, 8080}}
	if len(cfg.Ports) != 1 || !cfg.Ports[49983] || len(cfg.PortRanges) != 2 || cfg.PortRanges[0] != ranges[0] ||
		cfg.PortRanges[1] != ranges[1] || cfg.HostAddrs == nil {
		t.Fatalf("ports %v, ranges %v, host addresses checked: %v", cfg.Ports, cfg.PortRanges, cfg.HostAddrs != nil)
	}
}

// SIGHUP: the binary reads its TLS files again (docs/sandboxd.md, "The relay"): files it cannot
// use are refused and logged, the relay serving on; good ones take new handshakes.
func TestTheRelayBinaryReloadsOnSIGHUP(t *testing.T) {
	cert, key, ca, authority, client := relayFiles(t)
	addr := freePort(t)
	logs, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	argv := []string{"sandboxd", "relay", "--listen", addr, "--cert", cert, "--key", key, "--client-ca", ca,
		"--allow", "127.0.0.1/32"}
	attr := &syscall.ProcAttr{Env: []string{asMain + "=1"}, Files: []uintptr{null.Fd(), null.Fd(), logs.Fd()}}
	pid, exited, err := reaper.Spawn(binary, argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	other := testsupport.NewAuthority(t, "new CA")
	otherClient := other.Issue(t, "vibebox-server", x509.ExtKeyUsageClientAuth)
	handshake := func(certificate tls.Certificate) error { // the relay's own refusal of loopback's port 1 after it
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: authority.Pool, Certificates: []tls.Certificate{certificate}})
		if err != nil {
			return err
		}
		defer conn.Close()
		io.WriteString(conn, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
		_, err = http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		return err
	}
	testsupport.Eventually(t, "the relay listens", 10*time.Second, func() bool { return handshake(client) == nil })
	logged := func(what string) bool {
		data, _ := os.ReadFile(logs.Name())
		return strings.Contains(string(data), what)
	}
	os.WriteFile(ca, []byte("not a certificate\n"), 0o600)
	syscall.Kill(pid, syscall.SIGHUP)
	testsupport.Eventually(t, "the refusal logged", 10*time.Second, func() bool { return logged("reload refused") })
	if err := handshake(client); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}
	os.WriteFile(ca, append(other.PEM(), authority.PEM()...), 0o600)
	syscall.Kill(pid, syscall.SIGHUP)
	testsupport.Eventually(t, "the new CA trusted", 10*time.Second, func() bool { return handshake(otherClient) == nil })
	if !logged("reloaded: TLS files") {
		t.Fatal("the reload was not logged")
	}
	stopRelay(t, pid, exited)
}
