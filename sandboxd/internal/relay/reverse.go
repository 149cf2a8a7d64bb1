package relay

// Back links (`sandboxd relay --back`, docs/nodes.md "The server's services from a node"): the
// node's sandboxes reach the server's model gateway and egress proxy without the node ever
// dialling the server. The relay listens, for each service, on an address of the node's sandbox
// bridge (its gateway, the port the server uses locally). The server keeps a few mutual-TLS
// connections parked here (`GET /back/NAME`); a sandbox's connection to the service is paired
// with one of them: the parked request is answered 200 with the sandbox's address
// (`Vibebox-Peer`), then bytes are spliced both ways as in a tunnel. The server knows the node
// (it dialled that node's relay) and the relay tells it the sandbox's bridge address: the pair is
// the sandbox's identity there (the egress proxy's lookup).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Back is the back links' configuration; nil in Config: none.
type Back struct {
	Services   map[string]netip.AddrPort // service name -> where the node's sandboxes connect to it
	MaxWaiting int                       // server connections parked per service; more are answered 503
	Park       time.Duration             // a parked connection no sandbox took is answered 204 after this
	Wait       time.Duration             // a sandbox's connection waits this long for a parked one, then is closed
	Retry      time.Duration             // between attempts to listen on an address not there yet
	// Sandbox connections open or waiting at once, all services together (0: DefaultBackMax): a
	// pool of their own, never the tunnels' (--max-tunnels); more are closed at once.
	MaxConns int
	// Of those, from one source address (0: DefaultBackPerSource); more are closed at once.
	PerSource int

	once     sync.Once
	queues   map[string]chan *backConn // unbuffered: a send is a pairing
	waiting  map[string]*atomic.Int64
	slots    chan struct{}
	mu       sync.Mutex
	bySource map[netip.Addr]int
}

// The defaults of --back-max and --back-per-source.
const (
	DefaultBackMax       = 256
	DefaultBackPerSource = 8
)

// backConn is a sandbox's connection on its way to a parked server connection: the bytes it sent
// first (it is paired only once it sent some) and the release of its slot and source count.
type backConn struct {
	conn    *net.TCPConn
	first   []byte
	release func()
}

func (b *Back) init() {
	b.once.Do(func() {
		b.queues = map[string]chan *backConn{}
		b.waiting = map[string]*atomic.Int64{}
		for name := range b.Services {
			b.queues[name] = make(chan *backConn)
			b.waiting[name] = &atomic.Int64{}
		}
		if b.MaxConns <= 0 {
			b.MaxConns = DefaultBackMax
		}
		if b.PerSource <= 0 {
			b.PerSource = DefaultBackPerSource
		}
		b.slots = make(chan struct{}, b.MaxConns)
		b.bySource = map[netip.Addr]int{}
	})
}

// take counts one more connection from source, or answers why it is refused; release undoes it
// (once, whoever calls it).
func (b *Back) take(source netip.Addr) (release func(), why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bySource[source] >= b.PerSource {
		return nil, fmt.Sprintf("%d connections from it are open or waiting", b.PerSource)
	}
	select {
	case b.slots <- struct{}{}:
	default:
		return nil, fmt.Sprintf("%d back link connections are open or waiting", b.MaxConns)
	}
	b.bySource[source]++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.bySource[source]--; b.bySource[source] <= 0 {
				delete(b.bySource, source)
			}
			<-b.slots
		})
	}, ""
}

// serveBackListeners listens for each service until the relay's listener is closed (`stop`).
// An address that is not on the host yet (the bridge not made) is tried again every Retry.
func (r *Relay) serveBackListeners(stop <-chan struct{}) {
	b := r.cfg.Back
	b.init()
	for name, address := range b.Services {
		go r.backListen(name, address, stop)
	}
}

func (r *Relay) backListen(name string, address netip.AddrPort, stop <-chan struct{}) {
	b := r.cfg.Back
	var listener net.Listener
	for logged := false; ; logged = true {
		var err error
		listener, err = net.Listen("tcp", address.String())
		if err == nil {
			break
		}
		if !logged {
			r.cfg.Log.Printf("back link %s: cannot listen on %s yet (tried again every %s): %v", name, address, b.Retry, err)
		}
		select {
		case <-stop:
			return
		case <-time.After(b.Retry):
		}
	}
	r.cfg.Log.Printf("back link %s: listening on %s", name, address)
	go func() {
		<-stop
		listener.Close()
	}()
	for {
		conn, err := listener.Accept()
		if err != nil {
			var temporary interface{ Temporary() bool }
			if errors.As(err, &temporary) && temporary.Temporary() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		go r.backAccepted(name, conn.(*net.TCPConn))
	}
}

// backAccepted pairs one sandbox connection with a parked server connection, or closes it. It
// holds a slot of the back links' own pool and counts against its source's cap from here until it
// is closed; it takes a parked server connection only once it sent its first bytes (the gateway's
// and the proxy's clients speak first), so one that sends nothing holds none.
func (r *Relay) backAccepted(name string, conn *net.TCPConn) {
	b := r.cfg.Back
	source, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	allowed := false
	for _, prefix := range r.cfg.Allow {
		allowed = allowed || prefix.Contains(source.Addr().Unmap())
	}
	if !allowed { // only the node's sandbox bridges: nothing else on the host or its LAN
		r.cfg.Log.Printf("back link %s: refused %s: not in a network the relay serves", name, source)
		conn.Close()
		return
	}
	release, why := b.take(source.Addr().Unmap())
	if release == nil {
		r.cfg.Log.Printf("back link %s: refused %s: %s", name, source, why)
		conn.Close()
		return
	}
	paired := false
	defer func() {
		if !paired {
			conn.Close()
			release()
		}
	}()
	deadline := time.Now().Add(b.Wait)
	_ = conn.SetReadDeadline(deadline)
	first := make([]byte, 4096)
	n, err := conn.Read(first)
	if n == 0 {
		if isTimeout(err) {
			r.cfg.Log.Printf("back link %s: %s sent nothing within %s: closed", name, source, b.Wait)
		}
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case b.queues[name] <- &backConn{conn: conn, first: first[:n], release: release}:
		paired = true // the parked connection's goroutine owns it (and its slot) now
	case <-timer.C:
		r.cfg.Log.Printf("back link %s: %s waited %s for the server: closed", name, source, b.Wait)
	}
}

// serveBack parks one server connection (`GET /back/NAME`) until a sandbox's connection comes,
// Park passes (204) or the server goes away.
func (r *Relay) serveBack(conn *tls.Conn, peer string, request *http.Request) {
	b := r.cfg.Back
	b.init()
	name := strings.TrimPrefix(request.URL.Path, "/back/")
	queue, known := b.queues[name]
	if request.Method != http.MethodGet || !known {
		answer(conn, http.StatusNotFound, "no back link named "+name)
		return
	}
	waiting := b.waiting[name]
	if waiting.Add(1) > int64(b.MaxWaiting) {
		waiting.Add(-1)
		answer(conn, http.StatusServiceUnavailable, fmt.Sprintf("%d connections are waiting for %s already", b.MaxWaiting, name))
		return
	}
	defer waiting.Add(-1)
	_ = conn.SetDeadline(time.Time{}) // the handshake's deadline: parked as long as Park
	// The server sends nothing while parked: a read ends only when it went away (or misbehaves).
	gone := make(chan error, 1)
	go func() {
		var one [1]byte
		_, err := conn.Read(one[:])
		if err == nil {
			err = errors.New("the server sent bytes while parked")
		}
		gone <- err
	}()
	timer := time.NewTimer(b.Park)
	defer timer.Stop()
	var accepted *backConn
	select {
	case accepted = <-queue:
	case <-gone:
		return
	case <-timer.C:
		_ = conn.SetReadDeadline(time.Now()) // ends the watching read
		<-gone
		_ = conn.SetDeadline(time.Now().Add(r.cfg.Handshake))
		_, _ = io.WriteString(conn, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		return
	}
	sandbox := accepted.conn
	defer accepted.release()
	defer sandbox.Close()
	_ = conn.SetReadDeadline(time.Now()) // ends the watching read; anything else it got: no pairing
	if err := <-gone; !isTimeout(err) {
		r.cfg.Log.Printf("back link %s: the parked connection from %s broke (%v): %s closed", name, peer, err, sandbox.RemoteAddr())
		return
	}
	_ = conn.SetDeadline(time.Time{})
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nVibebox-Service: %s\r\nVibebox-Peer: %s\r\n\r\n", name, sandbox.RemoteAddr())
	_ = conn.SetWriteDeadline(time.Now().Add(r.cfg.Handshake))
	if _, err := io.WriteString(conn, head); err != nil {
		return
	}
	if _, err := conn.Write(accepted.first); err != nil { // what the sandbox sent before the pairing
		return
	}
	started := time.Now()
	sent, received := r.splice(conn, sandbox)
	received += int64(len(accepted.first))
	r.cfg.Log.Printf("back link %s %s -> server (%s): %d bytes to the sandbox, %d from it, %s", name,
		sandbox.RemoteAddr(), peer, sent, received, time.Since(started).Round(time.Millisecond))
}

// isBack reports whether the request is the server parking a back link (`GET /back/NAME`).
func isBack(request *http.Request) bool {
	return request.Method != http.MethodConnect && strings.HasPrefix(request.URL.Path, "/back/")
}

func isTimeout(err error) bool {
	var timeout net.Error
	return errors.As(err, &timeout) && timeout.Timeout()
}
