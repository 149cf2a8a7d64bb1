import express from "express";

// The app, without listening: src/server.js listens, the tests start it on a free port.
export function createApp() {
  const app = express();
  app.use(express.json());

  const todos = [];
  let nextId = 1;

  app.get("/", (req, res) => {
    res.json({ name: "express-app", message: "Hello from Express on VibeBox", routes: ["/health", "/api/todos"] });
  });

  app.get("/health", (req, res) => {
    res.json({ status: "ok" });
  });

  app.get("/api/todos", (req, res) => {
    res.json(todos);
  });

  app.post("/api/todos", (req, res) => {
    const title = typeof req.body?.title === "string" ? req.body.title.trim() : "";
    if (!title) {
      return res.status(400).json({ error: "title is required" });
    }
    const todo = { id: nextId++, title, done: false };
    todos.push(todo);
    res.status(201).json(todo);
  });

  app.patch("/api/todos/:id", (req, res) => {
    const todo = todos.find((t) => t.id === Number(req.params.id));
    if (!todo) {
      return res.status(404).json({ error: "not found" });
    }
    if (typeof req.body?.done === "boolean") todo.done = req.body.done;
    if (typeof req.body?.title === "string" && req.body.title.trim()) todo.title = req.body.title.trim();
    res.json(todo);
  });

  // Express 5 passes rejected promises of async handlers here too.
  app.use((err, req, res, next) => {
    console.error(err);
    res.status(500).json({ error: "internal error" });
  });

  return app;
}
