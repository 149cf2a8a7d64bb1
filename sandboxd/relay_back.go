package main

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"vibebox.dev/sandboxd/internal/relay"
)

var backName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// backConfig parses `--back NAME=ADDRESS:PORT[,…]` (docs/sandboxd.md, "Back links"); "" is none (nil).
func backConfig(spec string, waiting int, park, wait time.Duration, most, perSource int) (*relay.Back, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	if waiting < 1 || park <= 0 || wait <= 0 || most < 1 || perSource < 1 {
		return nil, errors.New("--back-waiting, --back-max and --back-per-source must be 1 or more, --back-park and --back-wait more than 0")
	}
	back := &relay.Back{Services: map[string]netip.AddrPort{}, MaxWaiting: waiting, Park: park, Wait: wait,
		Retry: 2 * time.Second, MaxConns: most, PerSource: perSource}
	for _, item := range strings.Split(spec, ",") {
		name, address, found := strings.Cut(strings.TrimSpace(item), "=")
		if !found || !backName.MatchString(name) {
			return nil, fmt.Errorf("--back: %q is not NAME=ADDRESS:PORT", item)
		}
		parsed, err := netip.ParseAddrPort(address)
		if err != nil || parsed.Port() == 0 || parsed.Addr().IsUnspecified() {
			return nil, fmt.Errorf("--back: %q: an IP address of the node's bridge and a port are needed", address)
		}
		if _, twice := back.Services[name]; twice {
			return nil, fmt.Errorf("--back: %s named twice", name)
		}
		back.Services[name] = parsed
	}
	return back, nil
}
