import { Transform, type TransformCallback } from 'node:stream';
import { PlatformError } from './errors.js';

/**
 * Passes a stream through unchanged while checking it holds exactly `length` bytes: more, or fewer by its end,
 * fails the stream with BAD_REQUEST, so a store never keeps a blob whose size was misdeclared.
 */
export class ExactLength extends Transform {
  private seen = 0;

  constructor(
    private readonly length: number,
    private readonly what: string,
  ) {
    super();
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new PlatformError('BAD_REQUEST', `${what}: the length must be a non-negative integer, got ${length}`);
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.length) {
      callback(
        new PlatformError('BAD_REQUEST', `${this.what}: the stream is longer than the ${this.length} bytes declared`),
      );
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.seen !== this.length) {
      callback(
        new PlatformError(
          'BAD_REQUEST',
          `${this.what}: the stream ended after ${this.seen} of ${this.length} bytes declared`,
        ),
      );
      return;
    }
    callback();
  }
}
