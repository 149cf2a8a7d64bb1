package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/relay"
)

// relayCommand is `sandboxd relay`: run on a remote Docker node (docs/nodes.md), with the node
// engine's own TLS material: its certificate and key, and the CA that signs VibeBox's client
// certificate (dockerd's --tlscert, --tlskey, --tlscacert).
func relayCommand(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("sandboxd relay", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", ":2377", "address to accept tunnels on (TLS)")
	certFile := flags.String("cert", "", "the relay's certificate (PEM)")
	keyFile := flags.String("key", "", "its private key (PEM)")
	caFile := flags.String("client-ca", "", "the CA whose client certificates are accepted (PEM)")
	allow := flags.String("allow", "", "networks tunnels may go to, comma-separated CIDRs (the node's sandbox bridges)")
	ports := flags.String("ports", "49983", "ports tunnels may go to, comma-separated, each a port or a range LOW-HIGH (1-65535)")
	maxTunnels := flags.Int("max-tunnels", 1024, "tunnels open at once")
	idle := flags.Duration("idle", 10*time.Minute, "a tunnel with no byte either way this long is closed")
	firewall := flags.Bool("firewall", false, "also run the server's iptables commands on this host (GET and POST /firewall)")
	back := flags.String("back", "", "the server's services for the node's sandboxes: NAME=ADDRESS:PORT, comma-separated (back links)")
	backWaiting := flags.Int("back-waiting", 64, "server connections parked per back link service")
	backPark := flags.Duration("back-park", time.Minute, "a parked server connection no sandbox took is answered 204 after this")
	backWait := flags.Duration("back-wait", 10*time.Second, "a sandbox's connection waits this long for a parked server connection")
	backMax := flags.Int("back-max", relay.DefaultBackMax, "sandbox connections to back links open or waiting at once (not counted in --max-tunnels)")
	backPerSource := flags.Int("back-per-source", relay.DefaultBackPerSource, "of those, from one source address")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	logger := log.New(stderr, "sandboxd relay: ", 0)
	cfg, credentials, err := relayConfig(*certFile, *keyFile, *caFile, *allow, *ports, *maxTunnels, *idle)
	if err == nil {
		cfg.Back, err = backConfig(*back, *backWaiting, *backPark, *backWait, *backMax, *backPerSource) // relay_back.go
	}
	if err != nil || flags.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", flags.Arg(0))
		}
		fmt.Fprintf(stderr, "sandboxd relay: %v\n", err)
		return 2
	}
	cfg.Log = logger
	if *firewall { // needs --network host and CAP_NET_ADMIN (docs/sandboxd.md, "The firewall agent")
		cfg.Firewall = &relay.Firewall{Search: relay.DefaultSearch, Deadline: 30 * time.Second,
			DNS: relay.DefaultDNSFiles}
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Printf("cannot listen: %v", err)
		return 1
	}
	server := relay.New(cfg)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT) // as a container's PID 1 nothing else ends it
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP) // the TLS files read again (docs/sandboxd.md, "The relay")
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	logger.Printf("listening on %s, TLS files %s", listener.Addr(), credentials.Digest())
	for {
		select {
		case <-reload:
			reloadCredentials(credentials, logger)
		case <-stop:
			listener.Close()
			return 0
		case err := <-served:
			logger.Printf("serving stopped: %v", err)
			return 1
		}
	}
}

// reloadCredentials is SIGHUP's: new handshakes get the files as they are now, established
// connections keep theirs; files that cannot be used leave the ones in force as they were.
func reloadCredentials(credentials *relay.Credentials, logger *log.Logger) {
	before := credentials.Digest()
	digest, err := credentials.Reload()
	switch {
	case err != nil:
		logger.Printf("reload refused, TLS files %s kept: %v", before, err)
	case digest == before:
		logger.Printf("reloaded: TLS files %s unchanged", digest)
	default:
		logger.Printf("reloaded: TLS files %s -> %s", before, digest)
	}
}

func relayConfig(certFile, keyFile, caFile, allow, ports string, maxTunnels int, idle time.Duration) (cfg relay.Config, credentials *relay.Credentials, err error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return cfg, nil, errors.New("--cert, --key and --client-ca are required: the relay serves only mutual TLS")
	}
	credentials, err = relay.LoadCredentials(certFile, keyFile, caFile) // read again on SIGHUP
	if err != nil {
		return cfg, nil, err
	}
	for _, item := range strings.Split(allow, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			return cfg, nil, fmt.Errorf("--allow: %w", err)
		}
		cfg.Allow = append(cfg.Allow, prefix.Masked())
	}
	if len(cfg.Allow) == 0 {
		return cfg, nil, errors.New("--allow: name at least one network (the node's sandbox bridges)")
	}
	cfg.Ports = map[uint16]bool{}
	for _, item := range strings.Split(ports, ",") {
		low, high, isRange := strings.Cut(strings.TrimSpace(item), "-")
		first, err := strconv.ParseUint(low, 10, 16)
		last := first
		if isRange && err == nil {
			last, err = strconv.ParseUint(high, 10, 16)
		}
		if err != nil || first == 0 || last < first {
			return cfg, nil, fmt.Errorf("--ports: %q is not a port or a range LOW-HIGH of ports", item)
		}
		if isRange {
			cfg.PortRanges = append(cfg.PortRanges, [2]uint16{uint16(first), uint16(last)})
		} else {
			cfg.Ports[uint16(first)] = true
		}
	}
	// Inside the bridges, the host's own addresses (each bridge's gateway) are refused: a tunnel
	// reaches sandboxes, never the node itself (docs/sandboxd.md, "The relay").
	cfg.HostAddrs = relay.HostAddresses
	if maxTunnels < 1 || idle <= 0 {
		return cfg, nil, errors.New("--max-tunnels must be 1 or more, --idle more than 0")
	}
	cfg.TLS = credentials.ServerConfig()
	cfg.MaxConns, cfg.Idle = maxTunnels, idle
	cfg.Handshake, cfg.Dial = 10*time.Second, 5*time.Second
	return cfg, credentials, nil
}
