package protocoltest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Frame is one frame of a stream.
type Frame struct {
	Type    byte
	Payload []byte
}

// Stream is an open stream (the answer to /stream, /process/attach or /terminal/attach): frames
// both ways.
type Stream struct {
	conn *Conn
	Resp *http.Response
}

// Open posts a stream request on a connection that has had its hello. A 200 with the stream's
// content type and signature opens a Stream; any other answer is returned with its body.
func (c *Conn) Open(kind string, body []byte) (*Stream, *http.Response, []byte, error) {
	var request []byte
	request = fmt.Appendf(request, "POST /%s HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nX-VibeBox-Container: %s\r\nX-VibeBox-Signature: %s\r\n\r\n",
		kind, len(body), c.client.Container, Sign(c.client.Token, kind, c.client.Container, c.Nonce, Digest(body)))
	request = append(request, body...)
	if _, err := c.conn.Write(request); err != nil {
		return nil, nil, nil, err
	}
	resp, err := http.ReadResponse(c.reader, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if resp.StatusCode != 200 {
		answer, err := io.ReadAll(resp.Body)
		return nil, resp, answer, err
	}
	return &Stream{conn: c, Resp: resp}, resp, nil, nil
}

// VerifyStream checks a stream's 200: its content type, container and signature (over "stream").
func (c *Conn) VerifyStream(resp *http.Response, execID string) error {
	if resp.Header.Get("Content-Type") != "application/vnd.vibebox.stream" {
		return fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) > 0 {
		return errors.New("a stream has no length")
	}
	if got := resp.Header.Get("X-VibeBox-Container"); got != c.client.Container {
		return fmt.Errorf("the answer names container %q", got)
	}
	want := Sign(c.client.Token, "answer", c.client.Container, c.ServerNonce, execID, "stream")
	if resp.Header.Get("X-VibeBox-Signature") != want {
		return errors.New("the stream's signature does not match")
	}
	return nil
}

// Read reads one frame (the connection's deadline applies).
func (s *Stream) Read() (Frame, error) {
	var head [5]byte
	if _, err := io.ReadFull(s.conn.reader, head[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > 1<<20 {
		return Frame{}, fmt.Errorf("a frame of %d bytes", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(s.conn.reader, payload); err != nil {
		return Frame{}, err
	}
	return Frame{head[0], payload}, nil
}

// Resize sends a terminal's resize frame.
func (s *Stream) Resize(cols, rows int) error {
	return s.Send('r', fmt.Appendf(nil, `{"cols": %d, "rows": %d}`, cols, rows))
}

// Send writes one frame.
func (s *Stream) Send(kind byte, payload []byte) error {
	frame := make([]byte, 5+len(payload))
	frame[0] = kind
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(payload)))
	copy(frame[5:], payload)
	return s.conn.Write(frame)
}

// SendRaw writes bytes as they are (not necessarily whole frames).
func (s *Stream) SendRaw(data []byte) error { return s.conn.Write(data) }

// Deadline sets the connection's deadline.
func (s *Stream) Deadline(t time.Time) { s.conn.conn.SetDeadline(t) }

// Close closes the connection.
func (s *Stream) Close() error { return s.conn.Close() }

// CloseWrite half-closes the connection (the server has nothing more to send).
func (s *Stream) CloseWrite() error {
	if half, ok := s.conn.conn.(interface{ CloseWrite() error }); ok {
		return half.CloseWrite()
	}
	return errors.New("cannot half-close")
}

// Exit is an exit frame's payload.
type Exit struct {
	ExecID      string `json:"exec_id"`
	ExitCode    *int   `json:"exit_code"`
	TimedOut    bool   `json:"timed_out"`
	OOMKilled   bool   `json:"oom_killed"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
	DurationMS  int64  `json:"duration_ms"`
	Idle        bool   `json:"idle"`
	Signal      string `json:"signal"`
}

// Output is what a stream brought until its exit frame.
type Output struct {
	Stdout, Stderr []byte
	Frames         []Frame // every frame but the exit, in order
	Lost           []int64 // the lost frames' counts
	Exit           Exit
}

// Collect reads frames until the exit frame, which must be the last: sandboxd then closes.
func (s *Stream) Collect() (Output, error) {
	var out Output
	for {
		f, err := s.Read()
		if err != nil {
			return out, fmt.Errorf("before the exit frame: %w", err)
		}
		switch f.Type {
		case 'o':
			out.Stdout = append(out.Stdout, f.Payload...)
		case 'e':
			out.Stderr = append(out.Stderr, f.Payload...)
		case 'l':
			var lost struct{ Lost int64 }
			if err := json.Unmarshal(f.Payload, &lost); err != nil {
				return out, err
			}
			out.Lost = append(out.Lost, lost.Lost)
		case 'x':
			if err := json.Unmarshal(f.Payload, &out.Exit); err != nil {
				return out, err
			}
			if _, err := s.Read(); err != io.EOF {
				return out, fmt.Errorf("after the exit frame: %v, want EOF", err)
			}
			return out, nil
		default:
			return out, fmt.Errorf("frame type %q", f.Type)
		}
		if f.Type != 'x' {
			out.Frames = append(out.Frames, f)
		}
	}
}

// Open dials, says hello and opens a stream, checking its 200.
func (c *Client) Open(kind string, request map[string]any) (*Stream, error) {
	conn, err := c.Dial()
	if err != nil {
		return nil, err
	}
	conn.conn.SetDeadline(time.Now().Add(5 * time.Minute))
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	body, _ := json.Marshal(request)
	s, resp, answer, err := conn.Open(kind, body)
	if err == nil && s == nil {
		err = fmt.Errorf("%s: %s %s", kind, resp.Status, answer)
	}
	if err == nil {
		execID, _ := request["exec_id"].(string)
		err = conn.VerifyStream(resp, execID)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// Call posts a request that answers JSON and checks the answer's signature; it answers the
// status and the body (a 200's decoded into answer when it is not nil).
func (c *Client) Call(kind string, request map[string]any, answer any) (int, []byte, error) {
	conn, err := c.Dial()
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if err := conn.Hello(); err != nil {
		return 0, nil, err
	}
	body, _ := json.Marshal(request)
	resp, data, err := conn.Post(kind, body, nil)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, data, nil
	}
	execID, _ := request["exec_id"].(string)
	if err := conn.Verify(resp, execID, data); err != nil {
		return resp.StatusCode, data, err
	}
	if answer != nil {
		if err := json.Unmarshal(data, answer); err != nil {
			return resp.StatusCode, data, err
		}
	}
	return resp.StatusCode, data, nil
}
