// Package protocoltest is the server's side of the exec protocol (docker_agent.py's), in Go, for
// sandboxd's tests: it speaks HTTP/1.1 over a plain connection, as http.client does, so a test can
// also send what a well-behaved client never would.
package protocoltest

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client reaches one sandboxd.
type Client struct {
	Addr      string
	Token     string
	Container string
}

// Conn is one connection; each Hello gives one request.
type Conn struct {
	client      *Client
	conn        net.Conn
	reader      *bufio.Reader
	ServerNonce string
	Nonce       string // sandboxd's
}

// Sign is HMAC-SHA256(token, parts joined by newlines), in hex.
func Sign(token string, parts ...string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(mac.Sum(nil))
}

// Digest is the hex sha256 of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Dial connects.
func (c *Client) Dial() (*Conn, error) {
	conn, err := net.DialTimeout("tcp", c.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return &Conn{client: c, conn: conn, reader: bufio.NewReader(conn)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Raw writes request bytes as they are and reads one answer.
func (c *Conn) Raw(request []byte) (*http.Response, []byte, error) {
	if _, err := c.conn.Write(request); err != nil {
		return nil, nil, err
	}
	return c.Answer()
}

// Write writes bytes as they are (a test may read the answer meanwhile).
func (c *Conn) Write(data []byte) error {
	_, err := c.conn.Write(data)
	return err
}

// Answer reads one answer.
func (c *Conn) Answer() (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(c.reader, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Get sends a GET.
func (c *Conn) Get(target string) (*http.Response, []byte, error) {
	return c.Raw([]byte("GET " + target + " HTTP/1.1\r\nHost: sandbox\r\n\r\n"))
}

// Hello does the identity exchange and checks sandboxd's proof.
func (c *Conn) Hello() error {
	var random [16]byte
	rand.Read(random[:])
	c.ServerNonce = hex.EncodeToString(random[:])
	resp, body, err := c.Get("/hello?nonce=" + c.ServerNonce)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("hello: %s %s", resp.Status, body)
	}
	var hello struct{ Container, Nonce, Proof string }
	if err := json.Unmarshal(body, &hello); err != nil {
		return err
	}
	if hello.Container != c.client.Container {
		return fmt.Errorf("hello from container %q", hello.Container)
	}
	if hello.Proof != Sign(c.client.Token, "hello", c.client.Container, c.ServerNonce, hello.Nonce) {
		return errors.New("the proof does not match")
	}
	c.Nonce = hello.Nonce
	return nil
}

// Post sends a POST signed with the current nonce; headers override the protocol's.
func (c *Conn) Post(kind string, body []byte, headers map[string]string) (*http.Response, []byte, error) {
	all := map[string]string{
		"Content-Type":        "application/json",
		"Content-Length":      fmt.Sprint(len(body)),
		"X-VibeBox-Container": c.client.Container,
		"X-VibeBox-Signature": Sign(c.client.Token, kind, c.client.Container, c.Nonce, Digest(body)),
	}
	for k, v := range headers {
		all[k] = v
	}
	var request bytes.Buffer
	fmt.Fprintf(&request, "POST /%s HTTP/1.1\r\nHost: sandbox\r\n", kind)
	for k, v := range all {
		fmt.Fprintf(&request, "%s: %s\r\n", k, v)
	}
	request.WriteString("\r\n")
	request.Write(body)
	return c.Raw(request.Bytes())
}

// Verify checks an answer's container and signature, as docker_agent's _Session.verify.
func (c *Conn) Verify(resp *http.Response, execID string, body []byte) error {
	if got := resp.Header.Get("X-VibeBox-Container"); got != c.client.Container {
		return fmt.Errorf("the answer names container %q", got)
	}
	want := Sign(c.client.Token, "answer", c.client.Container, c.ServerNonce, execID, Digest(body))
	if resp.Header.Get("X-VibeBox-Signature") != want {
		return errors.New("the answer's signature does not match")
	}
	return nil
}

// PostRenewing sends a POST that asks for the next nonce (X-VibeBox-Nonce, a fresh server nonce),
// checks the answer's signature over it and, when the answer is signed, takes the next nonce for
// the following request on this connection (no hello).
func (c *Conn) PostRenewing(kind, execID string, body []byte) (*http.Response, []byte, error) {
	var random [16]byte
	rand.Read(random[:])
	serverNonce := hex.EncodeToString(random[:])
	resp, answer, err := c.Post(kind, body, map[string]string{"X-VibeBox-Nonce": serverNonce})
	if err != nil || resp.StatusCode != 200 {
		return resp, answer, err
	}
	next := resp.Header.Get("X-VibeBox-Next-Nonce")
	want := Sign(c.client.Token, "answer", c.client.Container, serverNonce, execID, Digest(answer), next)
	if next == "" || resp.Header.Get("X-VibeBox-Signature") != want {
		return resp, answer, errors.New("the renewing answer's signature does not match")
	}
	c.ServerNonce, c.Nonce = serverNonce, next
	return resp, answer, nil
}

// Header is an exec answer's first line.
type Header struct {
	ExecID      string `json:"exec_id"`
	ExitCode    *int   `json:"exit_code"`
	StdoutLen   int    `json:"stdout_len"`
	StderrLen   int    `json:"stderr_len"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
	Truncated   bool   `json:"truncated"`
	TimedOut    bool   `json:"timed_out"`
	OOMKilled   bool   `json:"oom_killed"`
}

// ParseExec splits and checks an exec answer (docker_agent._result).
func ParseExec(resp *http.Response, body []byte) (Header, []byte, []byte, error) {
	var h Header
	if resp.Header.Get("Content-Type") != "application/vnd.vibebox.exec" {
		return h, nil, nil, fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) > 0 {
		return h, nil, nil, errors.New("not a fixed length")
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return h, nil, nil, errors.New("no header line")
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, nil, nil, err
	}
	if h.StdoutLen+h.StderrLen != len(rest) {
		return h, nil, nil, errors.New("the answer does not add up")
	}
	return h, rest[:h.StdoutLen], rest[h.StdoutLen:], nil
}

// Exec runs a command the way docker_agent.run does: hello, signed POST, checked answer.
func (c *Client) Exec(request map[string]any) (Header, []byte, []byte, error) {
	conn, err := c.Dial()
	if err != nil {
		return Header{}, nil, nil, err
	}
	defer conn.Close()
	conn.conn.SetDeadline(time.Now().Add(5 * time.Minute))
	if err := conn.Hello(); err != nil {
		return Header{}, nil, nil, err
	}
	body, _ := json.Marshal(request)
	resp, answer, err := conn.Post("exec", body, nil)
	if err != nil {
		return Header{}, nil, nil, err
	}
	if resp.StatusCode != 200 {
		return Header{}, nil, nil, fmt.Errorf("exec: %s %s", resp.Status, answer)
	}
	execID, _ := request["exec_id"].(string)
	if err := conn.Verify(resp, execID, answer); err != nil {
		return Header{}, nil, nil, err
	}
	return ParseExec(resp, answer)
}
