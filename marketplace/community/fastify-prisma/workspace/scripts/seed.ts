import { createPrisma } from "../src/db.ts";

const prisma = createPrisma();
if ((await prisma.todo.count()) === 0) {
  await prisma.todo.createMany({ data: [{ title: "Read the README" }, { title: "Add a model to prisma/schema.prisma" }] });
}
console.log(await prisma.todo.findMany());
await prisma.$disconnect();
