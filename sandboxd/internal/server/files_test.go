package server

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vibebox.dev/sandboxd/internal/protocoltest"
)

// fileBox is a directory of runAs's (the server's default user) inside a root-only-writable one.
func fileBox(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	os.Chmod(top, 0o755)
	os.Chmod(filepath.Dir(top), 0o755)
	dir := filepath.Join(top, "box")
	os.Mkdir(dir, 0o755)
	if err := os.Chown(dir, 61010, 61010); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fileCall(t *testing.T, c *protocoltest.Client, kind string, fields map[string]any) (int, map[string]any) {
	t.Helper()
	conn := dial(t, c, true)
	id := newID()
	fields["exec_id"] = id
	b := body(fields)
	resp, answer, err := conn.Post(kind, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 {
		if err := conn.Verify(resp, id, answer); err != nil {
			t.Fatal(err)
		}
	}
	var out map[string]any
	if err := json.Unmarshal(answer, &out); err != nil {
		t.Fatalf("%s: %s", kind, answer)
	}
	return resp.StatusCode, out
}

// upload sends files/write or files/untar; mac: the data's signature, or "" for the right one.
func upload(t *testing.T, c *protocoltest.Client, kind string, fields map[string]any, data []byte, mac string) (int, map[string]any) {
	t.Helper()
	conn := dial(t, c, true)
	id := newID()
	fields["exec_id"] = id
	fields["size"] = len(data)
	line := body(fields)
	if mac == "" {
		mac = protocoltest.Sign(c.Token, "data", c.Container, conn.Nonce, id, protocoltest.Digest(data))
	}
	payload := append(append(append(line, '\n'), data...), mac...)
	request := fmt.Sprintf("POST /%s HTTP/1.1\r\nHost: sandbox\r\nContent-Length: %d\r\nX-VibeBox-Container: %s\r\nX-VibeBox-Signature: %s\r\n\r\n",
		kind, len(payload), c.Container, protocoltest.Sign(c.Token, kind, c.Container, conn.Nonce, protocoltest.Digest(line)))
	resp, answer, err := conn.Raw(append([]byte(request), payload...))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 {
		if err := conn.Verify(resp, id, answer); err != nil {
			t.Fatal(err)
		}
	}
	var out map[string]any
	json.Unmarshal(answer, &out)
	return resp.StatusCode, out
}

// download reads a files/read or files/tar stream: the header frame (read), the data, the end.
func download(t *testing.T, c *protocoltest.Client, kind, p string) (int, map[string]any, []byte, map[string]any) {
	t.Helper()
	conn := dial(t, c, true)
	id := newID()
	resp, answer, err := conn.Post(kind, body(map[string]any{"exec_id": id, "path": p}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		var out map[string]any
		json.Unmarshal(answer, &out)
		return resp.StatusCode, nil, nil, out
	}
	if resp.Header.Get("X-VibeBox-Signature") != protocoltest.Sign(c.Token, "answer", c.Container, conn.ServerNonce, id, "stream") {
		t.Fatal("the stream is not signed")
	}
	var header, end map[string]any
	var data []byte
	for len(answer) >= 5 {
		kind, size := answer[0], binary.BigEndian.Uint32(answer[1:5])
		payload := answer[5 : 5+size]
		answer = answer[5+size:]
		switch kind {
		case 'h':
			json.Unmarshal(payload, &header)
		case 'd':
			data = append(data, payload...)
		case 'x':
			json.Unmarshal(payload, &end)
		}
	}
	if end["ok"] == true && end["signature"] != protocoltest.Sign(c.Token, "answer", c.Container, conn.ServerNonce, id, protocoltest.Digest(data)) {
		t.Fatal("the data's signature does not match")
	}
	return 200, header, data, end
}

func TestFileWriteAndReadAreSignedAndStreamed(t *testing.T) {
	c := serve(t)
	dir := fileBox(t)
	target := filepath.Join(dir, "sub/data.bin")
	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB: several frames
	status, out := upload(t, c, "files/write", map[string]any{"path": target, "mode": 0o750}, data, "")
	result, _ := out["result"].(map[string]any)
	if status != 200 || result["size"] != float64(len(data)) || result["mode"] != float64(0o750) || result["uid"] != float64(61010) {
		t.Fatalf("%d %v", status, out)
	}
	status, header, got, end := download(t, c, "files/read", target)
	if status != 200 || header["size"] != float64(len(data)) || !bytes.Equal(got, data) || end["ok"] != true {
		t.Fatalf("%d %v %d %v", status, header, len(got), end)
	}
	// the data's signature is checked before the file replaces the old one
	status, out = upload(t, c, "files/write", map[string]any{"path": target}, []byte("forged"), strings.Repeat("0", 64))
	if status != 401 {
		t.Fatalf("%d %v", status, out)
	}
	if on, _ := os.ReadFile(target); !bytes.Equal(on, data) {
		t.Fatal("a forged upload replaced the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(target))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	// codes: missing, a directory, root's place
	for p, want := range map[string][2]any{
		filepath.Join(dir, "missing"): {404, "not_found"}, dir: {409, "conflict"}, "/proc/self/environ": {403, "denied"},
		"relative": {400, "invalid"},
	} {
		status, _, _, out := download(t, c, "files/read", p)
		if status != want[0] || out["code"] != want[1] {
			t.Errorf("%s: %d %v", p, status, out)
		}
	}
	if status, out := upload(t, c, "files/write", map[string]any{"path": "/etc/passwd"}, []byte("x"), ""); status != 403 || out["code"] != "denied" {
		t.Fatalf("%d %v", status, out)
	}
}

func TestFileUploadNeedsASignedRequest(t *testing.T) {
	c := serve(t)
	dir := fileBox(t)
	conn := dial(t, c, true)
	line := body(map[string]any{"exec_id": newID(), "path": filepath.Join(dir, "x"), "size": 1})
	payload := append(append(line, '\n'), 'x')
	payload = append(payload, strings.Repeat("0", 64)...)
	request := fmt.Sprintf("POST /files/write HTTP/1.1\r\nHost: sandbox\r\nContent-Length: %d\r\nX-VibeBox-Container: vb-test\r\nX-VibeBox-Signature: %s\r\n\r\n", len(payload), strings.Repeat("a", 64))
	resp, _, err := conn.Raw(append([]byte(request), payload...))
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("%v %v", resp, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("written")
	}
	// a body whose length does not add up
	conn = dial(t, c, true)
	request = fmt.Sprintf("POST /files/write HTTP/1.1\r\nHost: sandbox\r\nContent-Length: %d\r\nX-VibeBox-Container: vb-test\r\nX-VibeBox-Signature: %s\r\n\r\n",
		len(payload)-1, protocoltest.Sign(c.Token, "files/write", c.Container, conn.Nonce, protocoltest.Digest(line)))
	resp, _, err = conn.Raw(append([]byte(request), payload[:len(payload)-1]...))
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("%v %v", resp, err)
	}
}

func TestFileCalls(t *testing.T) {
	c := serve(t)
	dir := fileBox(t)
	if status, out := fileCall(t, c, "files/mkdir", map[string]any{"path": dir + "/a/b"}); status != 200 {
		t.Fatal(status, out)
	}
	upload(t, c, "files/write", map[string]any{"path": dir + "/a/b/f.txt"}, []byte("12345"), "")
	status, out := fileCall(t, c, "files/list", map[string]any{"path": dir + "/a", "recursive": true, "limit": 10})
	result := out["result"].(map[string]any)
	if entries := result["entries"].([]any); status != 200 || len(entries) != 2 || result["truncated"] != false {
		t.Fatal(status, out)
	}
	status, out = fileCall(t, c, "files/stat", map[string]any{"path": dir + "/a/b/f.txt"})
	if stat := out["result"].(map[string]any); status != 200 || stat["size"] != float64(5) || stat["type"] != "file" {
		t.Fatal(status, out)
	}
	if status, out := fileCall(t, c, "files/move", map[string]any{"path": dir + "/a/b/f.txt", "destination": dir + "/c/g.txt"}); status != 200 {
		t.Fatal(status, out)
	}
	upload(t, c, "files/write", map[string]any{"path": dir + "/other"}, []byte("x"), "")
	if status, out := fileCall(t, c, "files/move", map[string]any{"path": dir + "/other", "destination": dir + "/c/g.txt"}); status != 409 || out["code"] != "conflict" {
		t.Fatal(status, out)
	}
	if status, out := fileCall(t, c, "files/delete", map[string]any{"path": dir + "/a"}); status != 409 {
		t.Fatal(status, out)
	}
	if status, out := fileCall(t, c, "files/delete", map[string]any{"path": dir + "/a", "recursive": true}); status != 200 {
		t.Fatal(status, out)
	}
	if status, out := fileCall(t, c, "files/stat", map[string]any{"path": dir + "/a"}); status != 404 || out["code"] != "not_found" {
		t.Fatal(status, out)
	}
	if status, out := fileCall(t, c, "files/mkdir", map[string]any{"path": "/opt/x", "user": "61011"}); status != 403 || out["code"] != "denied" {
		t.Fatal(status, out)
	}
	if status, _ := fileCall(t, c, "files/stat", map[string]any{"path": "/", "user": "no-such-user"}); status != 422 {
		t.Fatal(status)
	}
}

func TestFileUntarAndTar(t *testing.T) {
	c := serve(t)
	dir := fileBox(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range map[string]string{"src/run.sh": "#!/bin/sh\n", "README": "hi"} {
		tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o755, Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	status, out := upload(t, c, "files/untar", map[string]any{"path": dir + "/project"}, buf.Bytes(), "")
	if status != 200 || out["result"].(map[string]any)["entries"] != float64(2) {
		t.Fatal(status, out)
	}
	status, _, data, end := download(t, c, "files/tar", dir+"/project")
	if status != 200 || end["ok"] != true {
		t.Fatal(status, end)
	}
	names := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		content, _ := io.ReadAll(tr)
		names[hdr.Name] = string(content)
	}
	if names["project/README"] != "hi" || names["project/src/run.sh"] != "#!/bin/sh\n" {
		t.Fatalf("%v", names)
	}
	// hostile archives: a clean 400, nothing outside
	for _, hdrs := range [][]*tar.Header{
		{{Name: "../escape", Typeflag: tar.TypeReg}},
		{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}, {Name: "l/tmp/escape", Typeflag: tar.TypeReg}},
	} {
		var evil bytes.Buffer
		tw := tar.NewWriter(&evil)
		for _, h := range hdrs {
			tw.WriteHeader(h)
		}
		tw.Close()
		status, out := upload(t, c, "files/untar", map[string]any{"path": dir + "/evil"}, evil.Bytes(), "")
		if status != 400 || out["code"] != "bad_archive" {
			t.Fatal(status, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Fatal("escaped")
	}
	if _, err := os.Stat("/tmp/escape"); err == nil {
		t.Fatal("escaped")
	}
}
