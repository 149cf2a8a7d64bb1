// Command sandboxd is VibeBox's in-sandbox daemon: PID 1 of every sandbox container. It reaps
// the sandbox's zombies, runs commands as the sandbox user, ends them (whole process trees, fork
// bombs included) and answers the server over the exec protocol. See docs/sandboxd.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/logpipe"
	"vibebox.dev/sandboxd/internal/pid1"
	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/reaper"
	"vibebox.dev/sandboxd/internal/server"
	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// version is what `sandboxd version` prints (a build may set it: -ldflags "-X main.version=...").
var version = "0.4.0"

// protocol is the wire protocol this build speaks: the Python exec agent's (agent-1, issue 19
// phase 1) plus streams and background processes (phase 2) and terminals (phase 3).
const protocol = "agent-4"

const (
	maxProcs       = 2                // GOMAXPROCS: few threads running Go code, whatever the host's CPU count
	reserveThreads = 16               // made at start for when the pids limit is full
	blockingSlots  = 4                // goroutines in blocking system calls at once (well below the reserve)
	fileWait       = 10 * time.Second // for the token and container files at start
	shutdownGrace  = 2 * time.Second  // between SIGTERM and SIGKILL at shutdown
	// --process-buffer at most: sandboxd's memory counts against the sandbox's limit.
	maxProcessBuffer = 256 << 20
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  sandboxd serve [--listen :49983] [--user NAME|UID[:GROUP|GID]] [--token-file PATH] [--container-file PATH]
                 [--log-dir DIR]
                 [--max-processes 64] [--process-buffer 1048576] [--process-keep 1h]
                 [--max-terminals 32] [--terminal-buffer 262144]
  sandboxd relay --cert PEM --key PEM --client-ca PEM --allow CIDR[,CIDR] [--ports 49983[,PORT]] [--firewall]
                 [--listen :2377] [--max-tunnels 1024] [--idle 10m]
  sandboxd version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintf(stdout, "sandboxd %s (protocol %s, %s)\n", version, protocol, runtime.Version())
		return 0
	case "serve":
		return serve(args[1:], stderr)
	case "relay":
		return relayCommand(args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sandboxd: unknown command %q\n%s", args[0], usage)
	return 2
}

type options struct {
	listen        string
	user          string
	tokenFile     string
	containerFile string
	logDir        string
	processes     processes.Config
	terminals     processes.Config
}

func parseServe(args []string, stderr io.Writer) (options, error) {
	var o options
	flags := flag.NewFlagSet("sandboxd serve", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.listen, "listen", ":49983", "address to serve the exec protocol on")
	flags.StringVar(&o.user, "user", "", "user commands run as: NAME or UID, optionally :GROUP or :GID (empty: root)")
	flags.StringVar(&o.tokenFile, "token-file", "/run/vibebox/token", "file holding the container's token")
	flags.StringVar(&o.containerFile, "container-file", "/run/vibebox/container", "file holding the container's name")
	flags.StringVar(&o.logDir, "log-dir", "/run/vibebox", "where to make the stdout and stderr FIFOs into the container's log (empty: none)")
	o.processes = processes.Defaults
	flags.IntVar(&o.processes.MaxLive, "max-processes", o.processes.MaxLive, "background processes running at once")
	flags.IntVar(&o.processes.Buffer, "process-buffer", o.processes.Buffer, "bytes of output kept per background process")
	flags.DurationVar(&o.processes.Keep, "process-keep", o.processes.Keep, "how long a finished background process (or terminal) is kept")
	o.terminals = processes.TerminalDefaults
	flags.IntVar(&o.terminals.MaxLive, "max-terminals", o.terminals.MaxLive, "terminals open at once")
	flags.IntVar(&o.terminals.Buffer, "terminal-buffer", o.terminals.Buffer, "bytes of output kept per terminal")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	o.terminals.Keep = o.processes.Keep
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "sandboxd serve: unexpected argument %q\n", flags.Arg(0))
		return o, errors.New("unexpected argument")
	}
	p, t := o.processes, o.terminals
	if p.MaxLive < 0 || p.Buffer < 1 || p.Buffer > maxProcessBuffer || p.Keep < 0 ||
		t.MaxLive < 0 || t.Buffer < 1 || t.Buffer > maxProcessBuffer {
		fmt.Fprintf(stderr, "sandboxd serve: --max-processes and --max-terminals must be 0 or more, "+
			"--process-buffer and --terminal-buffer 1 to %d, --process-keep 0 or more\n", maxProcessBuffer)
		return o, errors.New("invalid value")
	}
	return o, nil
}

func serve(args []string, stderr io.Writer) int {
	opts, err := parseServe(args, stderr)
	if err != nil {
		return 2
	}
	logger := log.New(stderr, "sandboxd: ", 0)

	// First, while threads can still start: the runtime's size, its thread reserve, the signals
	// and the reaper.
	runtime.GOMAXPROCS(min(runtime.NumCPU(), maxProcs))
	threads.Setup(reserveThreads, blockingSlots)
	term := pid1.HandleSignals()
	if err := reaper.Start(); err != nil {
		logger.Printf("cannot reap children: %v", err)
		return 1
	}

	if _, err := users.Lookup(opts.user); err != nil { // fatal now, not at the first request (each looks it up)
		logger.Printf("--user: %v", err)
		return 1
	}
	token, container, err := waitForFiles(opts.tokenFile, opts.containerFile, fileWait)
	if err != nil {
		logger.Print(err)
		return 1
	}
	if opts.logDir != "" {
		if err := logpipe.Start(opts.logDir, os.Stdout, os.Stderr); err != nil {
			logger.Printf("no log FIFOs: %v", err) // the rest works without them
		}
	}
	self, _ := users.Lookup(strconv.Itoa(os.Geteuid()))
	runner := command.NewRunner(command.BaseEnv(os.Environ(), self.Home))
	srv := server.New(server.Config{
		Token: token, Container: container, Runner: runner, DefaultUser: opts.user, Log: logger,
		Processes: processes.NewTable(runner, opts.processes), Terminals: processes.NewTable(runner, opts.terminals),
	})
	listener, err := net.Listen("tcp", opts.listen)
	if err != nil {
		logger.Printf("cannot listen: %v", err)
		return 1
	}
	go func() {
		if err := srv.Serve(listener); err != nil && !errors.Is(err, net.ErrClosed) {
			logger.Printf("serving stopped: %v", err)
		}
	}()
	// Nothing on success: the container's log is the sandbox's own (its code writes there through
	// the log FIFOs); sandboxd speaks up only when something fails.

	<-term
	listener.Close()
	pid1.Shutdown(shutdownGrace)
	return 0
}

// waitForFiles reads the token and container name, waiting up to `wait` for the server to put
// them in place (a file that is missing or still empty is not there yet).
func waitForFiles(tokenFile, containerFile string, wait time.Duration) (string, string, error) {
	deadline := time.Now().Add(wait)
	for {
		token, errToken := readValue(tokenFile)
		container, errContainer := readValue(containerFile)
		if errToken == nil && errContainer == nil {
			return token, container, nil
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("gave up after %s: %w", wait, errors.Join(errToken, errContainer))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readValue(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	value := strings.TrimSpace(string(data))
	if value == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return value, nil
}
