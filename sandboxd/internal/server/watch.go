package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"

	"vibebox.dev/sandboxd/internal/watch"
)

// watchKind is POST /watch: a file watch streamed as frames (package watch, docs/sandboxd.md
// "File watch").
const watchKind = "watch"

// watchRequest is a /watch body (with exec_id, the watch's id, which the 200 is signed for).
type watchRequest struct {
	Path      *string  `json:"path"`
	Recursive bool     `json:"recursive"`
	User      *string  `json:"user"`
	Excludes  []string `json:"excludes"`
}

// watchRefused answers a watch that did not start: {"error", "reason"}, reason one of user,
// not_found, permission, not_directory, invalid (422), too_many (429), inotify_limit (503).
func (s *Server) watchRefused(w http.ResponseWriter, status int, reason, message string) {
	s.json(w, &conn{}, status, "", map[string]string{"error": message, "reason": reason})
}

func (s *Server) watch(w http.ResponseWriter, c *conn, body []byte, execID string) {
	var req watchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	if req.Path == nil || !strings.HasPrefix(*req.Path, "/") || len(*req.Path) > watch.MaxPath || strings.IndexByte(*req.Path, 0) >= 0 {
		s.fail(w, http.StatusBadRequest, "invalid request: path is an absolute path of at most 4096 bytes")
		return
	}
	if err := watch.CheckExcludes(req.Excludes); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid request: "+err.Error())
		return
	}
	user, _, err := s.user(req.User)
	if err != nil {
		s.watchRefused(w, http.StatusUnprocessableEntity, "user", err.Error())
		return
	}
	// The watch is in place before the 200: a change made after it is seen.
	wt, err := s.cfg.Watches.Open(watch.Options{Root: *req.Path, Recursive: req.Recursive, Excludes: req.Excludes, User: &user})
	if err != nil {
		switch {
		case errors.Is(err, watch.ErrFull):
			s.watchRefused(w, http.StatusTooManyRequests, "too_many", err.Error())
		case errors.Is(err, watch.ErrNoRoom):
			s.cfg.Log.Printf("watch %s: %v", execID, err)
			s.watchRefused(w, http.StatusServiceUnavailable, "inotify_limit", err.Error())
		case errors.Is(err, watch.ErrCredentials):
			s.cfg.Log.Printf("watch %s: %v", execID, err)
			s.fail(w, http.StatusInternalServerError, "sandboxd failed")
		case errors.Is(err, os.ErrNotExist):
			s.watchRefused(w, http.StatusUnprocessableEntity, "not_found", err.Error())
		case errors.Is(err, os.ErrPermission):
			s.watchRefused(w, http.StatusUnprocessableEntity, "permission", err.Error())
		case errors.Is(err, watch.ErrNotDir):
			s.watchRefused(w, http.StatusUnprocessableEntity, "not_directory", err.Error())
		default:
			s.watchRefused(w, http.StatusUnprocessableEntity, "invalid", err.Error())
		}
		return
	}
	conn, br, _ := s.openStream(w, c, execID, nil)
	if conn == nil {
		wt.Close()
		return
	}
	watch.Serve(wt, conn, br, execID) // a failed header write fails the first frame: it closes
}
