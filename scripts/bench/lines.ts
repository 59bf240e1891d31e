// A tight newline splitter for the driver: one callback per line, pending chunks kept in an array so a
// 16 MiB line costs one copy.

const NEWLINE = 0x0a;

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Reads `stream` to its end, calling `onLine` with each non-empty line (decoded, without the newline). */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  try {
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      let start = 0;
      for (;;) {
        const end = chunk.indexOf(NEWLINE, start);
        if (end < 0) break;
        let bytes = chunk.subarray(start, end);
        if (pendingBytes > 0) {
          pending.push(bytes);
          bytes = concat(pending, pendingBytes + bytes.length);
          pending = [];
          pendingBytes = 0;
        }
        start = end + 1;
        if (bytes.length > 0) onLine(decoder.decode(bytes));
      }
      if (start < chunk.length) {
        pending.push(chunk.slice(start));
        pendingBytes += chunk.length - start;
      }
    }
    if (pendingBytes > 0) onLine(decoder.decode(concat(pending, pendingBytes)));
  } catch {
    // The process went away: its output ends here.
  } finally {
    reader.releaseLock();
  }
}
