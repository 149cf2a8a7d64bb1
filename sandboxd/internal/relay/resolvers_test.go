package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDaemonDNS(t *testing.T) {
	cases := map[string]string{
		`{"dns": ["10.0.0.2", " fd00::53 "], "log-driver": "local"}`: "10.0.0.2,fd00::53",
		`{"dns": []}`:             "",
		`{"log-driver": "local"}`: "",
		`not json`:                "",
		`{"dns": "10.0.0.2"}`:     "", // not a list: dockerd refuses it, nothing is taken from it
		``:                        "",
	}
	for input, want := range cases {
		if got := strings.Join(daemonDNS([]byte(input)), ","); got != want {
			t.Errorf("daemonDNS(%q) = %q, want %q", input, got, want)
		}
	}
}

func TestNameserversAndTheStub(t *testing.T) {
	stub := []byte("# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
	if got := nameservers(stub); strings.Join(got, ",") != "127.0.0.53" || !isResolvedStub(got) {
		t.Fatalf("%q", got)
	}
	mixed := nameservers([]byte("nameserver 127.0.0.53\nnameserver 10.1.2.3\n"))
	if isResolvedStub(mixed) || isResolvedStub(nil) || isResolvedStub([]string{"127.0.0.1"}) {
		t.Fatal("only a list of nothing but the stub is the stub")
	}
}

func TestChooseResolversAsDockerDoes(t *testing.T) {
	stub := []byte("nameserver 127.0.0.53\n")
	upstream := []byte("# resolved's upstream list\nnameserver 10.9.8.7\nnameserver fd00::1\n")
	plain := []byte("nameserver 10.1.2.3\nnameserver 127.0.0.1\n")
	daemon := []byte(`{"dns": ["10.5.5.5"]}`)
	cases := []struct {
		name                     string
		resolv, resolved, daemon []byte
		want                     string
	}{
		{"plain resolv.conf", plain, upstream, nil, "10.1.2.3,127.0.0.1"},
		{"the stub: resolved's upstream list", stub, upstream, nil, "10.9.8.7,fd00::1"},
		{"the stub, no upstream file: the stub (left out by the server)", stub, nil, nil, "127.0.0.53"},
		{"daemon.json's dns first", stub, upstream, daemon, "10.5.5.5"},
		{"daemon.json without dns", plain, nil, []byte(`{"debug": true}`), "10.1.2.3,127.0.0.1"},
		{"nothing", nil, nil, nil, ""},
	}
	for _, c := range cases {
		got := chooseResolvers(c.resolv, c.resolved, c.daemon)
		if got == nil || strings.Join(got, ",") != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDNSFilesToleratesMissingFiles(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644)
	files := DNSFiles{ResolvConf: resolv, ResolvedConf: filepath.Join(dir, "absent"), DaemonJSON: filepath.Join(dir, "absent.json")}
	if got := files.Resolvers(); strings.Join(got, ",") != "127.0.0.53" {
		t.Fatalf("%q", got)
	}
	os.WriteFile(files.DaemonJSON, []byte(`{"dns":["10.7.7.7"]}`), 0o644)
	if got := files.Resolvers(); strings.Join(got, ",") != "10.7.7.7" {
		t.Fatalf("%q", got)
	}
	if got := (DNSFiles{}).Resolvers(); got == nil || len(got) != 0 {
		t.Fatalf("%q", got)
	}
}
