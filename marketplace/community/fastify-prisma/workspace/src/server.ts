import { buildApp } from "./app.ts";
import { createPrisma } from "./db.ts";

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? "0.0.0.0";

const app = buildApp(createPrisma(), { logger: true });
await app.listen({ port, host });
