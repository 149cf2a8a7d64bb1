// Applies prisma/migrations/*/migration.sql that are not applied yet, in order, and records them in
// Prisma's own `_prisma_migrations` table (same columns, sha256 checksums), so `prisma migrate
// deploy` agrees with it wherever Prisma's schema engine is available.
//
// Why: Prisma's migrate commands run its schema engine, a native binary that the CLI downloads
// from Prisma's servers on first use; VibeBox's builds and sandboxes may not reach them.
//
//   tsx scripts/migrate.ts            apply pending migrations to $DATABASE_URL (file:./dev.db)
//   tsx scripts/migrate.ts --reset    delete the database file first
import { createClient } from "@libsql/client";
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const url = process.env.DATABASE_URL ?? "file:./dev.db";
const dir = "prisma/migrations";

if (process.argv.includes("--reset") && url.startsWith("file:")) {
  const file = url.slice("file:".length);
  for (const suffix of ["", "-journal", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
}

const db = createClient({ url });
await db.execute(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "checksum" TEXT NOT NULL,
    "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL,
    "logs" TEXT,
    "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
)`);
const applied = new Set(
  (await db.execute(`SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`)).rows.map(
    (row) => String(row.migration_name),
  ),
);

const names = readdirSync(dir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, "migration.sql")))
  .map((entry) => entry.name)
  .sort();

let count = 0;
for (const name of names) {
  if (applied.has(name)) continue;
  const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
  const checksum = createHash("sha256").update(sql).digest("hex");
  await db.executeMultiple(`BEGIN;\n${sql}\nCOMMIT;`);
  await db.execute({
    sql: `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) VALUES (?, ?, current_timestamp, ?, 1)`,
    args: [randomUUID(), checksum, name],
  });
  console.log(`applied ${name}`);
  count++;
}
console.log(count ? `${count} migration(s) applied to ${url}` : `${url} is up to date`);
db.close();
