import assert from "node:assert/strict";
import { after, test } from "node:test";
import { buildApp } from "../src/app.ts";
import { createPrisma } from "../src/db.ts";

// `npm test` migrates a fresh test.db and points DATABASE_URL at it.
const app = buildApp(createPrisma());
after(() => app.close());

test("GET /health counts the todos in SQLite", async () => {
  const res = await app.inject({ method: "GET", url: "/health" });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().status, "ok");
});

test("todos are stored through Prisma", async () => {
  const created = await app.inject({ method: "POST", url: "/api/todos", payload: { title: "write tests" } });
  assert.equal(created.statusCode, 201);
  const todo = created.json();
  assert.equal(todo.title, "write tests");
  assert.equal(todo.done, false);

  const done = await app.inject({ method: "PATCH", url: `/api/todos/${todo.id}`, payload: { done: true } });
  assert.equal(done.json().done, true);

  const list = await app.inject({ method: "GET", url: "/api/todos" });
  assert.deepEqual(
    list.json().map((t: { title: string }) => t.title),
    ["write tests"],
  );
});

test("validation and 404", async () => {
  assert.equal((await app.inject({ method: "POST", url: "/api/todos", payload: {} })).statusCode, 400);
  assert.equal((await app.inject({ method: "PATCH", url: "/api/todos/9999", payload: { done: true } })).statusCode, 404);
});
