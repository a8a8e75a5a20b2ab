// Stores a lead posted by the website form (JSON or form-encoded) and answers with its id.
const input = BODY ?? FORM_PARAMS;
const lead = {
  name: String(input.name ?? "").trim(),
  email: String(input.email ?? "").trim(),
  phone: String(input.phone ?? "").trim(),
  product: String(input.product ?? "").trim(),
};

const missing = ["name", "email", "product"].filter((k) => lead[k] === "");
if (missing.length > 0) {
  setWebhookResponse({ status: 422, body: { error: `missing: ${missing.join(", ")}` } });
} else {
  await db.execute(
    `CREATE TABLE IF NOT EXISTS leads (
       id INTEGER PRIMARY KEY AUTOINCREMENT,
       name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT, product TEXT NOT NULL,
       created_at TEXT NOT NULL DEFAULT (datetime('now')))`,
    [],
  );
  // Each db call may run on a different pooled connection: take the id from RETURNING, not from
  // last_insert_rowid().
  const [row] = await db.query(
    "INSERT INTO leads (name, email, phone, product) VALUES (?, ?, ?, ?) RETURNING id",
    [lead.name, lead.email, lead.phone, lead.product],
  );
  console.info("new lead", row.id, lead.product);
  setWebhookResponse({ status: 201, body: { id: row.id } });
}
