package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func do(t *testing.T, r *gin.Engine, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestHealth(t *testing.T) {
	w := do(t, setupRouter(), http.MethodGet, "/health", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok"`) {
		t.Fatalf("GET /health = %d %s", w.Code, w.Body.String())
	}
}

func TestCreateAndCompleteTodo(t *testing.T) {
	r := setupRouter()
	w := do(t, r, http.MethodPost, "/api/todos", `{"title": "write tests"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /api/todos = %d %s", w.Code, w.Body.String())
	}
	var todo Todo
	if err := json.Unmarshal(w.Body.Bytes(), &todo); err != nil || todo.Title != "write tests" {
		t.Fatalf("created %+v (%v)", todo, err)
	}
	w = do(t, r, http.MethodPatch, "/api/todos/1", `{"done": true}`)
	if err := json.Unmarshal(w.Body.Bytes(), &todo); err != nil || !todo.Done {
		t.Fatalf("PATCH = %d %s", w.Code, w.Body.String())
	}
}

func TestTitleRequired(t *testing.T) {
	if w := do(t, setupRouter(), http.MethodPost, "/api/todos", `{}`); w.Code != http.StatusBadRequest {
		t.Fatalf("POST without a title = %d", w.Code)
	}
}

func init() { gin.SetMode(gin.TestMode) }
