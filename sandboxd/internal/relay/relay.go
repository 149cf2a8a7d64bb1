// Package relay is `sandboxd relay`: the one process VibeBox runs on a remote Docker node so the
// server can reach the sandboxes there (docs/nodes.md, "How the server reaches sandboxd on a
// remote node"). A sandbox's sandboxd listens on the container's bridge address, routable only
// from the node; the relay listens on the node's address with mutual TLS and opens, for each
// HTTP CONNECT it accepts, one TCP tunnel to an allowed address and port.
//
// Written here, not taken from a library: the standard library has no CONNECT server, and the
// rules (client certificate only, IP literals in the allowed networks, the allowed ports, bounded
// headers, deadlines, a cap on tunnels) are the whole of it.
package relay

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what `sandboxd relay` is started with.
type Config struct {
	TLS       *tls.Config     // the node's certificate; client certificates required and verified
	Allow     []netip.Prefix  // networks a tunnel may go to (the node's sandbox bridges)
	Ports     map[uint16]bool // ports a tunnel may go to (sandboxd's)
	MaxConns  int             // tunnels open at once; more are answered 503
	Handshake time.Duration   // for the TLS handshake and the CONNECT request together
	Idle      time.Duration   // a tunnel with no byte either way this long is closed
	Dial      time.Duration   // to connect to the target
	Log       *log.Logger
	Firewall  *Firewall // --firewall: GET and POST /firewall run iptables here (firewall.go); nil: off
	Back      *Back     // --back: the server's services for the node's sandboxes (reverse.go); nil: off

	// More ports a tunnel may go to, inclusive ranges (a node's relay: 1-65535, previews' ports).
	PortRanges [][2]uint16
	// The host's own addresses (HostAddresses), refused even inside Allow: a bridge's gateway is
	// the node's host, which a tunnel never reaches. Asked at each CONNECT (bridges come and go);
	// an error refuses the tunnel. Nil: no such check (tests on loopback).
	HostAddrs func() ([]netip.Addr, error)
}

// maxHeader bounds the CONNECT request: a line and a few headers, never more.
const maxHeader = 8 << 10

// Relay serves Config on a listener.
type Relay struct {
	cfg   Config
	slots chan struct{}
	wg    sync.WaitGroup
}

func New(cfg Config) *Relay {
	return &Relay{cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}
}

// Serve accepts until the listener is closed; it answers the listener's error then.
func (r *Relay) Serve(listener net.Listener) error {
	tlsListener := tls.NewListener(listener, r.cfg.TLS)
	if r.cfg.Back != nil {
		stop := make(chan struct{})
		defer close(stop)
		r.serveBackListeners(stop)
	}
	for {
		conn, err := tlsListener.Accept()
		if err != nil {
			var temporary interface{ Temporary() bool }
			if errors.As(err, &temporary) && temporary.Temporary() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.handle(conn.(*tls.Conn))
		}()
	}
}

// Wait waits for the open tunnels to end (after the listener was closed).
func (r *Relay) Wait() { r.wg.Wait() }

func (r *Relay) handle(conn *tls.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(r.cfg.Handshake))
	if err := conn.Handshake(); err != nil {
		r.cfg.Log.Printf("refused %s: TLS: %v", conn.RemoteAddr(), err)
		return
	}
	certificates := conn.ConnectionState().PeerCertificates
	if len(certificates) == 0 { // only a TLS config without RequireAndVerifyClientCert lets one in
		r.cfg.Log.Printf("refused %s: no client certificate", conn.RemoteAddr())
		return
	}
	peer := certificates[0].Subject.CommonName
	limit := &io.LimitedReader{R: conn, N: maxHeader} // raised for a firewall request's body only
	reader := bufio.NewReaderSize(limit, 1024)
	request, err := http.ReadRequest(reader)
	if err != nil {
		answer(conn, http.StatusBadRequest, "a CONNECT request of at most 8 KiB was expected")
		return
	}
	if r.cfg.Firewall != nil && request.Method != http.MethodConnect && request.URL.Path == "/firewall" {
		r.serveFirewall(conn, peer, request, limit)
		return
	}
	if r.cfg.Back != nil && isBack(request) {
		r.serveBack(conn, peer, request)
		return
	}
	target, status, why := r.check(request)
	if status != 0 {
		r.cfg.Log.Printf("refused %s (%s) CONNECT %q: %s", conn.RemoteAddr(), peer, request.Host, why)
		answer(conn, status, why)
		return
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		answer(conn, http.StatusServiceUnavailable, fmt.Sprintf("%d tunnels are open, the most this relay allows", r.cfg.MaxConns))
		return
	}
	upstream, err := net.DialTimeout("tcp", target.String(), r.cfg.Dial)
	if err != nil { // the reason in the log only: a client learns no more than "cannot connect"
		r.cfg.Log.Printf("refused %s (%s) CONNECT %s: %v", conn.RemoteAddr(), peer, target, err)
		answer(conn, http.StatusBadGateway, "cannot connect to "+target.String())
		return
	}
	defer upstream.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent after its request (it may not wait for the answer) go first.
	buffered, _ := reader.Peek(reader.Buffered())
	if len(buffered) > 0 {
		if _, err := upstream.Write(buffered); err != nil {
			return
		}
	}
	started := time.Now()
	sent, received := r.splice(conn, upstream)
	r.cfg.Log.Printf("tunnel %s (%s) -> %s: %d bytes sent, %d received, %s", conn.RemoteAddr(), peer, target,
		sent, received, time.Since(started).Round(time.Millisecond))
}

// check answers the target of an acceptable request, or the status and reason of a refusal.
func (r *Relay) check(request *http.Request) (netip.AddrPort, int, string) {
	if request.Method != http.MethodConnect {
		return netip.AddrPort{}, http.StatusMethodNotAllowed, "only CONNECT is served"
	}
	host, portText, err := net.SplitHostPort(request.Host)
	if err != nil {
		return netip.AddrPort{}, http.StatusBadRequest, "CONNECT wants ADDRESS:PORT"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil { // no names: nothing here resolves anything
		return netip.AddrPort{}, http.StatusBadRequest, "CONNECT wants an IP address, not a name"
	}
	addr = addr.Unmap()
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || !r.portAllowed(uint16(port)) {
		return netip.AddrPort{}, http.StatusForbidden, "port " + portText + " is not one the relay opens"
	}
	for _, prefix := range r.cfg.Allow {
		if prefix.Contains(addr) {
			if status, why := r.hostAddress(addr); status != 0 {
				return netip.AddrPort{}, status, why
			}
			return netip.AddrPortFrom(addr, uint16(port)), 0, ""
		}
	}
	return netip.AddrPort{}, http.StatusForbidden, addr.String() + " is not in a network the relay opens"
}

func (r *Relay) portAllowed(port uint16) bool {
	if port == 0 {
		return false
	}
	if r.cfg.Ports[port] {
		return true
	}
	for _, span := range r.cfg.PortRanges {
		if span[0] <= port && port <= span[1] {
			return true
		}
	}
	return false
}

// hostAddress refuses an address of the relay's host (HostAddrs), and everything when they cannot be read.
func (r *Relay) hostAddress(addr netip.Addr) (int, string) {
	if r.cfg.HostAddrs == nil {
		return 0, ""
	}
	own, err := r.cfg.HostAddrs()
	if err != nil {
		return http.StatusServiceUnavailable, "the host's addresses cannot be read: " + err.Error()
	}
	for _, item := range own {
		if item.Unmap() == addr {
			return http.StatusForbidden, addr.String() + " is an address of the relay's host, not a sandbox's"
		}
	}
	return 0, ""
}

// HostAddresses answers the addresses of this host's interfaces but loopback ones (with
// --network host, the node's: each sandbox bridge's gateway among them). Loopback is left out: it
// is never inside a bridge's subnet, so only an --allow that names it explicitly reaches it.
func HostAddresses() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var own []netip.Addr
	for _, item := range addrs {
		prefix, ok := item.(*net.IPNet)
		if !ok {
			continue
		}
		if addr, ok := netip.AddrFromSlice(prefix.IP); ok && !addr.Unmap().IsLoopback() {
			own = append(own, addr.Unmap())
		}
	}
	return own, nil
}

// splice copies both ways until both have ended, each direction's end passed on as a half-close;
// a tunnel with no byte either way for Idle is cut. It answers the bytes sent to and received
// from the target.
func (r *Relay) splice(client *tls.Conn, upstream net.Conn) (int64, int64) {
	var sent, received int64
	var active atomic.Int64 // the last byte either way (unix nanoseconds)
	active.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	copyOne := func(dst, src net.Conn, count *int64, closeWrite func() error) {
		defer func() { done <- struct{}{} }()
		buffer := make([]byte, 32<<10)
		for {
			_ = src.SetReadDeadline(time.Unix(0, active.Load()).Add(r.cfg.Idle))
			n, err := src.Read(buffer)
			if n > 0 {
				active.Store(time.Now().UnixNano())
				_ = dst.SetWriteDeadline(time.Now().Add(r.cfg.Idle))
				if _, werr := dst.Write(buffer[:n]); werr != nil {
					client.Close()
					upstream.Close()
					return
				}
				*count += int64(n)
			}
			if err == nil {
				continue
			}
			var timeout net.Error
			if errors.As(err, &timeout) && timeout.Timeout() {
				if time.Since(time.Unix(0, active.Load())) < r.cfg.Idle {
					continue // the other way was busy meanwhile
				}
				client.Close() // quiet both ways: the whole tunnel ends
				upstream.Close()
				return
			}
			if errors.Is(err, io.EOF) {
				_ = closeWrite() // this way ended: the other may still answer
			} else {
				client.Close() // reset, or closed by the other way: nothing more either way
				upstream.Close()
			}
			return
		}
	}
	go copyOne(upstream, client, &sent, upstream.(*net.TCPConn).CloseWrite)
	go copyOne(client, upstream, &received, client.CloseWrite)
	<-done
	<-done
	return sent, received
}

func answer(conn net.Conn, status int, why string) {
	body := why + "\n"
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}
