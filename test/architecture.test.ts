// Keeps dependencies pointing one way: core <- adapters / sandbox <- agent, manager, events <- gateway, control-plane <-
// embedded, cluster <- cli. The control plane reaches the roles only through what the composition roots hand it (the Manager's
// provisioning, a push to the gateways), so it imports neither them nor adapters.
// Generated gRPC code (src/gen, from proto/) and its hand-written glue (src/grpc) sit at the adapter level: only the
// roles' gRPC edges import them, never core.
// A forbidden import fails this test with the file and the import.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { it } from 'node:test';

const src = resolve(import.meta.dirname, '..', 'src');

/**
 * For each area (first path segments under src/), the areas and packages it may import; `testsMayImport`: what its
 * tests may import besides (every test may import adapters and test/helpers, to wire real components).
 */
const rules: { area: string; mayImport: string[]; packages: boolean; testsMayImport?: string[] }[] = [
  { area: 'core', mayImport: ['core'], packages: false },
  { area: 'sandbox/guest', mayImport: ['sandbox/guest', 'sandbox/protocol.ts'], packages: false },
  { area: 'sandbox', mayImport: ['core', 'sandbox'], packages: true },
  { area: 'adapters', mayImport: ['core', 'adapters'], packages: true },
  { area: 'gen', mayImport: ['gen'], packages: true },
  { area: 'grpc', mayImport: ['core', 'gen', 'grpc'], packages: true },
  { area: 'agent', mayImport: ['core', 'sandbox', 'gen', 'grpc', 'agent'], packages: true },
  { area: 'manager', mayImport: ['core', 'manager'], packages: true },
  // Asynchronous invocations, schedules' and queues' events: on core's ports, handed the invoke path as a function.
  { area: 'events', mayImport: ['core', 'events'], packages: true },
  // Workflows: the durable engine and the built-in execution backend, on core's ports; events run their nodes.
  { area: 'workflows', mayImport: ['core', 'events', 'workflows'], packages: true },
  // The intelligence layer: the plan chain, the curator and the fine-tune pipeline, on core's ports.
  { area: 'intelligence', mayImport: ['core', 'events', 'workflows', 'intelligence'], packages: true },
  {
    area: 'gateway',
    mayImport: ['core', 'gen', 'grpc', 'events', 'workflows', 'intelligence', 'gateway'],
    packages: true,
  },
  {
    area: 'control-plane',
    mayImport: ['core', 'events', 'workflows', 'control-plane'],
    packages: true,
    testsMayImport: ['manager'],
  },
  // The control-plane leader's wire: its gRPC service, the client, and the Pool and ProvisionQueue over them.
  { area: 'leader', mayImport: ['core', 'gen', 'grpc', 'control-plane', 'leader'], packages: true },
  { area: 'client', mayImport: ['core', 'client'], packages: true },
  {
    area: 'embedded',
    mayImport: [
      'core',
      'adapters',
      'sandbox',
      'agent',
      'manager',
      'events',
      'workflows',
      'intelligence',
      'gateway',
      'control-plane',
      'client',
      'embedded',
    ],
    packages: true,
  },
  // Cluster processes (gateway, manager, agent as separate processes) wire the same roles as embedded mode.
  {
    area: 'cluster',
    mayImport: [
      'core',
      'adapters',
      'sandbox',
      'agent',
      'manager',
      'events',
      'workflows',
      'intelligence',
      'gateway',
      'control-plane',
      'leader',
      'embedded',
      'cluster',
    ],
    packages: true,
  },
  { area: 'cli', mayImport: ['core', 'client', 'embedded', 'cluster', 'cli'], packages: true },
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

it('imports respect the layering', () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const rel = relative(src, file);
    const rule = rules.find((r) => rel === r.area || rel.startsWith(`${r.area}/`));
    assert.ok(rule, `no layering rule covers src/${rel}`);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(
      /^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm,
    )) {
      const spec = match[1] ?? match[2] ?? '';
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        if (!rule.packages) violations.push(`src/${rel} imports package ${spec}`);
        continue;
      }
      const target = relative(src, resolve(dirname(file), spec)).replace(/\.js$/, '.ts');
      // Tests wire real components, so a test may also import the adapters of the ports its code uses.
      const allowed = rel.endsWith('.test.ts')
        ? [...rule.mayImport, ...(rule.testsMayImport ?? []), 'adapters', '../test/helpers']
        : rule.mayImport;
      if (!allowed.some((area) => target === area || target.startsWith(`${area}/`))) {
        violations.push(`src/${rel} imports src/${target}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
