package relay

// The node's resolvers as Docker chooses them for its containers (GET /firewall's "resolvers";
// docs/nodes.md "Egress firewall rules on a remote node"): daemon.json's `dns` when it lists any;
// otherwise the nameservers of /etc/resolv.conf, unless that points only at systemd-resolved's
// stub (127.0.0.53), in which case resolved's upstream list (/run/systemd/resolve/resolv.conf), as
// Docker reads it then. Loopback addresses are reported as found: the server leaves them out
// (runtime/firewall.py usable_resolvers), as it does for its own host. A missing or unreadable
// file counts as empty.

import (
	"encoding/json"
	"io"
	"os"
	"strings"
)

// ResolvedStub is systemd-resolved's local stub address.
const ResolvedStub = "127.0.0.53"

const (
	maxResolvers  = 32      // reported at most
	maxDNSFileLen = 1 << 20 // read of one file at most
)

// DNSFiles are the files the node's resolvers are read from (paths in the relay's container:
// read-only binds of the node's files, or the relay's own /etc/resolv.conf, the host's copy).
type DNSFiles struct {
	ResolvConf   string // /etc/resolv.conf
	ResolvedConf string // systemd-resolved's upstream list; "" for none
	DaemonJSON   string // dockerd's daemon.json; "" for none
}

// DefaultDNSFiles are the relay's: its /etc/resolv.conf (with --network host, Docker's copy of
// the host's) and the node's files bound read-only under /host (services/nodes.py _relay_spec).
var DefaultDNSFiles = DNSFiles{
	ResolvConf:   "/etc/resolv.conf",
	ResolvedConf: "/host/run/systemd/resolve/resolv.conf",
	DaemonJSON:   "/host/etc/docker/daemon.json",
}

// Resolvers reads the files and answers Docker's choice (never nil).
func (d DNSFiles) Resolvers() []string {
	return chooseResolvers(readDNSFile(d.ResolvConf), readDNSFile(d.ResolvedConf), readDNSFile(d.DaemonJSON))
}

func readDNSFile(path string) []byte {
	if path == "" {
		return nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer file.Close()
	data, _ := io.ReadAll(io.LimitReader(file, maxDNSFileLen))
	return data
}

// chooseResolvers is Docker's choice from the three files' contents.
func chooseResolvers(resolvConf, resolvedConf, daemonJSON []byte) []string {
	found := daemonDNS(daemonJSON)
	if len(found) == 0 {
		found = nameservers(resolvConf)
		if isResolvedStub(found) {
			if upstream := nameservers(resolvedConf); len(upstream) > 0 {
				found = upstream
			}
		}
	}
	if found == nil {
		found = []string{}
	}
	if len(found) > maxResolvers {
		found = found[:maxResolvers]
	}
	return found
}

// nameservers answers the addresses of a resolv.conf's nameserver lines, in order.
func nameservers(data []byte) []string {
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			found = append(found, fields[1])
		}
	}
	return found
}

// isResolvedStub reports whether a resolv.conf's nameservers are only systemd-resolved's stub
// (Docker then reads resolved's upstream list instead).
func isResolvedStub(servers []string) bool {
	if len(servers) == 0 {
		return false
	}
	for _, server := range servers {
		if server != ResolvedStub {
			return false
		}
	}
	return true
}

// daemonDNS answers daemon.json's `dns` list (nil when the file is absent, not JSON, or has none).
func daemonDNS(data []byte) []string {
	var config struct {
		DNS []string `json:"dns"`
	}
	if len(data) == 0 || json.Unmarshal(data, &config) != nil {
		return nil
	}
	var found []string
	for _, server := range config.DNS {
		if server = strings.TrimSpace(server); server != "" {
			found = append(found, server)
		}
	}
	return found
}
