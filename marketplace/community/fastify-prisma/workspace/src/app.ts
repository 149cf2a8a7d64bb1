import Fastify, { type FastifyInstance } from "fastify";
import type { PrismaClient } from "./generated/prisma/client.ts";

// The app, without listening: src/server.ts listens, the tests use app.inject().
export function buildApp(prisma: PrismaClient, options = { logger: false }): FastifyInstance {
  const app = Fastify(options);

  app.get("/", async () => ({
    name: "fastify-prisma",
    message: "Hello from Fastify + Prisma on VibeBox",
    routes: ["/health", "/api/todos"],
  }));

  app.get("/health", async () => ({ status: "ok", todos: await prisma.todo.count() }));

  app.get("/api/todos", async () => prisma.todo.findMany({ orderBy: { id: "asc" } }));

  app.post<{ Body: { title: string } }>(
    "/api/todos",
    {
      schema: {
        body: {
          type: "object",
          required: ["title"],
          properties: { title: { type: "string", minLength: 1, maxLength: 200 } },
        },
      },
    },
    async (request, reply) => {
      const todo = await prisma.todo.create({ data: { title: request.body.title.trim() } });
      return reply.code(201).send(todo);
    },
  );

  app.patch<{ Params: { id: number }; Body: { done?: boolean; title?: string } }>(
    "/api/todos/:id",
    {
      schema: {
        params: { type: "object", properties: { id: { type: "integer" } } },
        body: {
          type: "object",
          properties: { done: { type: "boolean" }, title: { type: "string", minLength: 1, maxLength: 200 } },
        },
      },
    },
    async (request, reply) => {
      const existing = await prisma.todo.findUnique({ where: { id: request.params.id } });
      if (!existing) return reply.code(404).send({ error: "not found" });
      return prisma.todo.update({ where: { id: existing.id }, data: request.body });
    },
  );

  app.addHook("onClose", async () => {
    await prisma.$disconnect();
  });
  return app;
}
