/**
 * One invocation's captured output, capped in bytes. Text past the cap is counted, not kept, and the rendered log
 * ends with an explicit marker saying how much was dropped.
 */
export class LogBuffer {
  private chunks: Buffer[] = [];
  private keptBytes = 0;
  private omittedBytes = 0;
  private notes: string[] = [];

  constructor(private readonly capBytes: number) {}

  append(text: string): void {
    if (text.length === 0) return;
    const data = Buffer.from(text, 'utf8');
    const room = this.capBytes - this.keptBytes;
    if (data.length <= room) {
      this.chunks.push(data);
      this.keptBytes += data.length;
      return;
    }
    if (room > 0) {
      // Cut at a character boundary: back off over UTF-8 continuation bytes (10xxxxxx).
      let cut = room;
      while (cut > 0 && ((data[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
      this.chunks.push(data.subarray(0, cut));
      this.keptBytes += cut;
      this.omittedBytes += data.length - cut;
    } else {
      this.omittedBytes += data.length;
    }
  }

  /** A platform line (`[savassan] ...`) added after the captured output; notes do not count against the cap. */
  note(text: string): void {
    this.notes.push(`[savassan] ${text}\n`);
  }

  /** Move everything from `other` into this buffer (subject to this buffer's cap) and empty `other`. */
  takeFrom(other: LogBuffer): void {
    for (const chunk of other.chunks) this.append(chunk.toString('utf8'));
    this.omittedBytes += other.omittedBytes;
    other.chunks = [];
    other.keptBytes = 0;
    other.omittedBytes = 0;
  }

  get bytes(): number {
    return this.keptBytes;
  }

  /** Nothing captured, nothing dropped, no platform notes. */
  get isEmpty(): boolean {
    return this.keptBytes === 0 && this.omittedBytes === 0 && this.notes.length === 0;
  }

  get omitted(): number {
    return this.omittedBytes;
  }

  /** The log as stored: the kept text, then the truncation marker when something was dropped. */
  render(): Buffer {
    const body = Buffer.concat(this.chunks);
    const trailer = this.omittedBytes > 0 ? [`[savassan] log truncated: ${this.omittedBytes} bytes omitted\n`] : [];
    trailer.push(...this.notes);
    if (trailer.length === 0) return body;
    const separator = body.length > 0 && body[body.length - 1] !== 0x0a ? '\n' : '';
    return Buffer.concat([body, Buffer.from(separator + trailer.join(''), 'utf8')]);
  }
}
