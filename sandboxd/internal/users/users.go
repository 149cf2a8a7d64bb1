// Package users resolves the user a command runs as from the container's own /etc/passwd and
// /etc/group, as `docker exec -u` does: NAME or UID, optionally with :GROUP or :GID.
package users

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Where the container keeps its users; tests read other files.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
)

const (
	maxFile   = 4 << 20 // the files are the sandbox's (root in it may write them): read this much at most
	maxGroups = 65536   // NGROUPS_MAX: setgroups refuses more
)

// User is who a command runs as.
type User struct {
	Name   string // "" when the uid has no passwd entry
	UID    int
	GID    int
	Groups []int // supplementary groups, the primary one included
	Home   string
}

func (u User) String() string {
	if u.Name != "" {
		return fmt.Sprintf("%s (%d:%d)", u.Name, u.UID, u.GID)
	}
	return fmt.Sprintf("%d:%d", u.UID, u.GID)
}

// Lookup resolves spec ("" is root) from the container's files.
func Lookup(spec string) (User, error) {
	return LookupIn(spec, PasswdFile, GroupFile)
}

// LookupIn resolves spec from the given passwd and group files (a missing file is empty).
func LookupIn(spec, passwdFile, groupFile string) (User, error) {
	passwd, err := readCapped(passwdFile)
	if err != nil {
		return User{}, err
	}
	group, err := readCapped(groupFile)
	if err != nil {
		return User{}, err
	}
	return resolve(spec, passwd, group)
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFile))
}

func resolve(spec string, passwd, group []byte) (User, error) {
	name, groupSpec, withGroup := strings.Cut(spec, ":")
	if name == "" {
		if withGroup {
			return User{}, fmt.Errorf("user %q: no user before the group", spec)
		}
		name = "0"
	}
	u, found := findUser(passwd, name)
	if !found {
		uid, ok := parseID(name)
		if !ok {
			return User{}, fmt.Errorf("user %q: no such user in %s", name, PasswdFile)
		}
		// A uid the image does not know still works, with gid 0 and / as home (as Docker does).
		u = User{UID: uid}
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if withGroup {
		gid, ok := findGroup(group, groupSpec)
		if !ok {
			return User{}, fmt.Errorf("group %q: no such group in %s", groupSpec, GroupFile)
		}
		u.GID, u.Groups = gid, []int{gid} // an explicit group is the only one
		return u, nil
	}
	u.Groups = supplementary(group, u.Name, u.GID)
	return u, nil
}

// fields answers the colon-separated fields of each line that has at least n of them.
func fields(data []byte, n int, each func([]string) bool) {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		parts := strings.Split(string(line), ":")
		if len(parts) >= n && !each(parts) {
			return
		}
	}
}

func findUser(passwd []byte, name string) (User, bool) {
	uid, numeric := parseID(name)
	var u User
	found := false
	fields(passwd, 7, func(p []string) bool {
		id, ok1 := parseID(p[2])
		gid, ok2 := parseID(p[3])
		if !ok1 || !ok2 || (numeric && id != uid) || (!numeric && p[0] != name) {
			return true
		}
		u, found = User{Name: p[0], UID: id, GID: gid, Home: p[5]}, true
		return false
	})
	return u, found
}

func findGroup(group []byte, spec string) (int, bool) {
	gid, numeric := parseID(spec)
	if numeric {
		return gid, true
	}
	found := false
	fields(group, 3, func(p []string) bool {
		if p[0] != spec {
			return true
		}
		gid, found = parseID(p[2])
		return false
	})
	return gid, found
}

func supplementary(group []byte, name string, primary int) []int {
	groups := []int{primary}
	if name != "" {
		fields(group, 4, func(p []string) bool {
			gid, ok := parseID(p[2])
			if ok && slices.Contains(strings.Split(p[3], ","), name) {
				groups = append(groups, gid)
			}
			return len(groups) < maxGroups
		})
	}
	slices.Sort(groups)
	return slices.Compact(groups)
}

// parseID accepts a decimal uid or gid (uint32, without the invalid -1).
func parseID(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return int(n), true
}
