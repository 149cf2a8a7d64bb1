package relay

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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
	return sandboxFrom(t, address, "")
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
	f := start(t, nil, withBack(address, func(b *Back) { b.MaxWaiting, b.Park, b.Wait = 1, time.Minute, 100*time.Millisecond }))
	// A sandbox's connection with no server connection parked is closed after Wait.
	lonely := sandbox(t, address)
	if data, _ := io.ReadAll(lonely); len(data) != 0 {
		t.Fatalf("a sandbox with no server got %q", data)
	}
	// One parked connection per service at most here: of two, one is answered 503 at once, the
	// other stays parked (for Park, a minute; both are closed at the end).
	_, first := f.park(t, "gateway")
	_, second := f.park(t, "gateway")
	answers := make(chan *http.Response, 2)
	for _, reader := range []*bufio.Reader{first, second} {
		go func() {
			answer, _ := http.ReadResponse(reader, nil)
			answers <- answer
		}()
	}
	if refused := <-answers; refused == nil || refused.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("one of two parked connections: %v", refused)
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

func TestAParkedConnectionNoSandboxTookIsAnswered204(t *testing.T) {
	address := freePort(t)
	f := start(t, nil, withBack(address, func(b *Back) { b.Park = time.Millisecond }))
	// Not taken within Park: 204, and the server parks again.
	for range 2 {
		_, reader := f.park(t, "gateway")
		expired, err := http.ReadResponse(reader, nil)
		if err != nil || expired.StatusCode != http.StatusNoContent {
			t.Fatalf("a parked connection no sandbox took: %v, %v", expired, err)
		}
	}
}

// sandboxFrom connects to the back link's address from a given loopback source address ("": any).
func sandboxFrom(t *testing.T, address netip.AddrPort, source string) *net.TCPConn {
	t.Helper()
	dialer := net.Dialer{}
	if source != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := dialer.Dial("tcp", address.String())
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

// closedFirst answers which of the connections the relay closes first (the others are waiting
// for a server connection for a minute): the relay counts them in whatever order its goroutines run.
func closedFirst(t *testing.T, conns ...*net.TCPConn) int {
	t.Helper()
	closed := make(chan int, len(conns))
	for i, conn := range conns {
		go func() {
			if data, _ := io.ReadAll(conn); len(data) != 0 {
				t.Errorf("a waiting sandbox got %q", data)
			}
			closed <- i
		}()
	}
	return <-closed
}

func TestASourcePastItsCapIsClosedWhileAnotherStillPairs(t *testing.T) {
	address := freePort(t)
	f := start(t, nil, withBack(address, func(b *Back) { b.Wait, b.PerSource = time.Minute, 2 }))
	// Three connections from one sandbox that send nothing: two wait, the third is closed at once.
	greedy := []*net.TCPConn{sandboxFrom(t, address, "127.0.0.1"), sandboxFrom(t, address, "127.0.0.1"),
		sandboxFrom(t, address, "127.0.0.1")}
	closedFirst(t, greedy...)
	// Another sandbox pairs with the one parked server connection: the waiting ones sent nothing,
	// so they took none.
	_, reader := f.park(t, "gateway")
	other := sandboxFrom(t, address, "127.0.0.2")
	io.WriteString(other, "hello\n")
	other.CloseWrite()
	answer, err := http.ReadResponse(reader, nil)
	if err != nil || answer.StatusCode != http.StatusOK {
		t.Fatalf("parked connection answered %v, %v", answer, err)
	}
	if peer := answer.Header.Get("Vibebox-Peer"); peer != other.LocalAddr().String() {
		t.Fatalf("Vibebox-Peer %q, the other sandbox is %s", peer, other.LocalAddr())
	}
	if got, _ := io.ReadAll(reader); string(got) != "hello\n" {
		t.Fatalf("the server got %q", got)
	}
}

func TestBackLinksFillingTheirPoolLeaveTunnelsWorking(t *testing.T) {
	port := echo(t)
	address := freePort(t)
	f := start(t, []int{port}, func(cfg *Config) {
		withBack(address, func(b *Back) { b.Wait, b.MaxConns = time.Minute, 2 })(cfg)
		cfg.MaxConns = 2
	})
	// Three sandbox connections (from three sources) for a pool of two: one is closed at once.
	closedFirst(t, sandboxFrom(t, address, "127.0.0.1"), sandboxFrom(t, address, "127.0.0.2"),
		sandboxFrom(t, address, "127.0.0.3"))
	// The two waiting hold none of the tunnels' slots: two tunnels open.
	for range 2 {
		status, _, conn := f.connect(t, "127.0.0.1:"+strconv.Itoa(port))
		if status != http.StatusOK {
			t.Fatalf("CONNECT answered %d with the back links' pool full", status)
		}
		io.WriteString(conn, "hi\n")
		conn.CloseWrite()
		if got, _ := io.ReadAll(conn); string(got) != "HI\n" {
			t.Fatalf("the tunnel carried %q", got)
		}
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
