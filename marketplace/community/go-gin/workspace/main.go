// A small Gin JSON API: `go run .` serves it on $PORT (8080).
package main

import (
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

type Todo struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

type store struct {
	mu     sync.Mutex
	nextID int
	todos  []*Todo
}

func setupRouter() *gin.Engine {
	r := gin.Default()
	// No proxy in front is trusted: c.ClientIP() is the peer's address.
	_ = r.SetTrustedProxies(nil)

	s := &store{nextID: 1}

	r.GET("/", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"name": "go-gin", "message": "Hello from Gin on VibeBox", "routes": []string{"/health", "/api/todos"}})
	})
	r.GET("/health", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})

	api := r.Group("/api")
	api.GET("/todos", func(c *gin.Context) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c.JSON(http.StatusOK, s.todos)
	})
	api.POST("/todos", func(c *gin.Context) {
		var body struct {
			Title string `json:"title" binding:"required"`
		}
		if err := c.ShouldBindJSON(&body); err != nil || strings.TrimSpace(body.Title) == "" {
			c.JSON(http.StatusBadRequest, gin.H{"error": "title is required"})
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		todo := &Todo{ID: s.nextID, Title: strings.TrimSpace(body.Title)}
		s.nextID++
		s.todos = append(s.todos, todo)
		c.JSON(http.StatusCreated, todo)
	})
	api.PATCH("/todos/:id", func(c *gin.Context) {
		id, err := strconv.Atoi(c.Param("id"))
		if err != nil {
			c.JSON(http.StatusNotFound, gin.H{"error": "not found"})
			return
		}
		var body struct {
			Done *bool `json:"done"`
		}
		if err := c.ShouldBindJSON(&body); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, todo := range s.todos {
			if todo.ID == id {
				if body.Done != nil {
					todo.Done = *body.Done
				}
				c.JSON(http.StatusOK, todo)
				return
			}
		}
		c.JSON(http.StatusNotFound, gin.H{"error": "not found"})
	})
	return r
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := setupRouter().Run("0.0.0.0:" + port); err != nil {
		log.Fatal(err)
	}
}
