package server

// The file endpoints (internal/files does the work, as the sandbox user). See docs/sandboxd.md,
// "Files".
//
//   - files/stat, files/list, files/mkdir, files/move, files/delete: a JSON body, signed as /exec's;
//     a signed JSON answer.
//   - files/read, files/tar: a JSON body as above; the answer is a stream (signed over "stream") of
//     frames: 'h' (read only: the file's Info as JSON), 'd' data (at most fileFrame bytes), and
//     last 'x', JSON {"ok": true, "bytes": n, "signature": HMAC(token, "answer\n<container>\n
//     <server nonce>\n<exec id>\n<sha256 of the data>")} or {"ok": false, "error", "code"}.
//   - files/write, files/untar: the body is a JSON line (the request), the data (exactly `size`
//     bytes), then 64 hex digits: HMAC(token, "data\n<container>\n<sandboxd nonce>\n<exec id>\n
//     <sha256 of the data>"). X-VibeBox-Signature signs the JSON line (without its newline) as
//     /exec's signs a body; the data is streamed, never held, and a written file is renamed into
//     place only once the data's signature checked out.
// A failure answers {"error", "code", "path"} with the code's status (files.Classify).

import (
	"bufio"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net"
	"net/http"
	"time"

	"vibebox.dev/sandboxd/internal/files"
	"vibebox.dev/sandboxd/internal/users"
)

const (
	maxFileLine   = 64 << 10 // bytes of an upload's JSON line
	MaxUpload     = 1 << 40  // bytes of an upload's data
	fileFrame     = 1 << 20  // bytes of a data frame
	macLength     = 64
	transferSlots = 8                // file requests served at once; more wait
	transferWait  = 10 * time.Second // for a slot, then 429
)

var transfers = make(chan struct{}, transferSlots)

func isUpload(kind string) bool { return kind == "files/write" || kind == "files/untar" }

// fileRequest is the body (or JSON line) of every file endpoint.
type fileRequest struct {
	ExecID      string  `json:"exec_id"`
	User        *string `json:"user"`
	Path        string  `json:"path"`
	Destination string  `json:"destination"`
	Follow      bool    `json:"follow"`
	Recursive   bool    `json:"recursive"`
	Overwrite   bool    `json:"overwrite"`
	Limit       int     `json:"limit"`
	Mode        *uint32 `json:"mode"`
	Size        int64   `json:"size"`
	MaxEntries  int     `json:"max_entries"`
	Gzip        bool    `json:"gzip"` // files/untar: the data is a gzipped tar
}

var fileStatus = map[string]int{
	files.NotFound: http.StatusNotFound, files.Denied: http.StatusForbidden, files.Conflict: http.StatusConflict,
	files.DiskFull: http.StatusInsufficientStorage, files.Invalid: http.StatusBadRequest,
	files.BadArchive: http.StatusBadRequest, files.TooLarge: http.StatusRequestEntityTooLarge,
}

func (s *Server) fileFail(w http.ResponseWriter, err error) {
	e := files.Classify(err, "")
	if errors.Is(err, files.ErrCredentials) {
		s.cfg.Log.Printf("files: %v", err)
		s.json(w, &conn{}, http.StatusInternalServerError, "", map[string]string{"error": "sandboxd failed", "code": "failed"})
		return
	}
	s.json(w, &conn{}, fileStatus[e.Code], "", map[string]string{"error": e.Message, "code": e.Code, "path": e.Path})
}

// fileSlot waits for a transfer slot; false once it answered 429.
func (s *Server) fileSlot(w http.ResponseWriter) bool {
	select {
	case transfers <- struct{}{}:
		return true
	case <-time.After(transferWait):
		s.fail(w, http.StatusTooManyRequests, "too many file requests at once")
		return false
	}
}

// fileRoute answers the file endpoints with a JSON body; false: kind is not one of them.
func (s *Server) fileRoute(w http.ResponseWriter, c *conn, kind string, body []byte, execID string) bool {
	switch kind {
	case "files/stat", "files/list", "files/mkdir", "files/move", "files/delete", "files/read", "files/tar":
	default:
		return false
	}
	var req fileRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return true
	}
	p, err := files.Clean(req.Path)
	if err == nil && kind == "files/move" {
		req.Destination, err = files.Clean(req.Destination)
	}
	if err != nil {
		s.fileFail(w, err)
		return true
	}
	user, _, err := s.user(req.User)
	if err != nil {
		s.fail(w, http.StatusUnprocessableEntity, err.Error())
		return true
	}
	if !s.fileSlot(w) {
		return true
	}
	defer func() { <-transfers }()
	var answer any
	switch kind {
	case "files/stat":
		answer, err = files.Stat(user, p, req.Follow)
	case "files/list":
		var entries []files.Info
		var truncated bool
		entries, truncated, err = files.List(user, p, req.Recursive, req.Limit)
		answer = map[string]any{"entries": entries, "truncated": truncated}
	case "files/mkdir":
		err = files.Mkdir(user, p)
	case "files/move":
		err = files.Move(user, p, req.Destination, req.Overwrite)
	case "files/delete":
		err = files.Delete(user, p, req.Recursive)
	case "files/read":
		s.fileRead(w, c, user, p, execID)
		return true
	case "files/tar":
		s.fileTar(w, c, user, p, execID)
		return true
	}
	if err != nil {
		s.fileFail(w, err)
		return true
	}
	if answer == nil {
		answer = map[string]any{"ok": true}
	}
	s.json(w, c, http.StatusOK, execID, map[string]any{"exec_id": execID, "result": answer})
	return true
}

// frameWriter sends data frames on a stream, digesting what it sends.
type frameWriter struct {
	conn   net.Conn
	buf    *bufio.Writer
	digest hash.Hash
	bytes  int64
}

func (f *frameWriter) frame(kind byte, payload []byte) error {
	f.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	var head [5]byte
	head[0] = kind
	head[1], head[2], head[3], head[4] = byte(len(payload)>>24), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	f.buf.Write(head[:])
	f.buf.Write(payload)
	return f.buf.Flush()
}

func (f *frameWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), fileFrame)
		if err := f.frame('d', p[:n]); err != nil {
			return written, err
		}
		f.digest.Write(p[:n])
		f.bytes += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// end sends the last frame: the data's signature, or what failed.
func (f *frameWriter) end(s *Server, c *conn, execID string, err error) {
	var last []byte
	if err != nil {
		e := files.Classify(err, "")
		last, _ = json.Marshal(map[string]any{"ok": false, "error": e.Message, "code": e.Code})
	} else {
		sum := hex.EncodeToString(f.digest.Sum(nil))
		last, _ = json.Marshal(map[string]any{
			"ok": true, "bytes": f.bytes, "signature": s.sign("answer", s.cfg.Container, c.serverNonce, execID, sum),
		})
	}
	f.frame('x', last)
}

func (s *Server) openFileStream(w http.ResponseWriter, c *conn, execID string) (*frameWriter, net.Conn) {
	netConn, _, err := s.openStream(w, c, execID, nil)
	if netConn == nil {
		return nil, nil
	}
	if err != nil {
		netConn.Close()
		return nil, nil
	}
	return &frameWriter{conn: netConn, buf: bufio.NewWriterSize(netConn, 64<<10), digest: sha256.New()}, netConn
}

func (s *Server) fileRead(w http.ResponseWriter, c *conn, user users.User, p, execID string) {
	f, info, err := files.Open(user, p)
	if err != nil {
		s.fileFail(w, err)
		return
	}
	defer f.Close()
	out, netConn := s.openFileStream(w, c, execID)
	if out == nil {
		return
	}
	defer netConn.Close()
	header, _ := json.Marshal(info)
	if out.frame('h', header) != nil {
		return
	}
	buf := make([]byte, fileFrame)
	_, err = io.CopyBuffer(out, io.LimitReader(f, info.Size), buf) // what it has grown by meanwhile is not sent
	if err == nil && out.bytes != info.Size {
		err = errors.New("the file shrank while it was read")
	}
	out.end(s, c, execID, err)
}

func (s *Server) fileTar(w http.ResponseWriter, c *conn, user users.User, p, execID string) {
	if _, err := files.Stat(user, p, false); err != nil {
		s.fileFail(w, err)
		return
	}
	out, netConn := s.openFileStream(w, c, execID)
	if out == nil {
		return
	}
	defer netConn.Close()
	buffered := bufio.NewWriterSize(out, fileFrame)
	err := files.Tar(user, p, buffered)
	if err == nil {
		err = buffered.Flush()
	}
	out.end(s, c, execID, err)
}

// bodyReader reads a request body, each read within bodyTimeout (an upload may take long, a
// stall may not).
type bodyReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (b bodyReader) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(bodyTimeout))
	return b.r.Read(p)
}

// upload answers files/write and files/untar.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, c *conn, kind string) {
	rc := http.NewResponseController(w)
	defer rc.SetReadDeadline(time.Time{})
	body := bufio.NewReaderSize(bodyReader{r.Body, rc}, 64<<10) // reads of its size or more bypass it
	line, err := body.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			w.Header().Set("Connection", "close")
			s.fail(w, http.StatusBadRequest, "invalid request: no JSON line")
		}
		return
	}
	line = line[:len(line)-1]
	if r.Header.Get("X-VibeBox-Container") != s.cfg.Container {
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusMisdirectedRequest, "this is another container's sandboxd")
		return
	}
	nonce := c.nonce
	c.nonce = ""
	digest := sha256.Sum256(line)
	expected := s.sign(kind, s.cfg.Container, nonce, hex.EncodeToString(digest[:]))
	if nonce == "" || !hmac.Equal([]byte(r.Header.Get("X-VibeBox-Signature")), []byte(expected)) {
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	var req fileRequest
	err = json.Unmarshal(line, &req)
	if err != nil || !validExecID(req.ExecID) || req.Size < 0 || req.Size > MaxUpload ||
		r.ContentLength != int64(len(line))+1+req.Size+macLength {
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusBadRequest, "invalid request: exec_id, size (0 to 2^40) and a body of line, data and signature")
		return
	}
	execID := req.ExecID
	// From here on the data is read to its end before any answer (an answer sent while the
	// client still sends would be lost to a reset), unless reading it fails.
	data := io.LimitReader(body, req.Size)
	hasher := sha256.New()
	tee := io.TeeReader(data, hasher)
	verify := func() error {
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return err
		}
		var mac [macLength]byte
		if _, err := io.ReadFull(body, mac[:]); err != nil {
			return err
		}
		want := s.sign("data", s.cfg.Container, nonce, execID, hex.EncodeToString(hasher.Sum(nil)))
		if !hmac.Equal(mac[:], []byte(want)) {
			return errUnsigned
		}
		return nil
	}
	answer := func(status int, value any) {
		if status != http.StatusOK {
			io.Copy(io.Discard, body) // bounded by the Content-Length, each read by bodyTimeout
		}
		if status == http.StatusOK {
			s.json(w, c, status, execID, value)
		} else {
			s.json(w, &conn{}, status, "", value)
		}
	}
	failed := func(err error) {
		switch {
		case files.IsReadError(err):
			w.Header().Set("Connection", "close") // nobody to answer, most likely
			s.fail(w, http.StatusBadRequest, "the data did not arrive")
		case errors.Is(err, errUnsigned):
			answer(http.StatusUnauthorized, map[string]string{"error": "the data's signature does not match", "code": "unauthorized"})
		case errors.Is(err, files.ErrCredentials):
			s.cfg.Log.Printf("files: %v", err)
			answer(http.StatusInternalServerError, map[string]string{"error": "sandboxd failed", "code": "failed"})
		default:
			e := files.Classify(err, req.Path)
			answer(fileStatus[e.Code], map[string]string{"error": e.Message, "code": e.Code, "path": e.Path})
		}
	}
	p, err := files.Clean(req.Path)
	if err != nil {
		failed(err)
		return
	}
	user, _, err := s.user(req.User)
	if err != nil {
		answer(http.StatusUnprocessableEntity, map[string]string{"error": err.Error(), "code": "user"})
		return
	}
	select {
	case transfers <- struct{}{}:
		defer func() { <-transfers }()
	case <-time.After(transferWait):
		answer(http.StatusTooManyRequests, map[string]string{"error": "too many file requests at once", "code": "busy"})
		return
	}
	if kind == "files/write" {
		mode := uint32(0o644)
		if req.Mode != nil {
			mode = *req.Mode & 0o7777
		}
		info, err := files.Write(user, p, mode, tee, req.Size, verify)
		if err != nil {
			failed(err)
			return
		}
		answer(http.StatusOK, map[string]any{"exec_id": execID, "result": info})
		return
	}
	var archive io.Reader = tee
	if req.Gzip {
		unzipped, err := gzip.NewReader(tee)
		if err != nil {
			failed(&files.Error{Code: files.BadArchive, Message: "not a gzipped tar: " + err.Error(), Path: p})
			return
		}
		unzipped.Multistream(false)
		archive = unzipped
	}
	count, err := files.Untar(user, p, archive, req.MaxEntries, verify)
	if err != nil {
		failed(err)
		return
	}
	answer(http.StatusOK, map[string]any{"exec_id": execID, "result": map[string]any{"entries": count}})
}

var errUnsigned = errors.New("the data's signature does not match")
