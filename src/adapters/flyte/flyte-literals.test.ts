import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlatformError } from '../../core/errors.js';
import { jsonFromLiteral, literalForInput, literalFromJson } from './flyte-literals.js';

describe('Flyte literals', () => {
  it('writes a launch input as the literal of its declared type', () => {
    assert.deepEqual(literalForInput('n', 'integer', 7), { scalar: { primitive: { integer: '7' } } });
    assert.deepEqual(literalForInput('n', 'number', 7), { scalar: { primitive: { float_value: 7 } } });
    assert.deepEqual(literalForInput('s', 'string', 'hi'), { scalar: { primitive: { string_value: 'hi' } } });
    assert.deepEqual(literalForInput('b', 'boolean', false), { scalar: { primitive: { boolean: false } } });
    assert.deepEqual(literalForInput('o', 'object', { a: [1, null] }), { scalar: { generic: { a: [1, null] } } });
    assert.deepEqual(literalForInput('l', 'array', [1, 'x', null, { k: true }, [2]]), {
      collection: {
        literals: [
          { scalar: { primitive: { float_value: 1 } } },
          { scalar: { primitive: { string_value: 'x' } } },
          { scalar: { none_type: {} } },
          { scalar: { generic: { k: true } } },
          { collection: { literals: [{ scalar: { primitive: { float_value: 2 } } }] } },
        ],
      },
    });
    assert.deepEqual(literalForInput('v', 'any', null), { scalar: { none_type: {} } });
  });

  it('refuses a value of another type, naming the input', () => {
    const cases: [string, Parameters<typeof literalForInput>[1], unknown, RegExp][] = [
      ['n', 'integer', 1.5, /input n: expected integer, got number 1.5/],
      ['n', 'integer', 2 ** 60, /input n: expected integer/],
      ['x', 'number', '3', /input x: expected number, got string "3"/],
      ['o', 'object', [1], /input o: expected object, got a list/],
      ['l', 'array', { a: 1 }, /input l: expected array, got an object/],
      ['b', 'boolean', null, /input b: expected boolean, got null/],
    ];
    for (const [name, type, value, message] of cases) {
      assert.throws(
        () => literalForInput(name, type, value),
        (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST' && message.test(err.message),
      );
    }
  });

  it('reads literals back as JSON, maps and unions included', () => {
    const value = { a: [1, 'x', null], b: { c: true } };
    assert.deepEqual(jsonFromLiteral({ scalar: { generic: value } }), value);
    assert.deepEqual(jsonFromLiteral(literalFromJson([1, [2, 3], { d: 4 }])), [1, [2, 3], { d: 4 }]);
    assert.equal(jsonFromLiteral({ scalar: { primitive: { integer: '42' } } }), 42);
    assert.equal(jsonFromLiteral({ scalar: { primitive: { integer: '9223372036854775807' } } }), '9223372036854775807');
    assert.deepEqual(
      jsonFromLiteral({
        map: { literals: { k: { scalar: { union: { value: { scalar: { primitive: { string_value: 'u' } } } } } } } },
      }),
      { k: 'u' },
    );
  });

  it('says which literal it cannot read', () => {
    assert.throws(
      () => jsonFromLiteral({ scalar: { blob: { uri: 's3://x' } } } as never),
      (err: unknown) => err instanceof PlatformError && err.code === 'UNAVAILABLE' && /blob/.test(err.message),
    );
  });
});
