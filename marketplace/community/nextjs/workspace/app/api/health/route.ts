// GET /api/health: a route handler (app/api/health/route.ts), answered at request time.
export async function GET() {
  return Response.json({ status: "ok", time: new Date().toISOString() });
}
