package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/testsupport"
)

// lines is a target that answers each line it reads, in upper case, at once.
func lines(t *testing.T) int {
	return serve(t, func(conn net.Conn) {
		reader := bufio.NewReader(conn)
		for {
			line, err := reader.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(conn, strings.ToUpper(line))
		}
	})
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tunnel opens a tunnel to 127.0.0.1:port as `client`, trusting `roots` for the relay: nil and
// the reason when the relay refuses the handshake.
func tunnel(t *testing.T, addr string, roots *x509.CertPool, client tls.Certificate, port int) (*tls.Conn, *bufio.Reader, error) {
	t.Helper()
	return tunnelWith(t, addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}, ServerName: "127.0.0.1"}, port)
}

func tunnelWith(t *testing.T, addr string, config *tls.Config, port int) (*tls.Conn, *bufio.Reader, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, config)
	if err != nil {
		return nil, nil, err
	}
	target := "127.0.0.1:" + strconv.Itoa(port)
	io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	reader := bufio.NewReader(conn)
	response, err := http.ReadResponse(reader, &http.Request{Method: http.MethodConnect})
	if err != nil { // TLS 1.3: a refused client certificate shows at the first read
		conn.Close()
		return nil, nil, err
	}
	if response.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %d", target, response.StatusCode)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, reader, nil
}

func say(t *testing.T, conn *tls.Conn, reader *bufio.Reader, line string) {
	t.Helper()
	io.WriteString(conn, line+"\n")
	if got, err := reader.ReadString('\n'); err != nil || got != strings.ToUpper(line)+"\n" {
		t.Fatalf("through the tunnel opened before: %q %v", got, err)
	}
}

// A rotation as the server runs it, without a restart: the overlap (both CAs trusted, the old
// server certificate), then the switch (the new CA alone, the new server certificate). A tunnel
// opened before carries bytes throughout; bad files change nothing.
func TestReloadRotatesWithoutCuttingTunnels(t *testing.T) {
	port := lines(t)
	dir := t.TempDir()
	oldCA, newCA := testsupport.NewAuthority(t, "old CA"), testsupport.NewAuthority(t, "new CA")
	oldServerCert, oldServerKey := testsupport.PEMs(t, oldCA.Issue(t, "relay", x509.ExtKeyUsageServerAuth))
	writeFiles(t, dir, map[string][]byte{"cert.pem": oldServerCert, "key.pem": oldServerKey, "ca.pem": oldCA.PEM()})
	credentials, err := LoadCredentials(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go New(Config{
		TLS: credentials.ServerConfig(), Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Ports: map[uint16]bool{uint16(port): true}, MaxConns: 8, Handshake: 5 * time.Second, Idle: time.Minute,
		Dial: 2 * time.Second, Log: log.New(io.Discard, "", 0),
	}).Serve(listener)
	addr := listener.Addr().String()
	oldClient := oldCA.Issue(t, "vibebox server", x509.ExtKeyUsageClientAuth)
	newClient := newCA.Issue(t, "vibebox server", x509.ExtKeyUsageClientAuth)
	bundle := x509.NewCertPool()
	bundle.AddCert(newCA.Cert)
	bundle.AddCert(oldCA.Cert)

	// A client that would resume its session (a ticket from before the switch) if it were offered one.
	resuming := &tls.Config{RootCAs: bundle, Certificates: []tls.Certificate{oldClient}, ServerName: "127.0.0.1",
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	before, reader, err := tunnelWith(t, addr, resuming, port)
	if err != nil {
		t.Fatal(err)
	}
	say(t, before, reader, "before")
	if _, _, err := tunnel(t, addr, bundle, newClient, port); err == nil {
		t.Fatal("the new client certificate got in before the overlap")
	}
	first := credentials.Digest()

	// The overlap: the bundle of both CAs, the server certificate unchanged.
	writeFiles(t, dir, map[string][]byte{"ca.pem": append(newCA.PEM(), oldCA.PEM()...)})
	if digest, err := credentials.Reload(); err != nil || digest == first {
		t.Fatalf("overlap: %q %v", digest, err)
	}
	for name, client := range map[string]tls.Certificate{"old": oldClient, "new": newClient} {
		if _, _, err := tunnel(t, addr, oldCA.Pool, client, port); err != nil {
			t.Fatalf("overlap: the %s client certificate: %v", name, err)
		}
	}
	say(t, before, reader, "overlap")

	// Bad files (a key that is not one, then no CA file): refused, the overlap's material in force.
	overlap := credentials.Digest()
	newServerCert, newServerKey := testsupport.PEMs(t, newCA.Issue(t, "relay", x509.ExtKeyUsageServerAuth))
	writeFiles(t, dir, map[string][]byte{"cert.pem": newServerCert, "key.pem": []byte("not a key\n")})
	if _, err := credentials.Reload(); err == nil || !strings.Contains(err.Error(), "--cert/--key") {
		t.Fatalf("a bad key: %v", err)
	}
	writeFiles(t, dir, map[string][]byte{"key.pem": newServerKey})
	os.Remove(filepath.Join(dir, "ca.pem"))
	if _, err := credentials.Reload(); err == nil || !strings.Contains(err.Error(), "--client-ca") {
		t.Fatalf("no CA file: %v", err)
	}
	if credentials.Digest() != overlap {
		t.Fatal("a refused reload changed the material in force")
	}
	if _, _, err := tunnel(t, addr, oldCA.Pool, oldClient, port); err != nil { // the old server certificate still
		t.Fatalf("after refused reloads: %v", err)
	}

	// The switch: the new CA alone, the new server certificate.
	writeFiles(t, dir, map[string][]byte{"ca.pem": newCA.PEM()})
	if _, err := credentials.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tunnel(t, addr, bundle, oldClient, port); err == nil {
		t.Fatal("the old client certificate got in after the switch")
	}
	if _, _, err := tunnelWith(t, addr, resuming, port); err == nil {
		t.Fatal("the old client certificate's session was resumed after the switch")
	}
	if _, _, err := tunnel(t, addr, oldCA.Pool, newClient, port); err == nil {
		t.Fatal("the old server certificate was presented after the switch")
	}
	after, afterReader, err := tunnel(t, addr, newCA.Pool, newClient, port)
	if err != nil {
		t.Fatalf("the new credentials after the switch: %v", err)
	}
	say(t, after, afterReader, "after")
	say(t, before, reader, "still") // the tunnel opened with the old credentials is not cut
}

func TestLoadCredentialsRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testsupport.NewAuthority(t, "node CA")
	cert, key := testsupport.PEMs(t, ca.Issue(t, "relay", x509.ExtKeyUsageServerAuth))
	writeFiles(t, dir, map[string][]byte{"cert.pem": cert, "key.pem": key, "ca.pem": key})
	if _, err := LoadCredentials(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte("no PEM certificate")) {
		t.Fatalf("a key as the CA bundle: %v", err)
	}
}
