import { PrismaLibSql } from "@prisma/adapter-libsql";
import { PrismaClient } from "./generated/prisma/client.ts";

export const databaseUrl = process.env.DATABASE_URL ?? "file:./dev.db";

export function createPrisma(url: string = databaseUrl): PrismaClient {
  return new PrismaClient({ adapter: new PrismaLibSql({ url }) });
}
