import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import { compileLambdaArnScope, functionArn, parseFunctionReference } from './lambda-arn.js';

describe('Lambda ARNs', () => {
  it('names a function in the default region and account, or the configured ones', () => {
    assert.equal(functionArn('shop'), 'arn:aws:lambda:us-east-1:000000000000:function:shop');
    const scope = compileLambdaArnScope({ region: 'eu-west-2', accountId: '123456789012' });
    assert.equal(functionArn('shop', 3, scope), 'arn:aws:lambda:eu-west-2:123456789012:function:shop:3');
    assert.throws(
      () => compileLambdaArnScope({ region: 'moon' }),
      (err) => isPlatformError(err, 'INVALID_CONFIG'),
    );
    assert.throws(
      () => compileLambdaArnScope({ accountId: '12' }),
      (err) => isPlatformError(err, 'INVALID_CONFIG'),
    );
  });

  it('reads a name, a partial ARN or a full ARN, each with a qualifier', () => {
    assert.deepEqual(parseFunctionReference('shop'), { name: 'shop', qualifier: undefined });
    assert.deepEqual(parseFunctionReference('shop:$LATEST'), { name: 'shop', qualifier: '$LATEST' });
    assert.deepEqual(parseFunctionReference('123456789012:function:shop:2'), { name: 'shop', qualifier: '2' });
    assert.deepEqual(parseFunctionReference('arn:aws:lambda:us-east-1:000000000000:function:shop:beta'), {
      name: 'shop',
      qualifier: 'beta',
    });
    for (const bad of ['', 'arn:aws:s3:::bucket', 'shop:a:b', 'sh op', 'arn:aws:lambda:us-east-1:1:function:shop']) {
      assert.throws(
        () => parseFunctionReference(bad),
        (err) => isPlatformError(err, 'BAD_REQUEST'),
        bad,
      );
    }
  });
});
