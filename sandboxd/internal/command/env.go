package command

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"vibebox.dev/sandboxd/internal/proc"
	"vibebox.dev/sandboxd/internal/users"
)

// DefaultPath is the search path when the command's environment has none (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// private names sandboxd's own settings and the per-command variables: never passed on from
// sandboxd's environment.
func private(name string) bool {
	switch name {
	case proc.Marker, "VIBEBOX_EXEC_TIMEOUT", "VIBEBOX_AGENT":
		return true
	}
	return strings.HasPrefix(name, "SANDBOXD_")
}

// BaseEnv is the environment every command starts from: sandboxd's own, which is the
// container's as Docker gave it, without sandboxd's settings. runc puts HOME in PID 1's
// environment when the container's has none, for the user PID 1 runs as (root); that HOME is
// not the container's, so a HOME equal to ownHome is dropped and each command gets its user's.
func BaseEnv(environ []string, ownHome string) []string {
	var env []string
	seen := map[string]bool{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || seen[name] || private(name) || (name == "HOME" && value == ownHome) {
			continue
		}
		seen[name] = true
		env = append(env, kv)
	}
	return env
}

// Term is a terminal's TERM when neither the container's environment nor the request sets one.
const Term = "xterm-256color"

// commandEnv is base + HOME, USER and LOGNAME of the user (and for a terminal, TERM) where base
// has none (as `docker exec -u` gives HOME) + the request's variables + the marker.
func commandEnv(base []string, u users.User, extra map[string]string, execID string, terminal bool) []string {
	var order []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			order = append(order, name)
		}
		values[name] = value
	}
	for _, kv := range base {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	defaults := map[string]string{"HOME": u.Home}
	if u.Name != "" {
		defaults["USER"], defaults["LOGNAME"] = u.Name, u.Name
	}
	if terminal {
		defaults["TERM"] = Term
	}
	for _, name := range []string{"HOME", "USER", "LOGNAME", "TERM"} {
		if _, ok := values[name]; !ok && defaults[name] != "" {
			set(name, defaults[name])
		}
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		set(name, extra[name])
	}
	set(proc.Marker, execID)
	env := make([]string, len(order))
	for i, name := range order {
		env[i] = name + "=" + values[name]
	}
	return env
}

func lookupEnv(env []string, name string) (string, bool) {
	for _, kv := range env {
		if value, ok := strings.CutPrefix(kv, name+"="); ok {
			return value, true
		}
	}
	return "", false
}

// executable finds argv[0] as execvp would, in the command's PATH; a name with a slash is the
// kernel's to resolve (in the working directory, after the child's chdir).
func executable(name string, env []string, workdir string) (string, error) {
	if name == "" {
		return "", syscall.ENOENT
	}
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, ok := lookupEnv(env, "PATH")
	if !ok {
		path = DefaultPath
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		if !filepath.IsAbs(candidate) {
			base := workdir
			if base == "" {
				base, _ = os.Getwd()
			}
			candidate = filepath.Join(base, candidate)
		}
		if info, err := os.Stat(candidate); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", &os.PathError{Op: "find", Path: name, Err: syscall.ENOENT}
}
