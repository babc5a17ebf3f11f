#!/usr/bin/env node
// Entry point of the `savassan` CLI; runs the compiled code (npm run build).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('savassan is not built yet: run "npm run build" (or "npm start") first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
