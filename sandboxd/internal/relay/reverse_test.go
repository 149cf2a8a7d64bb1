package relay

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// freePort answers a loopback address nothing listens on (for a back link's listener).
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return netip.MustParseAddrPort(listener.Addr().String())
}

func withBack(address netip.AddrPort, change func(*Back)) func(*Config) {
	return func(cfg *Config) {
		cfg.Back = &Back{Services: map[string]netip.AddrPort{"gateway": address}, MaxWaiting: 4,
			Park: time.Minute, Wait: 5 * time.Second, Retry: 10 * time.Millisecond}
		if change != nil {
			change(cfg.Back)
		}
	}
}

// park sends `GET /back/NAME` over a new mutual-TLS connection (answered when a sandbox comes).
func (f fixture) park(t *testing.T, name string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := f.dial(t, []tls.Certificate{f.client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /back/"+name+" HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// sandbox connects to the back link's address as a sandbox would (its listener may still be starting).
func sandbox(t *testing.T, address netip.AddrPort) *net.TCPConn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.Dial("tcp", address.String())
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			return conn.(*net.TCPConn)
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestABackLinkPairsASandboxWithAParkedServerConnection(t *testing.T) {
	address := freePort(t)
	f := start(t, nil, withBack(address, nil))
	server, reader := f.park(t, "gateway")
	client := sandbox(t, address)
	io.WriteString(client, "hello\n")
	client.CloseWrite()
	answer, err := http.ReadResponse(reader, nil)
	if err != nil || answer.StatusCode != http.StatusOK {
		t.Fatalf("parked connection answered %v, %v", answer, err)
	}
	if peer := answer.Header.Get("Vibebox-Peer"); peer != client.LocalAddr().String() {
		t.Fatalf("Vibebox-Peer %q, the sandbox is %s", peer, client.LocalAddr())
	}
	if answer.Header.Get("Vibebox-Service") != "gateway" {
		t.Fatalf("Vibebox-Service %q", answer.Header.Get("Vibebox-Service"))
	}
	got, _ := io.ReadAll(reader) // until the sandbox's half-close
	if string(got) != "hello\n" {
		t.Fatalf("the server got %q", got)
	}
	io.WriteString(server, "HELLO\n")
	server.CloseWrite()
	back, _ := io.ReadAll(client)
	if string(back) != "HELLO\n" {
		t.Fatalf("the sandbox got %q", back)
	}
}

func TestBackLinksAreBounded(t *testing.T) {
	address := freePort(t)
	f := start(t, nil, withBack(address, func(b *Back) { b.MaxWaiting, b.Park, b.Wait = 1, 200*time.Millisecond, 100*time.Millisecond }))
	// A sandbox's connection with no server connection parked is closed after Wait.
	lonely := sandbox(t, address)
	if data, _ := io.ReadAll(lonely); len(data) != 0 {
		t.Fatalf("a sandbox with no server got %q", data)
	}
	// One parked connection per service at most here: the second is 503.
	_, first := f.park(t, "gateway")
	_, second := f.park(t, "gateway")
	refused, err := http.ReadResponse(second, nil)
	if err != nil || refused.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second parked connection: %v, %v", refused, err)
	}
	// Not taken within Park: 204, and the server parks again.
	expired, err := http.ReadResponse(first, nil)
	if err != nil || expired.StatusCode != http.StatusNoContent {
		t.Fatalf("a parked connection no sandbox took: %v, %v", expired, err)
	}
	// An unknown service, and CONNECT-style paths, get nothing.
	_, unknown := f.park(t, "database")
	if answer, err := http.ReadResponse(unknown, nil); err != nil || answer.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown back link: %v, %v", answer, err)
	}
	// A client certificate of another CA is refused at the handshake, as for tunnels.
	if conn, err := f.dial(t, nil); err == nil {
		io.WriteString(conn, "GET /back/gateway HTTP/1.1\r\nHost: relay\r\n\r\n")
		if data, _ := io.ReadAll(conn); strings.Contains(string(data), "200") {
			t.Fatalf("no certificate got %q", data)
		}
		conn.Close()
	}
}

func TestOnlyTheNodesBridgesReachABackLink(t *testing.T) {
	address := freePort(t)
	f := start(t, nil, func(cfg *Config) {
		withBack(address, nil)(cfg)
		cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.255.0.0/16")} // loopback is not a sandbox bridge
	})
	_, reader := f.park(t, "gateway")
	stranger := sandbox(t, address)
	if data, _ := io.ReadAll(stranger); len(data) != 0 {
		t.Fatalf("a stranger got %q", data)
	}
	if !strings.Contains(f.logs.String(), "not in a network the relay serves") { // written before the close
		t.Fatalf("no refusal logged: %s", f.logs.String())
	}
	_ = reader // still parked: nothing was answered on it
}
