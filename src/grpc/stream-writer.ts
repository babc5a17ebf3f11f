/** The part of a gRPC stream (client or server side) a StreamWriter writes to. */
export interface WritableMessages<T> {
  write(message: T): boolean;
  end(): void;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Writes messages to a gRPC stream in order, honouring backpressure: once the stream's `write` returns false, later
 * messages are held here, not handed to grpc-js, until it emits 'drain'. A held message provably never left this
 * process (`holds`).
 */
export class StreamWriter<T> {
  readonly #stream: WritableMessages<T>;
  readonly #held: T[] = [];
  #blocked = false;
  #ending = false;

  constructor(stream: WritableMessages<T>) {
    this.#stream = stream;
  }

  /** Messages written but still held. */
  get heldCount(): number {
    return this.#held.length;
  }

  write(message: T): void {
    if (this.#ending) return;
    if (this.#blocked) this.#held.push(message);
    else this.#send(message);
  }

  /** Whether `message` was written here but not yet handed to the stream. */
  holds(message: T): boolean {
    return this.#held.includes(message);
  }

  /** End the stream after the held messages; later writes are dropped. */
  end(): void {
    if (this.#ending) return;
    this.#ending = true;
    if (!this.#blocked) this.#stream.end();
  }

  #send(message: T): void {
    if (this.#stream.write(message)) return;
    this.#blocked = true;
    this.#stream.once('drain', this.#flush);
  }

  readonly #flush = (): void => {
    this.#blocked = false;
    while (!this.#blocked && this.#held.length > 0) this.#send(this.#held.shift() as T);
    if (!this.#blocked && this.#ending) this.#stream.end();
  };
}
