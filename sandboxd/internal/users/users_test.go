package users

import (
	"slices"
	"testing"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
# a comment
sandbox:x:1000:1000:Sandbox:/home/sandbox:/bin/bash
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
nohome:x:1001:1001::::
`

const group = `root:x:0:
sandbox:x:1000:
docker:x:998:sandbox,other
audio:x:29:other
users:x:100:sandbox
`

func TestResolve(t *testing.T) {
	cases := []struct {
		spec string
		want User
	}{
		{"", User{Name: "root", UID: 0, GID: 0, Groups: []int{0}, Home: "/root"}},
		{"sandbox", User{Name: "sandbox", UID: 1000, GID: 1000, Groups: []int{100, 998, 1000}, Home: "/home/sandbox"}},
		{"1000", User{Name: "sandbox", UID: 1000, GID: 1000, Groups: []int{100, 998, 1000}, Home: "/home/sandbox"}},
		{"sandbox:audio", User{Name: "sandbox", UID: 1000, GID: 29, Groups: []int{29}, Home: "/home/sandbox"}},
		{"sandbox:4242", User{Name: "sandbox", UID: 1000, GID: 4242, Groups: []int{4242}, Home: "/home/sandbox"}},
		{"54321", User{UID: 54321, GID: 0, Groups: []int{0}, Home: "/"}},
		{"54321:54322", User{UID: 54321, GID: 54322, Groups: []int{54322}, Home: "/"}},
		{"nohome", User{Name: "nohome", UID: 1001, GID: 1001, Groups: []int{1001}, Home: "/"}},
	}
	for _, c := range cases {
		got, err := resolve(c.spec, []byte(passwd), []byte(group))
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if got.Name != c.want.Name || got.UID != c.want.UID || got.GID != c.want.GID || got.Home != c.want.Home ||
			!slices.Equal(got.Groups, c.want.Groups) {
			t.Errorf("%q: got %+v, want %+v", c.spec, got, c.want)
		}
	}
}

func TestResolveRefuses(t *testing.T) {
	for _, spec := range []string{"ghost", "sandbox:ghosts", ":0", "-1", "4294967295", "1.5", "broken"} {
		if u, err := resolve(spec, []byte(passwd), []byte(group)); err == nil {
			t.Errorf("%q resolved to %+v", spec, u)
		}
	}
}

func TestWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	u, err := LookupIn("", dir+"/passwd", dir+"/group")
	if err != nil || u.UID != 0 || u.Home != "/" {
		t.Fatalf("root without /etc/passwd: %+v %v", u, err)
	}
	if _, err := LookupIn("sandbox", dir+"/passwd", dir+"/group"); err == nil {
		t.Fatal("a name resolved without /etc/passwd")
	}
}
