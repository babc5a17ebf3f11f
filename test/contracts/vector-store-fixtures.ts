/** Drop every vector table (`image_embeddings_{dimensions}`), so that a shared database starts a test empty. */
export async function dropVectorTables(query: (text: string) => Promise<Record<string, unknown>[]>): Promise<void> {
  const tables = await query(`select tablename from pg_tables where tablename like 'image\\_embeddings\\_%'`);
  for (const { tablename } of tables) await query(`drop table "${String(tablename)}"`);
}
