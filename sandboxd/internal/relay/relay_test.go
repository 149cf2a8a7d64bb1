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
	"strconv"
	"strings"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/testsupport"
)

type fixture struct {
	addr   string
	ca     testsupport.Authority
	client tls.Certificate
	logs   *bytes.Buffer
}

// start runs a relay on loopback that opens tunnels to `ports` on 127.0.0.0/8 (or `allow`).
func start(t *testing.T, ports []int, change func(*Config)) fixture {
	t.Helper()
	ca := testsupport.NewAuthority(t, "node CA")
	logs := &bytes.Buffer{}
	cfg := Config{
		TLS: &tls.Config{
			Certificates: []tls.Certificate{ca.Issue(t, "relay", x509.ExtKeyUsageServerAuth)},
			ClientCAs:    ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		},
		Allow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Ports:     map[uint16]bool{},
		MaxConns:  8,
		Handshake: 5 * time.Second,
		Idle:      time.Minute,
		Dial:      2 * time.Second,
		Log:       log.New(logs, "", 0), // read only after the answers the test waits for
	}
	for _, port := range ports {
		cfg.Ports[uint16(port)] = true
	}
	if change != nil {
		change(&cfg)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay := New(cfg)
	go relay.Serve(listener)
	t.Cleanup(func() { listener.Close() })
	return fixture{listener.Addr().String(), ca, ca.Issue(t, "vibebox-server", x509.ExtKeyUsageClientAuth), logs}
}

// echo is a target that answers each line in upper case and closes its side after the client's.
func echo(t *testing.T) int {
	return serve(t, func(conn net.Conn) {
		data, _ := io.ReadAll(conn) // until the client's half-close
		conn.Write(bytes.ToUpper(data))
	})
}

// serve runs a target on loopback, each connection handled by handle (then closed); its port.
func serve(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	return listener.Addr().(*net.TCPAddr).Port
}

func (f fixture) dial(t *testing.T, certificates []tls.Certificate) (*tls.Conn, error) {
	t.Helper()
	return tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.ca.Pool, Certificates: certificates, ServerName: "127.0.0.1"})
}

// connect sends CONNECT target and answers the status and the connection.
func (f fixture) connect(t *testing.T, target string) (int, string, *tls.Conn) {
	t.Helper()
	conn, err := f.dial(t, []tls.Certificate{f.client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	reader := bufio.NewReader(conn)
	response, err := http.ReadResponse(reader, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("no answer to CONNECT %s: %v", target, err)
	}
	if response.StatusCode == http.StatusOK { // what follows is the tunnel's, not a body
		if reader.Buffered() > 0 {
			t.Fatalf("bytes after the 200 before the target said anything")
		}
		return response.StatusCode, "", conn
	}
	body, _ := io.ReadAll(io.LimitReader(response.Body, 1024))
	return response.StatusCode, string(body), conn
}

func TestATunnelCarriesBothWaysAndPassesHalfCloses(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, nil)
	status, _, conn := f.connect(t, "127.0.0.1:"+strconv.Itoa(port))
	if status != http.StatusOK {
		t.Fatalf("CONNECT answered %d", status)
	}
	payload := strings.Repeat("hello through the relay\n", 10000) // 240 KB: several reads each way
	if _, err := io.WriteString(conn, payload); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil { // the target answers only after this
		t.Fatal(err)
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(answer) != strings.ToUpper(payload) {
		t.Fatalf("answer of %d bytes, want %d", len(answer), len(payload))
	}
}

func TestBytesSentWithTheRequestAreNotLost(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, nil)
	conn, err := f.dial(t, []tls.Certificate{f.client})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := "127.0.0.1:" + strconv.Itoa(port)
	io.WriteString(conn, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\nearly bytes")
	conn.CloseWrite()
	all, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(all), "HTTP/1.1 200") || !strings.HasSuffix(string(all), "\r\n\r\nEARLY BYTES") {
		t.Fatalf("got %q", all)
	}
}

func TestOnlyAClientCertificateOfTheCAGetsIn(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, nil)
	other := testsupport.NewAuthority(t, "another CA").Issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	for name, certificates := range map[string][]tls.Certificate{"none": nil, "another CA's": {other}} {
		conn, err := f.dial(t, certificates)
		if err == nil {
			// TLS 1.3: the client's handshake ends before the server checks; the refusal comes at the first read.
			io.WriteString(conn, "CONNECT 127.0.0.1:"+strconv.Itoa(port)+" HTTP/1.1\r\n\r\n")
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatalf("%s client certificate: a tunnel was offered", name)
		}
	}
}

func TestRefusalsNameTheirReasonAndOpenNothing(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, func(cfg *Config) {
		cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	cases := []struct {
		request string
		status  int
		reason  string
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed, "only CONNECT"},
		{"CONNECT localhost:" + strconv.Itoa(port) + " HTTP/1.1\r\n\r\n", http.StatusBadRequest, "not a name"},
		{"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", http.StatusBadRequest, "ADDRESS:PORT"},
		{"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", http.StatusForbidden, "port 1 is not"},
		// In the loopback network, not in the allowed /32: refused before any connection is tried.
		{"CONNECT 127.0.0.2:" + strconv.Itoa(port) + " HTTP/1.1\r\n\r\n", http.StatusForbidden, "127.0.0.2 is not in"},
		{"CONNECT [::ffff:127.0.0.2]:" + strconv.Itoa(port) + " HTTP/1.1\r\n\r\n", http.StatusForbidden, "127.0.0.2 is not in"},
		{"CONNECT 127.0.0.1:" + strconv.Itoa(port) + " HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", http.StatusBadRequest, "8 KiB"},
	}
	for _, c := range cases {
		conn, err := f.dial(t, []tls.Certificate{f.client})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, c.request)
		response, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", c.request[:20], err)
		}
		body, _ := io.ReadAll(response.Body)
		conn.Close()
		if response.StatusCode != c.status || !strings.Contains(string(body), c.reason) {
			t.Fatalf("%q: %d %q, want %d %q", c.request[:20], response.StatusCode, body, c.status, c.reason)
		}
	}
	if strings.Contains(f.logs.String(), "tunnel ") {
		t.Fatalf("a refused request opened a tunnel:\n%s", f.logs)
	}
}

func TestNoMoreTunnelsThanAllowed(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, func(cfg *Config) { cfg.MaxConns = 2 })
	target := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 2; i++ {
		if status, _, _ := f.connect(t, target); status != http.StatusOK {
			t.Fatalf("tunnel %d: %d", i+1, status)
		}
	}
	status, body, _ := f.connect(t, target)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "2 tunnels are open") {
		t.Fatalf("third tunnel: %d %q\n%s", status, body, f.logs)
	}
}

func TestAQuietTunnelIsClosedAndASilentClientToo(t *testing.T) {
	port := echo(t)
	f := start(t, []int{port}, func(cfg *Config) {
		cfg.Idle = 300 * time.Millisecond
		cfg.Handshake = 300 * time.Millisecond
	})
	_, _, conn := f.connect(t, "127.0.0.1:"+strconv.Itoa(port))
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound for the test, not the thing tested
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("a byte came from a target that sent nothing")
	} else if netErr, ok := err.(net.Error); ok && netErr.Timeout() {
		t.Fatal("the relay kept a quiet tunnel open")
	}
	silent, err := f.dial(t, []tls.Certificate{f.client}) // says nothing after its handshake
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay answered a request never sent")
	} else if netErr, ok := err.(net.Error); ok && netErr.Timeout() {
		t.Fatal("the relay waited forever for a CONNECT")
	}
}

// A node's relay opens a range of ports (every one a preview may need) on its bridges, but never
// an address of its own host there (a bridge's gateway), and nothing when those cannot be read.
func TestPortRangesAndTheHostsOwnAddresses(t *testing.T) {
	port := echo(t)
	var hostErr error
	f := start(t, nil, func(cfg *Config) {
		cfg.PortRanges = [][2]uint16{{uint16(port) - 1, uint16(port)}}
		cfg.HostAddrs = func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::ffff:127.0.0.3")}, hostErr
		}
	})
	if status, body, _ := f.connect(t, "127.0.0.1:"+strconv.Itoa(port)); status != http.StatusOK {
		t.Fatalf("a port in the range: %d %q", status, body)
	}
	cases := []struct {
		target string
		status int
		reason string
	}{
		{"127.0.0.1:" + strconv.Itoa(port+1), http.StatusForbidden, "port " + strconv.Itoa(port+1) + " is not"},
		{"127.0.0.1:0", http.StatusForbidden, "port 0 is not"},
		{"127.0.0.2:" + strconv.Itoa(port), http.StatusForbidden, "127.0.0.2 is an address of the relay's host"},
		{"[::ffff:127.0.0.3]:" + strconv.Itoa(port), http.StatusForbidden, "127.0.0.3 is an address of the relay's host"},
	}
	for _, c := range cases {
		if status, body, _ := f.connect(t, c.target); status != c.status || !strings.Contains(body, c.reason) {
			t.Fatalf("%s: %d %q, want %d %q", c.target, status, body, c.status, c.reason)
		}
	}
	hostErr = io.ErrUnexpectedEOF // the host's addresses unknown: nothing is opened
	if status, body, _ := f.connect(t, "127.0.0.1:"+strconv.Itoa(port)); status != http.StatusServiceUnavailable || !strings.Contains(body, "host's addresses cannot be read") {
		t.Fatalf("unknown host addresses: %d %q", status, body)
	}
	if strings.Contains(f.logs.String(), "tunnel ") { // (the first one's line comes when it ends)
		t.Fatalf("a refused request opened a tunnel:\n%s", f.logs)
	}
}

func TestHostAddressesLeaveLoopbackOut(t *testing.T) {
	own, err := HostAddresses()
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range own {
		if addr.IsLoopback() || addr.Is4In6() {
			t.Fatalf("%s among the host's addresses", addr)
		}
	}
}
