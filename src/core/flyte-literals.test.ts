import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import { isLiteralMap, launchInputsToJson, literalMapToJson, literalToJson } from './flyte-literals.js';

const p = (primitive: Record<string, unknown>) => ({ scalar: { primitive } });

describe('launchInputsToJson nesting', () => {
  it('refuses a literal map nested thousands deep with BAD_REQUEST, not a stack overflow', () => {
    let literal: unknown = p({ integer: '1' });
    for (let i = 0; i < 3000; i++) literal = { collection: { literals: [literal] } };
    assert.throws(
      () => launchInputsToJson({ literals: { x: literal } }),
      (err: unknown) => isPlatformError(err, 'BAD_REQUEST') && /nest more than 64 levels deep/.test(err.message),
    );
    let shallow: unknown = p({ integer: '1' });
    for (let i = 0; i < 5; i++) shallow = { collection: { literals: [shallow] } };
    assert.deepEqual(launchInputsToJson({ literals: { x: shallow } }), { x: [[[[[1]]]]] });
  });
});

describe('literalToJson', () => {
  it('reads every primitive, in both protobuf JSON spellings', () => {
    assert.equal(literalToJson(p({ integer: '42' })), 42);
    assert.equal(literalToJson(p({ integer: -7 })), -7);
    assert.equal(literalToJson(p({ float_value: 1.5 })), 1.5);
    assert.equal(literalToJson(p({ floatValue: 2.25 })), 2.25);
    assert.equal(literalToJson(p({ float_value: '3.5' })), 3.5);
    assert.equal(literalToJson(p({ string_value: 'a' })), 'a');
    assert.equal(literalToJson(p({ stringValue: 'b' })), 'b');
    assert.equal(literalToJson(p({ boolean: false })), false);
    assert.equal(literalToJson(p({ datetime: '2026-01-02T03:04:05Z' })), '2026-01-02T03:04:05Z');
    assert.equal(literalToJson(p({ duration: '1.500s' })), '1.500s');
  });

  it('reads generic structs, none, collections and maps, nested', () => {
    assert.deepEqual(literalToJson({ scalar: { generic: { a: [1, { b: null }] } } }), { a: [1, { b: null }] });
    assert.equal(literalToJson({ scalar: { none_type: {} } }), null);
    assert.equal(literalToJson({ scalar: { noneType: {} } }), null);
    assert.deepEqual(
      literalToJson({
        map: {
          literals: {
            xs: { collection: { literals: [p({ integer: '1' }), p({ integer: '2' })] } },
            m: { map: { literals: { s: p({ string_value: 'v' }) } } },
          },
        },
      }),
      { xs: [1, 2], m: { s: 'v' } },
    );
    assert.deepEqual(literalToJson({ collection: {} }), []);
    assert.deepEqual(literalToJson({ map: {} }), {});
  });

  it('refuses what is not a literal, naming where', () => {
    const cases: [unknown, RegExp][] = [
      [p({ integer: '1.5' }), /x\.scalar\.primitive: integer must be a whole number/],
      [p({ integer: '99999999999999999999' }), /integer must be a whole number/],
      [p({ float_value: 'x' }), /float_value must be a finite number/],
      [p({ string_value: 3 }), /string_value must be a string/],
      [p({ boolean: 'true' }), /boolean must be true or false/],
      [p({ datetime: 'yesterday' }), /datetime must be an RFC 3339 time/],
      [p({ duration: '5m' }), /duration must be written like/],
      [p({ integer: '1', boolean: true }), /exactly one value/],
      [p({ bytes: 'AA' }), /unknown primitive bytes/],
      [{ scalar: { blob: {} } }, /x\.scalar: unsupported scalar blob/],
      [{ collection: { literals: [p({ integer: '1' }), 'no'] } }, /x\.collection\.literals\[1\]: a literal must/],
      [{ nope: 1 }, /x: not a literal/],
      ['str', /x: a literal must be an object/],
    ];
    for (const [literal, message] of cases) {
      assert.throws(
        () => literalToJson(literal, 'x'),
        (err) => isPlatformError(err, 'BAD_REQUEST') && message.test(err.message),
        JSON.stringify(literal),
      );
    }
  });
});

describe('literal maps', () => {
  it('tells a literal map from plain inputs', () => {
    assert.equal(isLiteralMap({ literals: { x: p({ integer: '1' }) } }), true);
    assert.equal(isLiteralMap({ literals: {} }), true);
    assert.equal(isLiteralMap({ literals: { x: 1 } }), false);
    assert.equal(isLiteralMap({ literals: { x: p({ integer: '1' }) }, y: 2 }), false);
    assert.equal(isLiteralMap({ x: 1 }), false);
    assert.equal(isLiteralMap([]), false);
  });

  it('converts launch inputs given either way', () => {
    assert.deepEqual(launchInputsToJson({ x: 1, s: 'a' }), { x: 1, s: 'a' });
    assert.deepEqual(launchInputsToJson({ literals: { x: p({ integer: '1' }), s: p({ string_value: 'a' }) } }), {
      x: 1,
      s: 'a',
    });
    assert.deepEqual(launchInputsToJson(undefined), {});
    assert.throws(
      () => launchInputsToJson([1]),
      (err) => isPlatformError(err, 'BAD_REQUEST'),
    );
    assert.throws(
      () => literalMapToJson({ literals: { n: p({ integer: 'x' }) } }),
      (err) => isPlatformError(err, 'BAD_REQUEST') && /inputs\.n\.scalar\.primitive/.test(err.message),
    );
  });
});
