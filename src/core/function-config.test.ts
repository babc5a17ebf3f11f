import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PlatformError } from './errors.js';
import { compileFunctionConfig, functionLimits, validateFunctionName } from './function-config.js';

const rejects = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof PlatformError && pattern.test(err.message));

it('defaults every setting', () => {
  assert.deepEqual(compileFunctionConfig({}), {
    handler: 'index.handler',
    runtime: 'nodejs20',
    env: {},
    timeoutSeconds: functionLimits.timeoutSeconds.default,
    memoryMB: functionLimits.memoryMB.default,
    maxInstances: functionLimits.maxInstances.default,
    minInstances: 0,
    idleSeconds: functionLimits.idleSeconds.default,
    network: false,
  });
});

it('takes the nodejs24 runtime and network access, and refuses anything else', () => {
  const config = compileFunctionConfig({ runtime: 'nodejs24', network: true });
  assert.equal(config.runtime, 'nodejs24');
  assert.equal(config.network, true);
  assert.throws(() => compileFunctionConfig({ runtime: 'nodejs18' }), /INVALID_CONFIG.*nodejs20, nodejs24/);
  assert.throws(() => compileFunctionConfig({ network: 'yes' as unknown as boolean }), /INVALID_CONFIG.*network/);
});

it('accepts nested handlers and valid env', () => {
  const config = compileFunctionConfig({ handler: 'src/app.main', env: { A_B: 'ünïcode', x1: '' } });
  assert.equal(config.handler, 'src/app.main');
  assert.equal(config.env.A_B, 'ünïcode');
});

it('rejects bad values with messages naming the field', () => {
  rejects(() => compileFunctionConfig({ timeoutSeconds: 0 }), /timeoutSeconds must be an integer from 1 to 900/);
  rejects(() => compileFunctionConfig({ memoryMB: 1.5 }), /memoryMB/);
  rejects(() => compileFunctionConfig({ maxInstances: 2, minInstances: 3 }), /minInstances \(3\) cannot exceed/);
  rejects(() => compileFunctionConfig({ handler: 'index' }), /handler must look like/);
  rejects(() => compileFunctionConfig({ handler: '../etc/passwd.x' }), /handler must look like/);
  rejects(() => compileFunctionConfig({ runtime: 'python3' }), /runtime must be one of/);
  rejects(() => compileFunctionConfig({ env: { 'A-B': 'x' } }), /not valid/);
  rejects(() => compileFunctionConfig({ env: { SAVASSAN_SOCKET: 'x' } }), /reserved/);
  rejects(() => compileFunctionConfig({ env: { BIG: 'x'.repeat(5000) } }), /over the 4096-byte limit/);
});

it('validates function names', () => {
  assert.equal(validateFunctionName('hello-2'), 'hello-2');
  for (const bad of ['', 'Hello', '2x', 'a_b', 'a'.repeat(64), 'a/b', '../x', 42]) {
    rejects(() => validateFunctionName(bad), /invalid function name/);
  }
});
